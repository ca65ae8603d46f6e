"""Slow clients against the real web processes on 127.0.0.1 (relay.web_server.Worker).

Sixty-four connections that trickle a request, a byte at a time, must not keep a webhook
from being answered at once, by `relay serve` as it ships and by the Procfile's web command;
a request that does not arrive whole within RELAY_REQUEST_TIMEOUT is dropped; `relay serve`
refuses a port in use before it starts anything; the worker class sets up logging.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live import Process, Relay, answers, free_port, wait_for

pytestmark = pytest.mark.reliability

PROCFILE = Path(__file__).resolve().parents[3] / "Procfile"
MAPPING = "source: generic\nverify: false\nphone: body.phone\nflows: [{flow_key: ABC}]\n"
HEAD = b"POST /hooks/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # the rest of the head never comes
BODY = HEAD + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
SLOW = 64


class Tricklers:
    """`count` connections that send `first`, then a byte of `drip` each every `every` s."""

    def __init__(self, port: int, count: int, first: bytes, drip: bytes, every: float = 0.5):
        self.drip, self.every = drip, every
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.sockets.append(sock)
            sock.sendall(first)
            sock.setblocking(False)  # polled, never waited on
        self.started = time.monotonic()
        self.received = [b""] * count
        self.closed_at: list[float | None] = [None] * count
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        for i in range(120):  # at most a minute or so at the default pace
            if self._stop.wait(self.every):
                return
            byte = self.drip[i % len(self.drip):][:1]
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # the server may have let it go
                    sock.send(byte)
            self.rounds = i + 1

    def poll(self) -> None:
        """Take in what the server sent, and note when it closed each connection."""
        for i, sock in enumerate(self.sockets):
            while self.closed_at[i] is None:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self.closed_at[i] = time.monotonic() - self.started
                self.received[i] += data

    def held(self) -> int:
        """How many are still open and unanswered: held by the server, as a slow client is."""
        self.poll()
        return sum(c is None and not r for c, r in zip(self.closed_at, self.received,
                                                          strict=True))

    def __enter__(self) -> Tricklers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


def timed_posts(port: int, count: int = 8) -> list[tuple[int, float]]:
    """Normal webhooks, each on a new connection (the kernel hands each to either web
    process): their statuses and how long each answer took; one held past 2 s is status 0."""
    results = []
    with httpx.Client(timeout=2) as client:  # made first: its setup is not the server's time
        for _ in range(count):
            started = time.monotonic()
            try:
                status = client.post(f"http://127.0.0.1:{port}/hooks/slow",
                                     json={"phone": "+919812345678"},
                                     headers={"Connection": "close"}).status_code
            except httpx.HTTPError:
                status = 0
            results.append((status, time.monotonic() - started))
    return results


def assert_answered_while_held(port: int, *groups: Tricklers) -> None:
    wait_for(lambda: all(g.rounds >= 2 for g in groups), timeout=10,
             what="two bytes more from every slow client")
    held = sum(len(g.sockets) for g in groups)
    assert sum(g.held() for g in groups) == held, "the server let slow clients go too early"
    results = timed_posts(port)
    # The slow clients were still being held while the webhooks were answered.
    assert sum(g.held() for g in groups) == held
    slowest = max(seconds for _, seconds in results)
    figures = ", ".join(f"{status} in {seconds * 1000:.1f} ms" for status, seconds in results)
    assert all(200 <= status < 500 for status, _ in results) and slowest < 1, (
        f"with {held} slow clients held, webhooks answered {figures}")
    print(f"with {held} slow clients held, the slowest of {len(results)} webhooks was answered "
          f"in {slowest * 1000:.1f} ms ({figures})")


def _env(root: Path, **extra: str) -> dict[str, str]:
    mappings = root / "mappings"
    mappings.mkdir(exist_ok=True)
    (mappings / "slow.yaml").write_text(MAPPING)
    return {"DATABASE_URL": f"sqlite:///{root / 'relay.db'}", "RELAY_MAPPINGS": str(mappings),
            **extra}


@contextlib.contextmanager
def relay_serve(root: Path, **extra: str):
    port = free_port()
    serve = Relay(["serve", "--port", str(port)], _env(root, **extra), root / "serve.log")
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), what="relay serve")
        # and the worker: a SIGTERM before its handlers are in place would kill it (exit 15)
        wait_for(lambda: "relay.worker worker" in serve.output(), what="the worker")
        yield port
    finally:
        code = serve.stop()
    assert code == 0, serve.output()[-3000:]


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    with relay_serve(tmp_path_factory.mktemp("slow-serve")) as port:
        yield port


def procfile_web(port: int) -> list[str]:
    """The Procfile's web command, on 127.0.0.1:`port`; every other flag as it is there."""
    line = next(line for line in PROCFILE.read_text().splitlines() if line.startswith("web:"))
    argv = shlex.split(line.removeprefix("web:"))
    assert argv[0] == "gunicorn", line
    for i, arg in enumerate(argv):
        if arg == "--bind":
            argv[i + 1] = f"127.0.0.1:{port}"
        elif arg.startswith("--bind="):
            argv[i] = f"--bind=127.0.0.1:{port}"
    assert f"127.0.0.1:{port}" in " ".join(argv), f"no --bind in the Procfile's {line!r}"
    return [sys.executable, "-m", "gunicorn", *argv[1:]]


