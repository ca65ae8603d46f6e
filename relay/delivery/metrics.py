"""The worker's Prometheus metrics. They register with prometheus_client's default registry
(or its multiprocess files), which /metrics renders: the web package never imports them."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter("relay_delivery_attempts", "Calls to Engati, by mapping and outcome "
                   "(delivered, retry, dead).", ["mapping", "outcome"])
LATENCY = Histogram("relay_engati_call_seconds", "How long Engati took to answer a call.",
                    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30))
