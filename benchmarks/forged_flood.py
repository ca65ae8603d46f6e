"""A flood of forged webhooks: what it costs the database and the senders who sign.

    .venv/bin/python benchmarks/forged_flood.py [--forged 10000] [--senders 16]

`relay serve` (SQLite in a temporary folder) takes `--forged` Typeform webhooks with a wrong
signature, from `--senders` connections at once (each post a new connection), while genuine
signed webhooks arrive at 20 a second, open loop. Printed: how much the database files grew
(relay.db and its write-ahead log), the rows the refusals left, and the genuine webhooks'
answer times with and without the flood, in the same run (the flood is sent twice: alone, for
the growth, then beside 60 genuine webhooks due during its first 3 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from harness import stop
from ingest import open_loop, percentile, post, requests_bytes, serve_typeform


def forged(port: int, i: int) -> bytes:
    body = b'{"event_id": "forged-%d", "form_response": {}}' % i
    return (b"POST /hooks/typeform-leads HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Content-Type: application/json\r\nTypeform-Signature: sha256=AAAA%d\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (port, i, len(body), body))


async def flood(port: int, count: int, senders: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    queue = iter(range(count))

    async def sender() -> None:
        for i in queue:
            try:
                status = await post(port, forged(port, i))
            except OSError:
                status = 0
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(sender() for _ in range(senders)))
    return statuses


async def genuine_during(port: int, requests: list[bytes], count: int, senders: int
                         ) -> tuple[list[tuple[float, int]], dict[int, int]]:
    """Genuine webhooks at 20 a second from the flood's start (send few enough that they
    are all due before it ends)."""
    flooding = asyncio.create_task(flood(port, count, senders))
    results = await open_loop(port, requests, 20)
    return results, await flooding


def files_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("relay.db*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forged", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        relay, standin, port, _ = serve_typeform(folder, 2000)
        try:
            requests = requests_bytes(folder / "requests.txt", port)
            quiet = asyncio.run(open_loop(port, requests[:200], 20))
            before, started = files_size(folder), time.perf_counter()
            statuses = asyncio.run(flood(port, args.forged, args.senders))
            seconds = time.perf_counter() - started
            grown = files_size(folder) - before
            # Again, with genuine webhooks due during the first 3 s of it.
            during, _ = asyncio.run(genuine_during(port, requests[200:260], args.forged,
                                                   args.senders))
            with sqlite3.connect(folder / "relay.db") as db:
                rows, counted = db.execute(
                    "SELECT count(*), coalesce(sum(count), 0) FROM refusal_counts").fetchone()
        finally:
            stop(relay, standin)
    print(f"{args.forged} forged posts from {args.senders} senders in {seconds:.1f} s "
          f"({args.forged / seconds:.0f}/s): answers {dict(sorted(statuses.items()))}")
    print(f"database files grew {grown / 1e6:.3f} MB; refusal_counts: {rows} row(s) "
          f"counting {counted} (the last seconds' counts are written with the next batch)")
    for label, results in (("quiet", quiet), ("during the flood", during)):
        ms = [latency * 1000 for _, latency, _ in results]
        print(f"genuine webhooks, {label}: {len(ms)} answered "
              f"{sorted({s for _, _, s in results})}, p50 {percentile(ms, 0.5):.1f} ms, "
              f"p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms")


if __name__ == "__main__":
    main()
