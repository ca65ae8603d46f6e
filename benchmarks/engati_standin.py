"""A fast Engati stand-in for benchmarks: asyncio, so that thousands of slow calls can be in
flight at once, answering like Engati after an optional delay and counting what it received.

    .venv/bin/python benchmarks/engati_standin.py [--port 8081] [--latency 0.2] [--count-by marker]

GET /_stats answers {"calls": N, "first": t, "last": t, "markers": {marker: count}} where a
marker is the JSON body's `--count-by` attribute, `marker` unless told (benchmarks use it to
find repeats and losses); GET /_stats?times gives "times" too, the time (epoch seconds) each
marker was first received (benchmarks/wake.py times accept-to-call); GET /_stats?summary
gives "distinct" (the number of markers) in place of the markers, cheap enough to poll during
a run; DELETE /_stats clears it. `relay sandbox` is the checking, printing stand-in for
people; this one only counts, as fast as it can.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter

SUCCESS = json.dumps({"responseObject": {"success": True},
                      "status": {"code": 1000, "desc": "SUCCESS"}}).encode()


class Stats:
    def __init__(self, key: str = "marker") -> None:
        self.key = key
        self.clear()

    def clear(self) -> None:
        self.calls = 0
        self.first: float | None = None
        self.last: float | None = None
        self.markers: Counter[str] = Counter()
        self.times: dict[str, float] = {}

    def record(self, body: bytes) -> None:
        now = time.time()
        self.calls += 1
        self.first = self.first or now
        self.last = now
        try:
            marker = json.loads(body).get(self.key)
        except (ValueError, AttributeError):
            marker = None
        if marker is not None:
            self.markers[str(marker)] += 1
            self.times.setdefault(str(marker), now)

    def to_json(self, summary: bool = False, times: bool = False) -> bytes:
        if times:
            return json.dumps({"calls": self.calls, "markers": self.markers,
                               "times": self.times}).encode()
        if summary:  # cheap enough to poll while calls are measured
            return json.dumps({"calls": self.calls, "first": self.first, "last": self.last,
                               "distinct": len(self.markers)}).encode()
        return json.dumps({"calls": self.calls, "first": self.first, "last": self.last,
                           "markers": self.markers}).encode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: Stats,
                 latency: float) -> None:
    try:
        while True:  # keep-alive: the relay's worker reuses its connections
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (line.partition(":") for line in lines if line)}
            body = await reader.readexactly(int(headers.get("content-length") or 0))
            if path.startswith("/_stats"):
                if method == "DELETE":
                    stats.clear()
                answer = stats.to_json(summary=path == "/_stats?summary",
                                       times=path == "/_stats?times")
            else:
                if latency:
                    await asyncio.sleep(latency)
                stats.record(body)
                answer = SUCCESS
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def serve(port: int, latency: float, key: str) -> None:
    stats = Stats(key)
    server = await asyncio.start_server(lambda r, w: handle(r, w, stats, latency), "127.0.0.1",
                                        port, backlog=4096)
    print(f"Engati stand-in on http://127.0.0.1:{port}, latency {latency * 1000:.0f} ms",
          flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per call")
    parser.add_argument("--count-by", default="marker", help="the attribute that tells calls apart")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.latency, args.count_by))


if __name__ == "__main__":
    main()
