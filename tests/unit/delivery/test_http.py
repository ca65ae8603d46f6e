"""The worker's HTTP client (relay/delivery/http.py) against raw servers on 127.0.0.1 that
answer with exactly the bytes a test gives: framing, keep-alive, broken and hostile answers,
requests that cannot be sent, TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Callable

import pytest

from relay.delivery import http
from relay.delivery.engati import EngatiClient
from relay.delivery.http import Client, WireError
from relay.errors import EngatiError
from relay.model import FailureKind

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawServer:
    """Answers each request with the next of `answers`; after an answer marked `close` it
    closes the connection, after one marked `hang` it waits for the client to close it.
    `greeting` is written as soon as a connection is made. Records each request and the
    client port it came from."""

    def __init__(self, answers: list[bytes | tuple[bytes, str]], greeting: bytes = b""):
        self.answers = list(answers)
        self.greeting = greeting
        self.requests: list[bytes] = []
        self.peers: list[int] = []
        self.port = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                 ssl=getattr(self, "ssl", None))
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.greeting:
                writer.write(self.greeting)
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                self.requests.append(head + await reader.readexactly(length))
                self.peers.append(writer.get_extra_info("peername")[1])
                answer = self.answers.pop(0)
                answer, then = answer if isinstance(answer, tuple) else (answer, "")
                writer.write(answer)
                await writer.drain()
                if then == "close":
                    break
                if then == "hang":
                    await reader.read()  # until the client lets go
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(answers: list, calls: Callable[[Client, str], object], greeting: bytes = b"",
        **client: object):
    """Start a RawServer with `answers`; run `calls(client, url)`; (its result, the server)."""
    async def go():
        async with RawServer(answers, greeting) as server:
            options = {"limit": 10, "timeout": 5.0, "connect_timeout": 2.0, **client}
            async with Client(**options) as c:  # type: ignore[arg-type]
                return await calls(c, f"http://127.0.0.1:{server.port}/a/b?c=d"), server
    return asyncio.run(go())


async def post(client: Client, url: str, body: bytes = b'{"x":1}'):
    return await client.request("POST", url, {"Content-Type": "application/json"}, body)


def test_the_request_on_the_wire():
    reply, server = run([OK], post)
    assert (reply.status, reply.body) == (200, b"ok")
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /a/b?c=d HTTP/1.1"
    assert set(lines[1:]) == {f"Host: 127.0.0.1:{server.port}".encode(),
                              b"Content-Type: application/json", b"Content-Length: 7"}
    assert body == b'{"x":1}'


@pytest.mark.parametrize("answer, status, body", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
     200, b"abcde"),
    ((b"HTTP/1.0 202 Accepted\r\n\r\nuntil the end", "close"), 202, b"until the end"),
    (b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK, 200, b"ok"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
    (b"HTTP/1.1 429 Too Many\r\nretry-after: 7\r\nContent-Length: 0\r\n\r\n", 429, b""),
])
def test_answers_framed_every_way(answer, status, body):
    reply, _ = run([answer], post)
    assert (reply.status, reply.body) == (status, body)
    if status == 429:
        assert reply.headers["Retry-After"] == "7"  # headers are case-insensitive


def test_connections_are_kept_alive_unless_the_server_says_close():
    async def five(client, url):
        return [(await post(client, url)).status for _ in range(5)]

    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    statuses, server = run([OK, OK, (closing, "close"), OK, OK], five)
    assert statuses == [200] * 5
    assert server.peers[0] == server.peers[1] == server.peers[2] != server.peers[3]
    assert server.peers[3] == server.peers[4]


def test_a_connection_the_server_closed_while_idle_is_not_used_again():
    async def two(client, url):
        first = await post(client, url)
        kept = [c for idle in client._idle.values() for c in idle]
        assert len(kept) == 1  # the answer did not say close: the connection was kept
        deadline = asyncio.get_running_loop().time() + 5
        while not kept[0].lost:
            assert asyncio.get_running_loop().time() < deadline, "the close never came"
            await asyncio.sleep(0.01)
        return first.status, (await post(client, url)).status

    statuses, server = run([(OK, "close"), OK], two)
    assert statuses == (200, 200)
    assert server.peers[0] != server.peers[1]


def test_a_connection_idle_too_long_is_not_used_again():
    now = [0.0]

    async def two(client, url):
        await post(client, url)
        now[0] += http.KEEP_IDLE
        await post(client, url)

    _, server = run([OK, OK], two, monotonic=lambda: now[0])
    assert server.peers[0] != server.peers[1]


@pytest.mark.parametrize("idle, reused", [(1.9, True), (2.0, False)])
def test_a_server_s_keep_alive_timeout_is_heeded(idle, reused):
    """`Keep-Alive: timeout=3`: the server closes idle connections after 3 s; ours is not used
    again after 2 (a second's margin for the close already on its way)."""
    now = [0.0]
    saying = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=3, max=100\r\nContent-Length: 2\r\n\r\nok"

    async def two(client, url):
        await post(client, url)
        now[0] += idle
        await post(client, url)

    _, server = run([saying, OK], two, monotonic=lambda: now[0])
    assert (server.peers[0] == server.peers[1]) is reused


@pytest.mark.parametrize("answer, message", [
    ((b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly this", "close"),
     "the connection closed before the answer was whole"),
    ((b"", "close"), "closed without an answer"),
    ((b"SMTP ready\r\n\r\n", "close"), "the answer could not be read"),
    ((b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"x" * 70_000 + b"\r\n\r\n", "hang"),
     "the answer could not be read: its head exceeds 65536 bytes"),
    ((b"HTTP/1.1 200 OK\r\nX-Endless: " + b"x" * 70_000, "hang"),  # a line never ended
     "the answer could not be read: its head exceeds 65536 bytes"),
    ((b"HTTP/1.1 103 Early Hints\r\n\r\n" * 3000, "hang"),  # interim answers for ever
     "the answer could not be read: its head exceeds 65536 bytes"),
    ((b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\nConnection: upgrade\r\n\r\n",
      "hang"), "the answer could not be read"),
])
def test_broken_answers_are_wire_errors(answer, message):
    async def call(client, url):
        with pytest.raises(WireError) as info:
            await post(client, url)
        return str(info.value)

    seen, _ = run([answer], call)
    assert seen.startswith(message)


def test_an_answer_to_nothing_asked_spoils_the_connection():
    """Bytes past the answer in the same read (a second answer, unasked): the connection is
    not used again."""
    statuses, server = run([OK + OK, OK], lambda c, u: _twice(c, u))
    assert statuses == (200, 200)
    assert server.peers[0] != server.peers[1]


async def _twice(client, url):
    first = await post(client, url)
    await asyncio.sleep(0)  # let the unasked bytes arrive if they came apart
    return first.status, (await post(client, url)).status


def test_a_huge_body_is_read_but_not_kept(monkeypatch):
    monkeypatch.setattr(http, "MAX_BODY", 1000)
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"y" * 5000
    reply, _ = run([big, OK], lambda c, u: _both_bodies(c, u))
    assert reply == (b"y" * 1000, b"ok")  # and the connection was still fit for the next


async def _both_bodies(client, url):
    return (await post(client, url)).body, (await post(client, url)).body


def test_a_server_that_speaks_first_is_a_wire_error_or_its_answer():
    """Bytes before any request (here an answer): the call fails on the wire, or takes them
    as its answer if they came after it was sent; nothing else escapes."""
    async def call(client, url):
        try:
            return (await post(client, url)).status
        except WireError as exc:
            return str(exc)

    seen, _ = run([OK], call, greeting=b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
    assert seen in (503, "the connection closed before the request was sent")


def test_a_call_cancelled_midway_leaves_no_connection_behind():
    """The worker cancels calls in flight when it stops: their connection is closed, never
    handed to the next call with an answer still to come on it."""
    async def calls(client, url):
        first = asyncio.ensure_future(post(client, url))
        deadline = asyncio.get_running_loop().time() + 5
        while not server_of[0].requests:
            assert asyncio.get_running_loop().time() < deadline, "the request never came"
            await asyncio.sleep(0.01)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return (await post(client, url)).body

    server_of: list[RawServer] = []

    async def go():
        async with RawServer([(b"", "hang"), OK]) as server:
            server_of.append(server)
            async with Client(limit=2, timeout=5, connect_timeout=2) as client:
                return await calls(client, f"http://127.0.0.1:{server.port}/x"), server

    body, server = asyncio.run(go())
    assert body == b"ok"
    assert server.peers[0] != server.peers[1]


def test_a_server_that_never_answers_times_out():
    async def call(client, url):
        with pytest.raises(TimeoutError):
            await post(client, url)

    run([(b"", "hang")], call, timeout=0.3)


@pytest.mark.parametrize("headers, url, message", [
    ({"Authorization": "Basic key\r\nX-Evil: 1"}, None, "the Authorization header holds a "),
    ({"Authorization": "Basic k\x00"}, None, "header holds a line break or NUL"),
    ({"Authorization": "Basic ключ"}, None, "not Latin-1"),
    ({}, "ftp://127.0.0.1/x", "the URL is not http(s) (its scheme: 'ftp')"),
    ({}, "http://127.0.0.1:1/a b", "the URL's path holds a space"),
])
def test_requests_that_cannot_be_sent(headers, url, message):
    async def call(client, server_url):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            await client.request("POST", url or server_url, headers, b"")

    _, server = run([OK], call)
    assert server.requests == []  # nothing reached the wire


def test_an_engati_key_with_a_line_break_is_a_setting_to_fix():
    """EngatiClient: a request that cannot be sent waits for its settings to be fixed, as a
    missing setting does, and says which header is at fault."""
    async def go():
        async with EngatiClient() as client:
            await client.send({"method": "POST", "url": "http://127.0.0.1:1/x",
                               "headers": {"Authorization": "Basic k\n"}, "json": {}})

    with pytest.raises(EngatiError) as info:
        asyncio.run(go())
    assert info.value.failure == FailureKind.UNCONFIGURED
    assert "the Authorization header holds a line break" in str(info.value)
    assert "ENGATI_" in str(info.value)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (openssl, from Debian's package)."""
    folder = tmp_path_factory.mktemp("tls")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", folder / "key.pem", "-out", folder / "cert.pem", "-days",
                        "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("openssl is not installed: the TLS tests need it to make a certificate")
    return folder / "cert.pem", folder / "key.pem"


def _tls(certificate, trusted: bool):
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(*certificate)
    client_side = ssl.create_default_context()
    if trusted:
        client_side.load_verify_locations(certificate[0])

    async def go():
        server = RawServer([OK])
        server.ssl = server_side
        async with server, Client(limit=2, timeout=5, connect_timeout=2,
                                  ssl_context=client_side) as client:
            return await post(client, f"https://127.0.0.1:{server.port}/x")

    return asyncio.run(go())


def test_tls_to_a_certificate_the_client_trusts(certificate):
    assert _tls(certificate, trusted=True).body == b"ok"


def test_tls_to_a_certificate_no_one_vouches_for_is_refused(certificate):
    with pytest.raises(WireError, match="SSLCertVerificationError"):
        _tls(certificate, trusted=False)
