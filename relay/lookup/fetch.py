"""One lookup's GET, and how its answer is judged: JSON from a 2xx is the answer; anything
else raises LookupFailed saying whether another try can help (the preset decides for the
statuses only its sender gives meaning to: Graph API error codes)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from relay.delivery.engati import retry_after
from relay.errors import LookupFailed
from relay.sources import Preset

MAX_ANSWER = 1024 * 1024  # bytes of an answer: a lead or an order is a few KB


async def fetch(session: aiohttp.ClientSession, url: str, token: str | None, timeout: float,
                preset: Preset, now: float) -> Any:
    """GET `url` (with `Authorization: Bearer <token>` when there is one) and return its JSON.
    Redirects are not followed: the token would travel to wherever they point."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    host = urlsplit(url).netloc
    try:
        async with session.get(url, headers=headers, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            status, waited = response.status, retry_after(response.headers, now)
            raw = await response.content.read(MAX_ANSWER + 1)
    except TimeoutError:
        raise LookupFailed(f"{host} did not answer within {timeout:g}s",
                           retryable=True) from None
    except aiohttp.ClientError as exc:
        raise LookupFailed(f"could not reach {host}: {type(exc).__name__}",
                           retryable=True) from None
    if len(raw) > MAX_ANSWER:
        raise LookupFailed(f"{host} answered more than {MAX_ANSWER} bytes", retryable=False,
                           status=status)
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested past what the parser takes
        answer = None
    if 200 <= status < 300:
        if answer is None:
            raise LookupFailed(f"{host} answered HTTP {status} with no JSON", retryable=False,
                               status=status)
        return answer
    if 300 <= status < 400:
        raise LookupFailed(f"{host} answered HTTP {status} (a redirect, not followed): give "
                           "lookup.url as the final URL", retryable=False, status=status)
    raise LookupFailed(f"{host} answered HTTP {status}{_detail(answer)}",
                       retryable=preset.lookup_retryable(status, answer), status=status,
                       retry_after=waited)


def _detail(answer: Any) -> str:
    """What an error answer says of itself, in the usual shapes (`{"error": {"message",
    "code"}}`, as the Graph API gives, or `{"error": "..."}`, or `{"message": "..."}`)."""
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error", answer)
    if isinstance(error, str):
        return f": {error[:300]}"
    if isinstance(error, dict):
        message = str(error.get("message") or "")[:300]
        code = error.get("code")
        return (f": {message}" if message else "") + (f" (code {code})" if code is not None
                                                      else "")
    return ""
