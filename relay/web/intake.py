"""POST /hooks/<name>: store a webhook and answer; the worker delivers it.

Served as a plain WSGI app in front of Flask (`Intake`): a webhook needs none of what Flask
does for the console (routing, request contexts, sessions, error pages), and that machinery
cost a third of the CPU of a webhook that is mapped and stored. The sender is answered 2xx
only after the event and its deliveries are committed; Engati is never called inside the
request.
"""

from __future__ import annotations

import http
import logging
import time
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from werkzeug.wsgi import get_content_length, get_input_stream

from relay.capture.samples import take_sample
from relay.capture.windows import OpenWindows
from relay.config import Settings
from relay.errors import BodyError, InboundError, SignatureError, StoreUnavailable, field_errors
from relay.model import Received
from relay.sources import Endpoint, Inbound, Preset
from relay.sources.endpoint import valid_name
from relay.sources.redact import redact
from relay.sources.registry import Registry
from relay.store import Store
from relay.web import metrics
from relay.web.errors import error_body
from relay.web.limits import RateLimit
from relay.web.public_url import public_base

PREFIX = "/hooks/"
DEFAULT_PRESET = Preset()

log = logging.getLogger("relay.inbound")

T = TypeVar("T")
# A webhook's handling as steps: it yields each call that may wait on the database, as
# (function, *args), and is sent the call's result (or thrown its exception). The WSGI app
# makes the calls in its own thread (`run`); a web process makes them off its event loop and
# writes the accepts of many webhooks together (relay/web/hooks.py), so that the rest of a
# webhook is handled where it arrived, with no thread to hand it to and back.
Steps = Generator[tuple[Any, ...], Any, T]
Answer = tuple[str, list[tuple[str, str]], bytes]  # the status line, headers and body
Outcome = tuple[int, dict[str, Any], int | None]  # status, the answer's JSON, Retry-After


def hook_name(path: str) -> str | None:
    """The name of /hooks/<name> (WSGI's latin-1 PATH_INFO read as the UTF-8 URLs carry),
    or None for any other path."""
    name = path[len(PREFIX):]
    if not path.startswith(PREFIX) or not name or "/" in name:
        return None
    return name.encode("latin-1").decode("utf-8", "replace")


