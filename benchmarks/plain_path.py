"""What a plain webhook costs in the relay's own code, in one process: the Typeform example
parsed and mapped, accepted into a SQLite store, claimed and recorded delivered, N times.

    .venv/bin/python benchmarks/plain_path.py [N]

Prints microseconds of CPU per webhook. Under callgrind it also gives instruction counts,
which do not depend on what else the machine is doing: run it with N and with 0, and the
difference over N is the instructions per webhook, e.g.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \\
        benchmarks/plain_path.py 2000 2>&1 | grep refs

Run it from two checkouts (say the commit before a feature and after it) to show what the
feature costs a webhook that does not use it (issue 17, item 6).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from relay.model import Attempt, Outcome, Received
from relay.sources import evaluate_raw, load_endpoint
from relay.store import open_store

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    endpoint = load_endpoint(ROOT / "mappings" / "typeform-leads.yaml", env={})
    raw = (ROOT / "mappings" / "examples" / "typeform-vip.json").read_bytes()
    headers = {"content-type": "application/json"}
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/relay.db")
        store.upgrade()
        started, now = time.process_time(), 1_800_000_000.0
        for i in range(n):
            result = evaluate_raw(endpoint, raw, headers, {})
            # Every webhook its own dedup key, as different responses are.
            result = replace(result, deliveries=tuple(replace(d, dedup_key=str(i))
                                                      for d in result.deliveries))
            store.write_batch([Received("typeform-leads", raw, headers, {}, result,
                                        now + i)], [])
            for claimed in store.claim("w", 10, now + i, 60.0):
                store.record_many([Attempt(claimed.id, now + i, 1.0, Outcome.DELIVERED, 200,
                                           1000)], "w", now + i)
        took = time.process_time() - started
        store.dispose()
    if n:
        print(f"{n} webhooks: {took / n * 1e6:.0f} us of CPU each (map, accept, claim, record)")


if __name__ == "__main__":
    main()
