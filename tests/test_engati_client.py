"""The Engati client: what counts as success, and which failures are worth retrying."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from relay.engati import EngatiClient, build_request
from relay.errors import EngatiError
from relay.mapping import Delivery, Engati

TARGET = Engati("123456", "0a1b2c3d4e5f6a7b", "raw-key", "v2", "http://engati.test")
SUCCESS = {"responseObject": {"success": True}, "status": {"code": 1000, "desc": "SUCCESS"}}


def send(handler):
    """Send one request through a MockTransport answering with `handler`."""
    request = build_request(TARGET, Delivery("FLOW", "whatsapp", "919812345678", {"n": "A"}))

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await EngatiClient(client).send(request)

    return asyncio.run(go())


def failure(handler) -> EngatiError:
    with pytest.raises(EngatiError) as info:
        send(handler)
    return info.value


def test_sends_the_built_request():
    """The request on the wire is the one build_request describes."""
    seen = {}

    def handler(request):
        seen.update(url=str(request.url), auth=request.headers["authorization"],
                    body=request.content)
        return httpx.Response(200, json=SUCCESS)

    answer = send(handler)
    assert (answer.http_status, answer.code) == (200, 1000)
    assert seen["url"] == "http://engati.test/bot-api/v2.0/customer/123456/bot/0a1b2c3d4e5f6a7b/flow/FLOW"
    assert seen["auth"] == "Basic raw-key"
    assert httpx.Response(200, content=seen["body"]).json() == {
        "user.channel": "whatsapp", "user.phone_no": "919812345678", "n": "A"}


def test_200_without_a_status_code_is_success():
    """A 2xx without Engati's envelope still counts as accepted."""
    assert send(lambda r: httpx.Response(200, text="OK")).code is None


def test_engati_failure_code_in_a_200_is_dead():
    """HTTP 200 with status.code other than 1000 cannot succeed by repeating it."""
    error = failure(lambda r: httpx.Response(
        200, json={"status": {"code": 2003, "desc": "BOT_NOT_FOUND"}}))
    assert (error.retryable, error.code) == (False, 2003)
    assert "2003 BOT_NOT_FOUND" in str(error)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_are_retried(status):
    """408, 425, 429 and 5xx are worth another try."""
    error = failure(lambda r: httpx.Response(status))
    assert (error.retryable, error.status) == (True, status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_dead(status):
    """A request Engati refuses will be refused again."""
    assert failure(lambda r: httpx.Response(status)).retryable is False


def test_401_hints_at_the_key_without_showing_it():
    """A refused key says to check it, and never echoes it."""
    error = failure(lambda r: httpx.Response(401))
    assert "check the API key" in str(error)
    assert "raw-key" not in str(error)


def test_retry_after_seconds_and_date():
    """Retry-After is read as seconds or as an HTTP date."""
    assert failure(lambda r: httpx.Response(429, headers={"Retry-After": "7"})).retry_after == 7
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    wait = failure(lambda r: httpx.Response(503, headers={"Retry-After": later})).retry_after
    assert 100 < wait <= 120
    assert failure(lambda r: httpx.Response(503, headers={"Retry-After": "soon"})).retry_after \
        is None


def test_network_errors_and_timeouts_are_retried():
    """No answer at all is always worth another try."""
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    def slow(request):
        raise httpx.ReadTimeout("slow", request=request)

    assert failure(refuse).retryable is True
    assert "could not reach Engati: ConnectError" in str(failure(refuse))
    assert str(failure(slow)) == "timed out waiting for Engati"


def test_calls_take_turns_over_several_pools():
    """With several clients, calls are spread evenly over their pools."""
    seen = {"a": 0, "b": 0}

    def counting(name):
        def handler(request):
            seen[name] += 1
            return httpx.Response(200, json=SUCCESS)
        return handler

    request = build_request(TARGET, Delivery("FLOW", "whatsapp", "919812345678", {}))

    async def go():
        clients = [httpx.AsyncClient(transport=httpx.MockTransport(counting(n))) for n in "ab"]
        engati = EngatiClient(clients)
        for _ in range(4):
            await engati.send(request)
        for client in clients:
            await client.aclose()

    asyncio.run(go())
    assert seen == {"a": 2, "b": 2}
