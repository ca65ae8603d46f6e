"""Deliveries waiting in a real store, for the tests of the worker and its parts."""

from __future__ import annotations

import pytest

from relay.mapping import Delivery, Result
from relay.model import Received
from tests.unit.delivery.clock import NOW


@pytest.fixture
def queue(store):
    """Store an event of mapping `leads` with `count` deliveries; its id."""
    def queue(count=1, now=NOW, mapping="leads"):
        deliveries = tuple(Delivery("F", "whatsapp", "919812345678", {"i": i}, None, i)
                           for i in range(count))
        return store.accept(Received(mapping, b"{}", {}, {}, Result(deliveries), now)).event_id

    return queue


@pytest.fixture
def deliveries(store):
    """The deliveries of an event, as the history shows them."""
    return lambda event_id: store.event(event_id)["deliveries"]
