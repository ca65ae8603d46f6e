"""Accept to Engati call: how long after its 2xx a webhook reaches Engati, and what an idle
worker costs.

    .venv/bin/python benchmarks/wake.py --database postgresql://postgres@127.0.0.1/bench \
        [--rate 300] [--seconds 10] [--idle 30]

The relay runs as `relay serve` (2 web processes and 1 worker, as the Procfile runs them) on
`--database` (an empty database; SQLite in a temporary folder unless told), with the asyncio
Engati stand-in answering at once. Webhooks (the signed Typeform example, each with its own
email) leave on an open loop, `--rate` a second, as in ingest.py. Per webhook: the time from
its 2xx reaching the sender to the stand-in receiving the call that carries its email (both
read from the one machine's clock). Then the relay is left alone for `--idle` seconds: the
worker's CPU meanwhile, as a share of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from harness import cpu_seconds, family, stats, stop, wait_until
from ingest import percentile, post, requests_bytes, serve_typeform


async def answered_at(port: int, requests: list[bytes],
                      rate: float) -> list[tuple[float, float, int]]:
    """(epoch seconds the answer came, seconds it took from when the request was due, HTTP
    status) per request, sent on an open loop."""
    results: list[tuple[float, float, int]] = [(0.0, 0.0, 0)] * len(requests)

    async def one(i: int, request: bytes) -> None:
        due = start + i / rate
        try:
            status = await post(port, request)
        except OSError:
            status = 0
        results[i] = (time.time(), time.perf_counter() - due, status)

    start = time.perf_counter() + 0.1
    tasks = []
    for i, request in enumerate(requests):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, request)))
    await asyncio.gather(*tasks)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--idle", type=float, default=30, help="seconds to measure idle CPU")
    parser.add_argument("--database", help="the relay's DATABASE_URL (default: SQLite)")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        relay, standin, port, standin_port = serve_typeform(folder, count + 50, args.database)
        try:
            requests = requests_bytes(folder / "requests.txt", port)
            asyncio.run(answered_at(port, requests[count:], 50))  # warm up every web process
            wait_until(lambda: stats(standin_port, summary=True)["distinct"] >= 50, "the warm-up")
            pids = family(relay.pid)[1:]  # gunicorn and its workers, the delivery worker
            worker = [pid for pid in pids
                      if b"relay\x00worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            web = [pid for pid in pids if pid not in worker]
            cpu_before = cpu_seconds(web), cpu_seconds(worker)
            results = asyncio.run(answered_at(port, requests[:count], args.rate))
            wait_until(lambda: stats(standin_port, summary=True)["distinct"] >= count + 50,
                       "the deliveries", timeout=60)
            web_ms, worker_ms = ((cpu_seconds(pids) - spent) / count * 1000
                                 for pids, spent in zip((web, worker), cpu_before, strict=True))
            called = stats(standin_port, times=True)
            time.sleep(2)  # the last calls' outcomes recorded, the ramp wound down
            spent, began = cpu_seconds(worker), time.monotonic()
            time.sleep(args.idle)
            idle = (cpu_seconds(worker) - spent) / (time.monotonic() - began)
        finally:
            stop(relay, standin)
    statuses = sorted({status for _, _, status in results})
    lags = [(called["times"][f"bench{i}@example.com"] - at) * 1000
            for i, (at, _, _) in enumerate(results)]
    acks = [took * 1000 for _, took, _ in results]
    repeats = sum(n - 1 for n in called["markers"].values())
    print(f"{count} webhooks at {args.rate:.0f}/s, open loop; answers {statuses}; "
          f"{count + 50 - len(called['times'])} missing, {repeats} repeats")
    print(f"2xx to Engati call, ms: p50 {percentile(lags, 0.5):.1f}  p90 "
          f"{percentile(lags, 0.9):.1f}  p99 {percentile(lags, 0.99):.1f}  "
          f"max {max(lags):.1f}  min {min(lags):.1f}")
    print(f"ack latency ms: p50 {percentile(acks, 0.5):.1f}  p99 {percentile(acks, 0.99):.1f}")
    print(f"CPU per webhook: web {web_ms:.2f} ms, worker {worker_ms:.2f} ms")
    print(f"idle worker: {idle:.2%} of a core over {args.idle:.0f}s")


if __name__ == "__main__":
    main()
