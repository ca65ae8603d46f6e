"""The Engati client: what counts as success, and which failures are worth retrying."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from relay.delivery.engati import EngatiClient
from relay.delivery.request import build_request
from relay.errors import EngatiError
from relay.mapping import Delivery, Engati

SUCCESS = {"responseObject": {"success": True}, "status": {"code": 1000, "desc": "SUCCESS"}}


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


@pytest.fixture
def failure(send):
    def failure(handler, **options) -> EngatiError:
        with pytest.raises(EngatiError) as info:
            send(handler, **options)
        return info.value

    return failure


def test_sends_the_built_request(send, engati):
    """The request on the wire is the one build_request describes."""
    seen = {}

    def handler(request):
        seen.update(url=str(request.url), auth=request.headers["authorization"],
                    body=request.content)
        return httpx.Response(200, json=SUCCESS)

    answer = send(handler)
    assert (answer.http_status, answer.code) == (200, 1000)
    assert seen["url"] == (
        f"{engati.url}/bot-api/v2.0/customer/123456/bot/0a1b2c3d4e5f6a7b/flow/FLOW")
    assert seen["auth"] == "Basic raw-key"
    assert httpx.Response(200, content=seen["body"]).json() == {
        "user.channel": "whatsapp", "user.phone_no": "919812345678", "n": "A"}


def test_200_without_a_status_code_is_success(send, failure):
    """A 2xx without Engati's envelope still counts as accepted."""
    assert send(lambda r: httpx.Response(200, text="OK")).code is None


def test_engati_failure_code_in_a_200_is_dead(send, failure):
    """HTTP 200 with status.code other than 1000 cannot succeed by repeating it."""
    error = failure(lambda r: httpx.Response(
        200, json={"status": {"code": 2003, "desc": "BOT_NOT_FOUND"}}))
    assert (error.retryable, error.code) == (False, 2003)
    assert "2003 BOT_NOT_FOUND" in str(error)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_are_retried(failure, status):
    """408, 425, 429 and 5xx are worth another try."""
    error = failure(lambda r: httpx.Response(status))
    assert (error.retryable, error.status) == (True, status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_dead(failure, status):
    """A request Engati refuses will be refused again."""
    assert failure(lambda r: httpx.Response(status)).retryable is False


def test_401_hints_at_the_key_without_showing_it(send, failure):
    """A refused key says to check it, and never echoes it."""
    error = failure(lambda r: httpx.Response(401))
    assert "check the API key" in str(error)
    assert "raw-key" not in str(error)


def test_retry_after_seconds_and_date(send, failure):
    """Retry-After is read as seconds or as an HTTP date."""
    assert failure(lambda r: httpx.Response(429, headers={"Retry-After": "7"})).retry_after == 7
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    wait = failure(lambda r: httpx.Response(503, headers={"Retry-After": later})).retry_after
    assert 100 < wait <= 120
    assert failure(lambda r: httpx.Response(503, headers={"Retry-After": "soon"})).retry_after \
        is None


def test_network_errors_and_timeouts_are_retried(failure, engati):
    """No answer at all is always worth another try."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
        refused = failure(lambda r: httpx.Response(200), base_url=nowhere)

    async def slow(request):
        await asyncio.sleep(5)

    assert refused.retryable is True
    assert "could not reach Engati: ClientConnectorError" in str(refused)
    timed_out = failure(slow, timeout=0.2)
    assert (timed_out.retryable, str(timed_out)) == (True, "timed out waiting for Engati")


def test_connections_are_kept_alive(engati):
    """Calls reuse their connection to Engati instead of opening one each."""
    peers = []
    request = build_request(Engati("1", "b", "k", "v2", engati.url),
                            Delivery("FLOW", "whatsapp", "919812345678", {}))

    def handler(request):
        peers.append(request.headers.get("connection", "keep-alive"))
        return httpx.Response(200, json=SUCCESS)

    engati.handler = handler

    async def go():
        async with EngatiClient() as client:
            for _ in range(5):
                await client.send(request)
            return len(client._session.connector._conns)

    assert asyncio.run(go()) == 1
    assert peers == ["keep-alive"] * 5