def run(steps: Steps[T]) -> T:
    """Take `steps` to their end here, making each call they yield in turn."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            call = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value
        result, error = None, None
        try:
            result = call[0](*call[1:])
        except Exception as exc:
            error = exc


class Intake:
    """The WSGI app for /hooks/<name>; every other path goes on to `fallback` (Flask)."""

    def __init__(self, fallback: Callable[..., Iterable[bytes]], settings: Settings,
                 store: Store, registry: Registry):
        self.fallback = fallback
        self.settings = settings
        self.store = store
        self.registry = registry
        self._unverified = RateLimit(settings.unverified_limit, 60.0)
        # Read from the database at most once a second, not once per webhook.
        self.windows = OpenWindows(store, settings.capture_refresh)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        name = hook_name(environ.get("PATH_INFO", ""))
        if name is None:
            return self.fallback(environ, start_response)
        status, headers, body = run(self.handle(environ, name))
        start_response(status, headers)
        return [body]

    def handle(self, environ: dict[str, Any], name: str) -> Steps[Answer]:
        """Answer the webhook of `environ`, for /hooks/<name> (`hook_name` of its path): its
        steps, each store call yielded for the caller to make (see Steps)."""
        started = time.perf_counter()
        endpoint, preset = None, DEFAULT_PRESET
        event_id: int | str = "-"
        try:
            endpoint = self.registry.get(name)
            preset = endpoint.preset if endpoint else DEFAULT_PRESET
            method = environ.get("REQUEST_METHOD")
            shaken = (endpoint.preset.handshake(endpoint, self._query(environ))
                      if method == "GET" and endpoint is not None else None)
            if shaken is not None:  # a sender checking the URL (Meta): answered, not stored
                return self._answer(environ, name, endpoint, started, *shaken)
            if method != "POST":
                raise InboundError(f"/hooks/{name} takes {' and '.join(preset.methods)} only",
                                   405, "send the webhook as an HTTP POST")
            window = ((yield (self.windows.get, name)) if self.windows.stale()
                      else self.windows.get(name))
            inbound, taken = None, None
            if window is not None:
                inbound = self._inbound(environ)  # read once: _receive may take it over
                taken = yield (take_sample, self.store, window, endpoint, inbound,
                               self.settings.capture_samples, time.time())
            if taken is not None:  # captured as a sample, never delivered (capture/)
                status, answer, preset = taken
                retry_after = None
            elif endpoint is None:
                status, answer, retry_after = self._unknown(name)
            else:
                status, answer, retry_after = yield from self._receive(endpoint, environ,
                                                                       inbound)
            event_id = answer.get("event_id") or (
                f"sample:{answer['sample_id']}" if "sample_id" in answer else "-")
        except Exception as exc:  # every failure gets an answer that says why
            status, answer, retry_after = yield from self._failure(name, exc)
        code, body, content_type = preset.respond(status, answer)
        return self._answer(environ, name, endpoint, started, code, body, content_type,
                            retry_after, event_id)

    def _answer(self, environ: dict[str, Any], name: str, endpoint: Endpoint | None,
                started: float, code: int, body: bytes, content_type: str,
                retry_after: int | None = None, event_id: int | str = "-") -> Answer:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if retry_after:
            headers.append(("Retry-After", str(retry_after)))
        if code == 405:
            methods = endpoint.preset.methods if endpoint else ("POST",)
            headers.append(("Allow", ", ".join(methods)))
        metrics.INBOUND.labels(name if endpoint else "(unknown)", str(code)).inc()
        log.info("inbound mapping=%s status=%d event=%s bytes=%s ms=%.1f", name, code,
                 event_id, environ.get("CONTENT_LENGTH") or "-",
                 (time.perf_counter() - started) * 1000)
        return f"{code} {http.HTTPStatus(code).phrase}", headers, body

    def _unknown(self, name: str) -> Outcome:
        """No mapping serves /hooks/<name>: 404, or 503 while its file exists but is broken
        (a sender such as Typeform disables a webhook that gets a 404)."""
        broken = self.registry.broken_error(name)
        if broken:
            return 503, error_body(f"/hooks/{name} cannot serve: its mapping file does not load",
                                   f"fix {broken}; the file is loaded again when it changes, "
                                   "and the sender's retries are then accepted"), 60
        if not valid_name(name):  # no file could serve it: say so, not "add <it>.yaml"
            raise InboundError(f"no mapping named {name[:60]!r}", 404, "a mapping's name is "
                               "letters, digits, '-', '_' and '.', starting with a letter or "
                               "digit")
        raise InboundError(f"no mapping named {name!r}", 404,
                           f"add {self._shown(f'{name}.yaml')} to serve /hooks/{name}")

    def _shown(self, file: str) -> str:
        """A file of the mappings folder as a sender may see it: the folder as configured,
        but never an absolute path of this machine."""
        folder = Path(self.settings.mappings)
        return f"{file} in the mappings folder" if folder.is_absolute() else (
            (folder / file).as_posix())

    def _receive(self, endpoint: Endpoint, environ: dict[str, Any],
                 inbound: Inbound | None = None) -> Steps[Outcome]:
        if endpoint.locked:
            return 503, error_body(f"/hooks/{endpoint.name} is not ready: {endpoint.locked}",
                                   "set it in the relay's environment and restart; the "
                                   "sender's retries will then be accepted"), 60
        if not endpoint.preset.verifies(endpoint) and (wait := self._unverified.take(
                endpoint.name)):
            return 429, error_body(f"/hooks/{endpoint.name} verifies nothing, so it takes at "
                                   f"most {self.settings.unverified_limit} webhooks a minute",
                                   "add verification to the mapping (docs/sources.md), or "
                                   "raise RELAY_UNVERIFIED_LIMIT"), wait
        inbound = inbound or self._inbound(environ)
        if endpoint.preset.verifies(endpoint) and endpoint.preset.unsigned(inbound) and (
                wait := self._unverified.take(endpoint.name)):  # WooCommerce's ping
            return 429, error_body(f"/hooks/{endpoint.name} takes at most "
                                   f"{self.settings.unverified_limit} unsigned requests a "
                                   "minute", "retry later, or raise RELAY_UNVERIFIED_LIMIT"), wait
        raw, headers, query = inbound.raw, inbound.headers, inbound.query
        now = time.time()
        endpoint.preset.verify(endpoint, inbound, now)  # SignatureError: 401
        envelope = endpoint.preset.envelope(raw, headers, query)  # BodyError: 400 / 415
        endpoint.preset.admit(endpoint, envelope)
        result = endpoint.preset.evaluate(endpoint.mapping, envelope, raw, now)
        stored = endpoint.preset.stored_body(raw)  # without a credential in it (Google Ads)
        receipt = yield (self.store.accept, Received(
            endpoint.name, stored, redact(headers, endpoint.credentials),
            redact(query, endpoint.credentials), result, now))
        answer: dict[str, Any] = {"status": receipt.status, "event_id": receipt.event_id}
        errors = [e.to_dict() for e in result.errors]
        if receipt.status == "accepted":
            answer["deliveries"] = receipt.deliveries
            if receipt.cancelled is not None:  # a webhook with `cancel:`
                answer["cancelled"] = receipt.cancelled
            if receipt.lookups:  # fetched by the worker before they are mapped
                answer["lookups"] = receipt.lookups
            if errors:  # some items of a batch could not be mapped
                answer["errors"] = errors
            return 202, answer, None
        if receipt.status == "failed":
            answer.update(error_body(
                "the webhook could not be mapped: " + field_errors(result.errors),
                f"fix the webhook or {self._shown(Path(endpoint.file).name)}; the event is "
                f"stored: `relay replay {receipt.event_id}` maps it again", errors=errors))
            return 422, answer, None
        if receipt.status == "skipped":
            answer["reason"] = result.skipped
        return 200, answer, None

    def _inbound(self, environ: dict[str, Any]) -> Inbound:
        """The request as presets see it: the body (413 past the limit), lower-cased
        headers, the query (a repeated parameter as a list) and the public URL."""
        raw = self._read_body(environ)
        return Inbound(raw, _headers(environ), self._query(environ), "POST",
                       self._public_url(environ))

    @staticmethod
    def _query(environ: dict[str, Any]) -> dict[str, Any]:
        """The query string's parameters, a repeated one as a list."""
        query: dict[str, Any] = {}
        for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True,
                                    errors="replace"):
            query.setdefault(key, []).append(value)
        return {k: v[0] if len(v) == 1 else v for k, v in query.items()}

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        """The whole body, or 413 past the limit, whether Content-Length is given, absent
        (chunked) or lying; a body that ends before its Content-Length is refused, not
        guessed."""
        limit = self.settings.max_body
        declared = get_content_length(environ)
        if declared is not None and declared > limit:
            raise _too_large(limit)
        raw = get_input_stream(environ).read(limit + 1)
        if len(raw) > limit:
            raise _too_large(limit)
        if declared is not None and len(raw) < declared:
            raise BodyError(f"the body ended after {len(raw)} of its {declared} bytes")
        return raw

    def _public_url(self, environ: dict[str, Any]) -> str:
        """The URL as the sender called it (HubSpot signs it), behind proxies too."""
        query = environ.get("QUERY_STRING", "")
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path = path.encode("latin-1").decode("utf-8", "replace") + (f"?{query}" if query else "")
        return public_base(self.settings, environ)[0] + path

    def _failure(self, name: str, exc: Exception) -> Steps[Outcome]:
        """The answer to a webhook that was not stored, and why."""
        if isinstance(exc, SignatureError) and (
                yield (self.store.refuse, name, exc.reason, time.time())):
            # Once a minute per kind: a flood of forgeries must not flood the log either.
            log.warning("refused mapping=%s: %s (more of this kind this minute are counted "
                        "in the failures inbox, not logged)", name, exc.reason)
        if isinstance(exc, InboundError):
            return exc.status, error_body(str(exc), exc.hint), None
        if isinstance(exc, StoreUnavailable):
            log.error("database write failed: %s", exc)
            return 503, error_body("the webhook could not be stored right now",
                                   "retry later; nothing was accepted"), 5
        log.exception("unexpected error")
        return 500, error_body("internal error; the relay's log has the details"), None


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers by lower-cased name, as werkzeug's EnvironHeaders lists them
    (HTTP_X_Y as x-y; CONTENT_TYPE and CONTENT_LENGTH when set), without its objects."""
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                headers[key[5:].replace("_", "-").lower()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").lower()] = value
    return headers


def _too_large(limit: int) -> BodyError:
    return BodyError(f"the body is larger than {limit} bytes", 413,
                     "send a smaller body, or raise RELAY_MAX_BODY")
