"""Prometheus metrics at /metrics, correct with several gunicorn processes and a worker.

Counters and histograms live in each process; with PROMETHEUS_MULTIPROC_DIR set (`relay
serve` sets it for its processes) they are written there and /metrics adds them up. Queue
depth, the oldest pending delivery, the scheduled deliveries, and the dead and cancelled
counts are read from the database at scrape time, so they are right whichever process
answers. Each is a count over a partial index (pending, dead, cancelled rows), never a scan
of the history.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from relay.errors import StoreUnavailable

if TYPE_CHECKING:
    from relay.store import Store

INBOUND = Counter("relay_inbound_requests", "Webhooks received, by mapping and HTTP status.",
                  ["mapping", "status"])


class QueueCollector(Collector):
    """The queue as the database sees it, at scrape time."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        try:
            pending, oldest, dead = self.store.queue_stats(now)
            later, cancelled = self.store.schedule_stats(now)
        except StoreUnavailable:
            return
        yield GaugeMetricFamily("relay_queue_depth", "Deliveries waiting or in flight, "
                                "scheduled ones included.", value=pending)
        yield GaugeMetricFamily("relay_queue_oldest_seconds",
                                "How long the oldest pending delivery has waited since it was "
                                "first due (0 when none is due).", value=oldest)
        yield GaugeMetricFamily("relay_scheduled_deliveries", "Pending deliveries never tried "
                                "and due later (schedule:, quiet_hours:).", value=later)
        yield GaugeMetricFamily("relay_dead_deliveries", "Deliveries that gave up, not yet "
                                "replayed or purged.", value=dead)
        yield GaugeMetricFamily("relay_cancelled_deliveries", "Deliveries cancelled (by a "
                                "webhook's cancel: or an operator), never called; not yet "
                                "purged.", value=cancelled)


def render(store: Store, every_process: bool) -> tuple[bytes, str]:
    """The /metrics page: every process's metrics (PROMETHEUS_MULTIPROC_DIR is set) or this
    one's, then the queue."""
    if every_process:
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    queue = CollectorRegistry()
    queue.register(QueueCollector(store))
    return generate_latest(processes) + generate_latest(queue), CONTENT_TYPE_LATEST
