"""What the benchmark scripts share: ports, the Engati stand-in, and reading a process's CPU
time and peak memory from /proc (Linux)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_standin(port: int, latency: float = 0.0, count_by: str = "marker") -> subprocess.Popen:
    standin = subprocess.Popen(
        [sys.executable, str(HERE / "engati_standin.py"), "--port", str(port),
         "--latency", str(latency), "--count-by", count_by], stdout=subprocess.DEVNULL)
    wait_until(lambda: answers(f"http://127.0.0.1:{port}/_stats"), "the Engati stand-in")
    return standin


def stats(port: int, *, clear: bool = False, summary: bool = False, times: bool = False) -> dict:
    """The stand-in's counts; `summary`: without the markers (for polling during a run: a
    stand-in busy serialising thousands of markers answers calls late); `times`: with when
    each marker was first received."""
    query = "?summary" if summary else "?times" if times else ""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_stats{query}",
        method="DELETE" if clear else "GET")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_until(predicate, what: str, timeout: float = 60.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def family(pid: int) -> list[int]:
    """A process and its children (gunicorn's master and its workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *(p for child in children for p in family(int(child)))]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def server_backends(database: str) -> list[int]:
    """PostgreSQL's server processes serving `database` (a SQLAlchemy URL) now: the
    connections of the web processes and the worker, whose work the relay's own CPU does
    not count. Read from the process titles ("postgres: 15/main: user db host(port) ...")."""
    name = sa.engine.make_url(database).database
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\x00")[0].decode(errors="replace")
        except OSError:
            continue
        words = title.split()
        if title.startswith("postgres: ") and len(words) > 4 and words[3] == name:
            found.append(int(entry.name))
    return found


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the peak resident set
            return int(line.split()[1]) / 1024
    return 0.0


def disk_floor(folder: Path, rate: float, count: int) -> list[float]:
    """The least any durable ack can wait on this disk: `count` writes of 8 kB, each synced
    (fdatasync), on an open loop at `rate` a second, into a file in `folder` written in place
    (as a database's log is, once it has grown); per write, ms from its due time to its sync's
    return. A sync the disk holds up delays those due meanwhile, as it would their acks."""
    path = folder / "floor.bin"
    span = 4 << 20  # bytes written round and round, allocated and synced beforehand
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, bytes(span))
        os.fsync(descriptor)
        page = b"x" * 8192
        latencies = []
        start = time.perf_counter() + 0.05
        for i in range(count):
            due = start + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            os.pwrite(descriptor, page, i * len(page) % span)
            os.fdatasync(descriptor)
            latencies.append((time.perf_counter() - due) * 1000)
    finally:
        os.close(descriptor)
        path.unlink()
    return latencies


class DiskProbe:
    """While in its block, a thread syncs a 4 kB write in `folder` every EVERY seconds and
    keeps, as `stalls`, the (start, end) on perf_counter's clock of each sync that took over
    STALL seconds: when the disk held syncs up, whoever else was waiting for one."""

    EVERY = 0.05
    STALL = 0.005

    def __init__(self, folder: Path):
        self.path = folder / "probe.bin"
        self.stalls: list[tuple[float, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-probe", daemon=True)

    def __enter__(self) -> DiskProbe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, bytes(4096))
            os.fsync(descriptor)
            while not self._done.wait(self.EVERY):
                os.pwrite(descriptor, b"p" * 4096, 0)
                began = time.perf_counter()
                os.fdatasync(descriptor)
                ended = time.perf_counter()
                if ended - began > self.STALL:
                    self.stalls.append((began, ended))
        finally:
            os.close(descriptor)
            self.path.unlink()


def stop(*processes: subprocess.Popen | None) -> None:
    """SIGTERM, and wait: each process stops as it would in production."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(30)
