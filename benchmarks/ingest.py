"""Ingest latency under an open loop: how long a sender waits for its 2xx at a steady rate.

    .venv/bin/python benchmarks/ingest.py [--rate 300] [--seconds 10] [--database URL]

Webhooks (the signed 2 KB Typeform example, each with its own event id) leave on a fixed
schedule, `--rate` a second, each on a new connection, whether or not earlier ones have been
answered: an open loop, so a slow answer cannot slow the load down and hide itself. Each
latency runs from the moment its webhook was due to the last byte of the answer. The relay runs
as `relay serve` (SQLite in a temporary folder unless `--database` names another) with the
asyncio Engati stand-in answering at once, so the worker delivers while the web answers.
Also printed: the relay's CPU per webhook (web processes and worker), at this steady rate;
and first, the disk's own floor at the same rate and count (harness.disk_floor: a synced 8 kB
write per webhook, nothing else), the least any relay that syncs before it answers could
wait. On this project's VM the disk now and then holds a sync up for 40-100 ms, and every
ack due meanwhile waits for it: a p99 above the floor's is the relay's, one at it the disk's.
During the run a probe (harness.DiskProbe) syncs a small write of its own 20 times a second
and notes the syncs the disk held up; the acks are given again without those whose wait
overlapped one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from e2e import ROOT, SECRET, build_requests
from harness import (
    DiskProbe,
    answers,
    cpu_seconds,
    disk_floor,
    family,
    free_port,
    start_standin,
    stats,
    stop,
    wait_until,
)


def requests_bytes(path: Path, port: int) -> list[bytes]:
    out = []
    for line in path.read_text().splitlines():
        signature, body = line.split("\t", 1)
        raw = body.encode()
        out.append(
            b"POST /hooks/typeform-leads HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Content-Type: application/json\r\nTypeform-Signature: %s\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (port, signature.encode(), len(raw), raw))
    return out


async def post(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        status = int((await reader.readline()).split()[1])
        await reader.read()  # to the end: the server closes after answering
        return status
    finally:
        writer.close()


async def open_loop(port: int, requests: list[bytes], rate: float
                    ) -> list[tuple[float, float, int]]:
    """(when it was due, on perf_counter's clock; latency in seconds from then; HTTP status)
    per webhook."""
    results: list[tuple[float, float, int]] = []

    async def one(due: float, request: bytes) -> None:
        try:
            status = await post(port, request)
        except OSError:
            status = 0
        results.append((due, time.perf_counter() - due, status))

    start = time.perf_counter() + 0.1
    tasks = []
    for i, request in enumerate(requests):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due, request)))
    await asyncio.gather(*tasks)
    return results


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def serve_typeform(folder: Path, webhooks: int, database: str | None = None
                   ) -> tuple[subprocess.Popen, subprocess.Popen, int, int]:
    """`relay serve` with the Typeform example mapping, `webhooks` signed requests written to
    folder/requests.txt, and the Engati stand-in: (relay, stand-in, port, stand-in's port),
    once the relay answers."""
    (folder / "mappings").mkdir()
    shutil.copy(ROOT / "mappings" / "typeform-leads.yaml", folder / "mappings")
    build_requests(folder / "requests.txt", webhooks)
    standin_port, port = free_port(), free_port()
    standin = start_standin(standin_port, count_by="email")
    env = {**os.environ, "DATABASE_URL": database or f"sqlite:///{folder}/relay.db",
           "RELAY_MAPPINGS": str(folder / "mappings"), "TYPEFORM_SECRET": SECRET,
           "ENGATI_BASE_URL": f"http://127.0.0.1:{standin_port}",
           "ENGATI_CUSTOMER_ID": "1", "ENGATI_BOT_KEY": "b", "ENGATI_API_KEY": "k"}
    relay = subprocess.Popen([sys.executable, "-m", "relay", "serve", "--port", str(port)],
                             env=env, stdout=subprocess.DEVNULL,
                             stderr=(folder / "relay.log").open("wb"))
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/readyz"), "the relay")
    except BaseException:
        stop(relay, standin)
        raise
    return relay, standin, port, standin_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database", help="the relay's DATABASE_URL (default: SQLite)")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        floor = disk_floor(folder, args.rate, count)
        relay, standin, port, standin_port = serve_typeform(folder, count + 50, args.database)
        try:
            requests = requests_bytes(folder / "requests.txt", port)
            asyncio.run(open_loop(port, requests[count:], 50))  # warm up every web process
            wait_until(lambda: stats(standin_port, summary=True)["distinct"] >= 50, "the warm-up")
            pids = family(relay.pid)[1:]  # gunicorn and its workers, the delivery worker
            worker = [pid for pid in pids
                      if b"relay\x00worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            web = [pid for pid in pids if pid not in worker]
            cpu_before = cpu_seconds(web), cpu_seconds(worker)
            before = resource.getrusage(resource.RUSAGE_SELF)
            with DiskProbe(folder) as probe:
                results = asyncio.run(open_loop(port, requests[:count], args.rate))
            after = resource.getrusage(resource.RUSAGE_SELF)
            wait_until(lambda: stats(standin_port, summary=True)["distinct"] >= count + 50,
                       "the deliveries", timeout=60)
            web_ms, worker_ms = ((cpu_seconds(pids) - spent) / count * 1000
                                 for pids, spent in zip((web, worker), cpu_before, strict=True))
        finally:
            stop(relay, standin)
    latencies = [latency * 1000 for _, latency, _ in results]
    statuses = sorted({status for _, _, status in results})
    # The acks whose wait overlapped a sync the disk held up (the probe's): the disk's.
    clear = [latency * 1000 for due, latency, _ in results
             if not any(due < end and began < due + latency for began, end in probe.stalls)]
    generator_cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    print(f"{count} webhooks at {args.rate:.0f}/s, open loop, a new connection each; "
          f"answers {statuses}")
    print(f"ack latency ms: p50 {percentile(latencies, 0.5):.1f}  p90 "
          f"{percentile(latencies, 0.9):.1f}  p99 {percentile(latencies, 0.99):.1f}  "
          f"max {max(latencies):.1f}")
    # Read beside the figure above: a slower ack is likelier to overlap a stall, whatever
    # made it slow, so this can only come out lower.
    if clear:
        print(f"the same, but for the {len(latencies) - len(clear)} whose wait overlapped one "
              f"of the disk's {len(probe.stalls)} stalls: p50 {percentile(clear, 0.5):.1f}  "
              f"p99 {percentile(clear, 0.99):.1f}  max {max(clear):.1f}")
    else:
        print(f"every ack's wait overlapped one of the disk's {len(probe.stalls)} stalls")
    print(f"the disk alone, a synced write each: p50 {percentile(floor, 0.5):.1f}  p90 "
          f"{percentile(floor, 0.9):.1f}  p99 {percentile(floor, 0.99):.1f}  "
          f"max {max(floor):.1f}")
    print(f"CPU per webhook: {web_ms + worker_ms:.2f} ms (web {web_ms:.2f}, worker "
          f"{worker_ms:.2f})")
    print(f"the generator's CPU: {generator_cpu / args.seconds:.0%} of a core")


if __name__ == "__main__":
    main()
