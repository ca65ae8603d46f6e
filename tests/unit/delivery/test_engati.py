"""The Engati client: how answers are judged (`classify`, pure), and the transport: the
request on the wire, timeouts, unreachable hosts, keep-alive."""

from __future__ import annotations

import asyncio
import json
import socket
from email.utils import formatdate

import httpx
import pytest
from aiohttp import web

from relay.delivery.engati import Answer, EngatiClient, Reply, classify, unconfigured
from relay.delivery.request import build_request
from relay.errors import EngatiError
from relay.mapping import Delivery, Engati
from relay.model import FailureKind

NOW = 1_700_000_000.0
SUCCESS = {"responseObject": {"success": True}, "status": {"code": 1000, "desc": "SUCCESS"}}
BOT_NOT_FOUND = json.dumps({"status": {"code": 2003, "desc": "BOT_NOT_FOUND"}}).encode()
LATER = formatdate(NOW + 120, usegmt=True)


def judged(status, headers=None, body=b""):
    """What classify makes of a reply: the Answer, or the EngatiError it raises."""
    try:
        return classify(Reply(status, headers or {}, body), NOW)
    except EngatiError as exc:
        return exc


@pytest.mark.parametrize("status, body, answer", [
    (200, json.dumps(SUCCESS).encode(), Answer(200, 1000)),
    (200, b"OK", Answer(200, None)),  # a 2xx without Engati's envelope is accepted too
    (202, b"{}", Answer(202, None)),
])
def test_success(status, body, answer):
    """A 2xx is success unless its body's status.code says otherwise."""
    assert judged(status, body=body) == answer


@pytest.mark.parametrize("status, headers, body, kind, retry_after, message", [
    (200, {}, BOT_NOT_FOUND, FailureKind.CODE, None,
     "Engati answered HTTP 200 with status 2003 BOT_NOT_FOUND"),
    (401, {}, b"", FailureKind.AUTH, None, "Engati answered HTTP 401 (check the API key)"),
    (403, {}, b"", FailureKind.AUTH, None, "Engati answered HTTP 403 (check the API key)"),
    (400, {}, BOT_NOT_FOUND, FailureKind.REJECTED, None,
     "Engati answered HTTP 400 with status 2003 BOT_NOT_FOUND"),
    (404, {}, b"", FailureKind.REJECTED, None, "Engati answered HTTP 404"),
    (422, {}, b"", FailureKind.REJECTED, None, "Engati answered HTTP 422"),
    (302, {}, b"", FailureKind.REJECTED, None, "Engati answered HTTP 302"),
    (408, {}, b"", FailureKind.TIMEOUT, None, "Engati answered HTTP 408"),
    (425, {}, b"", FailureKind.RATE_LIMITED, None, "Engati answered HTTP 425"),
    (429, {"Retry-After": "7"}, b"", FailureKind.RATE_LIMITED, 7, "Engati answered HTTP 429"),
    (500, {}, b"", FailureKind.SERVER, None, "Engati answered HTTP 500"),
    (502, {}, b"", FailureKind.SERVER, None, "Engati answered HTTP 502"),
    (503, {"Retry-After": LATER}, b"", FailureKind.SERVER, 120, "Engati answered HTTP 503"),
    (503, {"Retry-After": "soon"}, b"", FailureKind.SERVER, None, "Engati answered HTTP 503"),
    (504, {"Retry-After": "-5"}, b"", FailureKind.SERVER, 0, "Engati answered HTTP 504"),
    (599, {}, b"", FailureKind.SERVER, None, "Engati answered HTTP 599"),
])
def test_failures(status, headers, body, kind, retry_after, message):
    """Each failure has its kind, which says whether a retry can help; Retry-After is read
    as seconds or as an HTTP date (against `now`); the message never echoes the key."""
    error = judged(status, headers, body)
    assert isinstance(error, EngatiError)
    assert (error.failure, error.retryable, error.status, error.retry_after, str(error)) == (
        kind, kind.retryable, status, retry_after, message)


def test_unconfigured_names_what_to_set():
    """Nothing is sent without the settings: the error names the variables, and waiting for
    them to be set is worth it."""
    error = unconfigured(["customer_id", "api_key"])
    assert (str(error), error.failure, error.retryable, error.status) == (
        "engati settings not set: ENGATI_CUSTOMER_ID, ENGATI_API_KEY",
        FailureKind.UNCONFIGURED, True, None)


@pytest.fixture
def send(engati):
    """Send one request to the fake Engati, which answers with `handler`."""
    def send(handler, base_url=None, timeout=15.0):
        engati.handler = handler
        target = Engati("123456", "0a1b2c3d4e5f6a7b", "raw-key", "v2", base_url or engati.url)
        request = build_request(target, Delivery("FLOW", "whatsapp", "919812345678", {"n": "A"}))

        async def go():
            async with EngatiClient(timeout=timeout) as client:
                return await client.send(request)

        return asyncio.run(go())

    return send


def test_sends_the_built_request(send, engati):
    """The request on the wire is the one build_request describes, and the answer is judged."""
    seen = {}

    def handler(request):
        seen.update(url=str(request.url), auth=request.headers["authorization"],
                    body=request.content)
        return httpx.Response(200, json=SUCCESS)

    assert send(handler) == Answer(200, 1000)
    assert seen["url"] == (
        f"{engati.url}/bot-api/v2.0/customer/123456/bot/0a1b2c3d4e5f6a7b/flow/FLOW")
    assert seen["auth"] == "Basic raw-key"
    assert json.loads(seen["body"]) == {
        "user.channel": "whatsapp", "user.phone_no": "919812345678", "n": "A"}


def test_a_failure_on_the_wire_is_classified(send):
    """A refusal that came over the socket raises the error classify gives."""
    with pytest.raises(EngatiError) as info:
        send(lambda r: httpx.Response(429, headers={"Retry-After": "3"}))
    assert (info.value.failure, info.value.retry_after) == (FailureKind.RATE_LIMITED, 3)


def test_an_unreachable_engati(send):
    """No connection at all is worth another try."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        with pytest.raises(EngatiError) as info:
            send(lambda r: httpx.Response(200),
                 base_url=f"http://127.0.0.1:{closed.getsockname()[1]}")
    assert (info.value.failure, info.value.retryable, str(info.value)) == (
        FailureKind.UNREACHABLE, True, "could not reach Engati: ConnectionRefusedError")


def test_a_timeout(send):
    """No answer within the timeout is worth another try."""
    async def slow(request):
        await asyncio.sleep(5)

    with pytest.raises(EngatiError) as info:
        send(slow, timeout=0.2)
    assert (info.value.failure, info.value.retryable, str(info.value)) == (
        FailureKind.TIMEOUT, True, "timed out waiting for Engati")


def test_connections_are_kept_alive():
    """Calls reuse their connection to Engati instead of opening one each: the server sees
    every call come from the same client port."""
    peers = []

    async def answer(request: web.BaseRequest) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response(SUCCESS)

    async def go():
        runner = web.ServerRunner(web.Server(answer))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        request = build_request(Engati("1", "b", "k", "v2", url),
                                Delivery("FLOW", "whatsapp", "919812345678", {}))
        try:
            async with EngatiClient() as client:
                for _ in range(5):
                    await client.send(request)
        finally:
            await runner.cleanup()

    asyncio.run(go())
    assert len(peers) == 5
    assert len(set(peers)) == 1
