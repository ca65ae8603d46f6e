"""One worker against a slow Engati: deliveries a second and memory, by concurrency.

    .venv/bin/python benchmarks/slow_engati.py [--latency 0.2] [--seconds 8]
                                               [--concurrency 32,256] [--deliveries N]

For each concurrency: a fresh SQLite database with enough pending deliveries for `--seconds`
of calls at the ideal rate (concurrency / latency; or `--deliveries`, 10,000 with
`--latency 0`), the asyncio Engati stand-in answering after `--latency` seconds, and one
`relay worker`. Prints deliveries a second (from the first call to the last) against the
ideal, the worker's peak RSS and its CPU per delivery. A run of a few seconds, not a few
cycles: the first cycle opens every connection to Engati at once, a one-off cost that a
short run would count many times over.
Everything runs on 127.0.0.1. BENCH_KEEP_LOGS=FILE keeps the last worker's log there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import cpu_seconds, free_port, peak_rss_mb, start_standin, stats, stop, wait_until

from relay.mapping import Delivery, Result
from relay.model import Received
from relay.store import open_store

MAPPING = "phone: body.phone\nflows: [{flow_key: BENCH}]\n"


def run(concurrency: int, deliveries: int, latency: float,
        folder: Path) -> tuple[float, float, float]:
    url = f"sqlite:///{folder}/slow-{concurrency}.db"
    store = open_store(url)
    store.upgrade()
    now = time.time()
    for i in range(deliveries):
        delivery = Delivery("BENCH", "whatsapp", "919812345678", {"marker": str(i)}, str(i))
        store.accept(Received("bench", b"{}", {}, {}, Result((delivery,)), now))
    store.dispose()
    port = free_port()
    standin = start_standin(port, latency)
    env = {**os.environ, "DATABASE_URL": url, "RELAY_MAPPINGS": str(folder / "mappings"),
           "ENGATI_BASE_URL": f"http://127.0.0.1:{port}", "ENGATI_CUSTOMER_ID": "1",
           "ENGATI_BOT_KEY": "b", "ENGATI_API_KEY": "k", "RELAY_CONCURRENCY": str(concurrency),
           "RELAY_POLL_INTERVAL": "0.05", "RELAY_UNVERIFIED_LIMIT": "100000000"}
    log = (folder / f"worker-{concurrency}.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "relay", "worker"], env=env, stderr=log)
    try:
        # CPU from the first call on: the worker's start-up (imports) is not per delivery.
        wait_until(lambda: stats(port, summary=True)["calls"] > 0, "the first call", every=0.01)
        cpu_before, calls_before = cpu_seconds([worker.pid]), stats(port, summary=True)["calls"]
        wait_until(lambda: stats(port, summary=True)["calls"] >= deliveries, "every delivery",
                   timeout=600, every=0.2)
        peak = peak_rss_mb(worker.pid)
        cpu = cpu_seconds([worker.pid]) - cpu_before
        seen = stats(port)
    finally:
        stop(worker, standin)
        log.close()
    if keep := os.environ.get("BENCH_KEEP_LOGS"):
        Path(keep).write_text((folder / f"worker-{concurrency}.log").read_text())
    rate = seen["calls"] / (seen["last"] - seen["first"]) if seen["calls"] > 1 else 0.0
    return rate, peak, cpu / (seen["calls"] - calls_before) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--deliveries", type=int,
                        help="instead of --seconds (default with --latency 0: 10000)")
    parser.add_argument("--concurrency", default="32,256")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "mappings").mkdir()
        (Path(folder) / "mappings" / "bench.yaml").write_text(MAPPING)
        print(f"{'concurrency':>11} {'deliveries/s':>13} {'ideal':>7} {'share':>6} "
              f"{'worker peak RSS':>16} {'CPU ms/delivery':>16}")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            ideal = concurrency / args.latency if args.latency else float("inf")
            deliveries = args.deliveries or (int(ideal * args.seconds) if args.latency
                                             else 10_000)
            rate, peak, cpu_ms = run(concurrency, deliveries, args.latency, Path(folder))
            print(f"{concurrency:>11} {rate:>13.0f} {ideal:>7.0f} {rate / ideal:>6.0%} "
                  f"{peak:>13.0f} MB {cpu_ms:>16.2f}", flush=True)


if __name__ == "__main__":
    main()