def test_a_webhook_is_answered_under_a_second_while_64_clients_trickle_headers(serve):
    with Tricklers(serve, SLOW, HEAD, b"X-Slow: " + b"a" * 200) as slow:
        assert_answered_while_held(serve, slow)


def test_a_webhook_is_answered_under_a_second_while_64_clients_trickle_a_body(serve):
    with Tricklers(serve, SLOW, BODY, b'"' + b"a" * 200) as slow:
        assert_answered_while_held(serve, slow)


def test_the_procfile_web_command_answers_under_a_second_while_128_clients_trickle(tmp_path):
    env = _env(tmp_path)
    upgrade = Relay(["db", "upgrade"], env, tmp_path / "upgrade.log")  # the release: process
    upgrade.process.wait(60)
    assert upgrade.stop() == 0, upgrade.output()
    port = free_port()
    web = Process(procfile_web(port), env, tmp_path / "web.log")
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), what="the Procfile's web")
        with Tricklers(port, SLOW, HEAD, b"X-Slow: " + b"a" * 200) as heads, \
                Tricklers(port, SLOW, BODY, b'"' + b"a" * 200) as bodies:
            assert_answered_while_held(port, heads, bodies)
    finally:
        code = web.stop()
    assert code == 0, web.output()[-3000:]
    # The worker class set up the relay's logging before the app loaded (create_app does
    # not): one formatted line per webhook, and what the app said while loading.
    assert re.search(r"^\S+ \S+ INFO relay\.inbound inbound mapping=slow status=202 ",
                     web.output(), re.M), web.output()[-3000:]


def test_a_request_that_does_not_arrive_within_the_timeout_is_dropped(tmp_path):
    with relay_serve(tmp_path, RELAY_REQUEST_TIMEOUT="1") as port, \
            Tricklers(port, 1, HEAD, b"X-Slow: " + b"a" * 200, every=0.2) as head, \
            Tricklers(port, 1, BODY, b'"' + b"a" * 200, every=0.2) as body:
        def dropped() -> bool:
            body.poll()
            return head.held() == 0 and body.closed_at[0] is not None
        wait_for(dropped, timeout=5, what="the server to drop both slow requests")
    # Closed once the second was up, not before: the timeout, not some other limit, did it.
    assert 0.9 <= head.closed_at[0] < 3, head.closed_at
    assert head.received == [b""]  # a head that never ended gets no answer
    assert 0.9 <= body.closed_at[0] < 3, body.closed_at
    assert body.received[0].startswith(b"HTTP/1.1 408 "), body.received[0][:200]
    assert b"Connection: close" in body.received[0]


def _session(sid: int) -> list[int]:
    """The processes still in session `sid` (Process starts each child in its own)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[3]) == sid:
                members.append(int(stat.parent.name))
    return members


def test_serve_refuses_a_port_in_use_before_starting_anything(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        serve = Relay(["serve", "--port", str(port)], _env(tmp_path), tmp_path / "serve.log")
        serve.process.wait(30)
        code = serve.stop()
        output = serve.output()
    assert code == 1, output
    assert output.strip().splitlines() == [
        f"error: 127.0.0.1:{port} is already in use (another relay?); pick another with --port"]
    assert "gunicorn" not in output.lower()
    assert _session(serve.process.pid) == []
    assert not (tmp_path / "relay.db").exists()  # it stopped before it touched the database


def test_large_bodies_held_at_once_are_capped_and_small_ones_still_answered(tmp_path):
    """Connections that each declare a large body and trickle it cannot make a web process
    hold memory without bound: past its budget (8 bodies of RELAY_MAX_BODY) the next is 503
    unread, while webhooks of a few KB are answered as before."""
    big = 10_000_000
    head = (b"POST /hooks/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % big)
    with relay_serve(tmp_path, RELAY_MAX_BODY=str(big)) as port, \
            Tricklers(port, 24, head, b'"' + b"a" * 200) as slow:
        def refused() -> int:
            slow.poll()
            return sum(r.startswith(b"HTTP/1.1 503 ") for r in slow.received)
        # Two web processes, 8 bodies each at most: at least 8 of the 24 are turned away.
        wait_for(lambda: refused() >= 8, timeout=10, what="the budget to turn bodies away")
        assert all(status in (202, 422) and seconds < 1 for status, seconds in timed_posts(port))
