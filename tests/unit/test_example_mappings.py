"""Every example mapping in mappings/ loads and passes its own tests."""

from __future__ import annotations

import pytest

from relay.sources import load_endpoint, load_folder
from relay.sources.selftest import run_test
from tests.conftest import MAPPINGS


def _cases():
    for file in sorted(MAPPINGS.glob("*.yaml")):
        endpoint = load_endpoint(file, env={})
        for case in endpoint.mapping.tests:
            yield pytest.param(endpoint, case, id=f"{file.stem}::{case['name']}")


@pytest.mark.parametrize(("endpoint", "case"), list(_cases()))
def test_example(endpoint, case):
    """The mapping gives what its test expects."""
    outcome = run_test(endpoint, case)
    assert outcome.failures == []


def test_folder_loads_with_tests_for_every_mapping():
    """The examples folder loads as a whole, and no example mapping is without tests."""
    endpoints = load_folder(MAPPINGS, env={})
    assert {"typeform-leads", "crm-leads"} <= set(endpoints)
    assert all(e.mapping.tests for e in endpoints.values())
