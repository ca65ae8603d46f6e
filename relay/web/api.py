"""The operator API under /api, and the guard in front of it and of the console (/admin).

Everything under /admin and /api needs RELAY_ADMIN_TOKEN, as `Authorization: Bearer <token>`
(scripts) or the console's session (a cookie naming a session row in the store, see
console_store.py); with no token configured both are off (404). A request authenticated by
the cookie that changes something (POST) must also carry the session's CSRF token, as the
form field `csrf` (console forms) or the `X-CSRF-Token` header (/api). Wrong tokens are
limited per client address (`FailureLimit`). /api/openapi.json describes every operation.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Request,
    current_app,
    g,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from werkzeug.exceptions import HTTPException

from relay.delivery.request import build_request
from relay.errors import BodyError, StoreUnavailable
from relay.sources import Endpoint, evaluate_raw
from relay.store.history import STATUSES
from relay.store.replay import replay_event
from relay.store.sessions import ConsoleStore
from relay.web.openapi import MAX_ID, OPENAPI

log = logging.getLogger("relay.web.console")
api = Blueprint("api", __name__, url_prefix="/api")

SESSION_LIFETIME = 12 * 3600.0  # seconds a console login lasts
_SAFE = ("GET", "HEAD", "OPTIONS")  # methods that change nothing: no CSRF token needed
# What the console and the API answer, on top of nosniff (which every Flask answer gets):
# nothing loads but the pages' own inline style and images, no page can frame them, no link
# leaks their address.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def init_app(app: Flask) -> None:
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="relay_console")
    app.session_interface = _SessionInterface()
    app.extensions["relay"].setdefault("failure_limit", FailureLimit())
    app.extensions["relay"]["console_store"] = ConsoleStore(app.extensions["relay"]["store"])
    app.before_request(_guard)
    app.after_request(_security_headers)
    app.register_blueprint(api)


def _relay() -> dict[str, Any]:
    return current_app.extensions["relay"]


class Refusal(HTTPException):
    """An HTTP error with a hint and headers of its own (Retry-After, WWW-Authenticate); the
    app's error handler answers it as JSON under /api and as a page under /admin."""

    def __init__(self, code: int, message: str, hint: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(description=message)
        self.code = code
        self.hint = hint
        self.headers = headers or {}

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), *self.headers.items()]


# --- who is asking ----------------------------------------------------------------------------


class FailureLimit:
    """Wrong admin tokens per client address: after `limit` in `window` seconds, every token
    from that address is refused unchecked (429) until the oldest of them is `window` old.

    Kept in memory, per web process: with N processes an address gets at most N x `limit`
    guesses a window, which is nothing against a token of 32 characters or more, and no
    process waits on a shared counter. A restart forgets the counts.
    """

    def __init__(self, limit: int = 5, window: float = 60.0, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.max_clients, self.clock = limit, window, max_clients, clock
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """0 when `client` may try a token now, else the whole seconds until it may."""
        with self._lock:
            times = self._recent(client)
            if len(times) < self.limit:
                return 0
            return max(1, int(times[0] + self.window - self.clock() + 0.999))

    def failed(self, client: str) -> None:
        with self._lock:
            times = self._recent(client)
            times.append(self.clock())
            self._failures[client] = self._failures.pop(client, times)  # newest last
            while len(self._failures) > self.max_clients:  # bounded, whatever comes
                del self._failures[next(iter(self._failures))]

    def _recent(self, client: str) -> collections.deque[float]:
        times = self._failures.get(client, collections.deque(maxlen=self.limit))
        while times and times[0] <= self.clock() - self.window:
            times.popleft()
        if not times:
            self._failures.pop(client, None)
        return times


def client_address() -> str:
    """The client's address: REMOTE_ADDR, or behind a proxy you control (RELAY_TRUST_PROXY)
    the address that proxy saw (the last X-Forwarded-For entry), so that one client's wrong
    tokens do not lock out everyone behind the proxy."""
    if _relay()["settings"].trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    return request.remote_addr or "unknown"


def check_token(given: str) -> bool:
    """Whether `given` is the admin token; 429 (a Refusal) for a wrong one once this client
    has guessed wrong too often. The right token always passes: whoever shares the admin's
    address (everyone behind one proxy) must not be able to lock the admin out, and a token
    of 32 characters or more is not guessed in any number of tries the limit allows."""
    token = _relay()["settings"].admin_token
    if token and hmac.compare_digest(given.encode(), token.encode()):
        return True
    limit: FailureLimit = _relay()["failure_limit"]
    client = client_address()
    wait = limit.retry_after(client)
    if wait:
        raise Refusal(429, f"too many wrong admin tokens from {client}; try again in {wait} "
                      "second(s)", "wait, then use the token RELAY_ADMIN_TOKEN holds",
                      {"Retry-After": str(wait)})
    limit.failed(client)
    log.warning("wrong admin token from %s", client)  # never what was sent
    return False


# --- console sessions -------------------------------------------------------------------------


def area(request: Request) -> str | None:
    """"admin" or "api" for a request under /admin or /api, else None."""
    first = request.path.split("/")[1]
    return first if first in ("admin", "api") else None


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, only under /admin and /api, signed with the deployment's key."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if area(request) is None:
            return None  # a null session: health checks and metrics never touch the store
        try:
            ensure_session_key(app)
        except StoreUnavailable:
            return None  # the guard asks again and answers 503
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        # Secure (HTTPS only) everywhere but plain HTTP on this machine's loopback, where
        # browsers would drop a Secure cookie and nothing travels over a network.
        host = request.host.rsplit(":", 1)[0].strip("[]")
        return request.is_secure or host not in ("127.0.0.1", "localhost", "::1")


def ensure_session_key(app: Flask) -> None:
    """Sign sessions with RELAY_SECRET_KEY, else with the deployment's random key from the
    store (never with anything derived from the admin token: a cookie must not let anyone
    test guesses of the token offline). Read once per process."""
    if not app.secret_key:
        relay = app.extensions["relay"]
        app.secret_key = relay["settings"].secret_key or relay["console_store"].session_key()


def _token_mark() -> str:
    """Stands for the admin token in a session, so that changing the token ends every
    session; keyed with the session key, so the cookie tells nothing about the token."""
    key = str(current_app.secret_key).encode()
    return hmac.new(key, _relay()["settings"].admin_token.encode(), hashlib.sha256).hexdigest()


def start_session() -> None:
    """Log the browser in: a new session row, and a fresh cookie naming it."""
    session_id = secrets.token_urlsafe(32)
    _relay()["console_store"].open_session(session_id, time.time(), SESSION_LIFETIME)
    session.clear()
    session.update(id=session_id, csrf=secrets.token_urlsafe(24), token=_token_mark())


def end_session() -> None:
    if isinstance(session.get("id"), str):
        _relay()["console_store"].end_session(session["id"])
    session.clear()


def _session_alive() -> bool:
    session_id = session.get("id")
    if not isinstance(session_id, str):
        return False
    if session.get("token") == _token_mark() and (
            _relay()["console_store"].session_alive(session_id, time.time())):
        return True
    session.clear()  # logged out, expired, or from before a token change: drop the cookie
    return False


def _guard() -> Any:
    where = area(request)
    if where is None:
        return None
    if not _relay()["settings"].admin_token:
        return jsonify(error="the admin API and console are off",
                       hint="set RELAY_ADMIN_TOKEN to turn them on"), 404
    ensure_session_key(current_app)
    g.auth = None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        if check_token(value.strip()):
            g.auth = "bearer"
            return None
    elif _session_alive():
        g.auth = "session"
        if where == "api" and request.method not in _SAFE and not secrets.compare_digest(
                request.headers.get("X-CSRF-Token", ""), session.get("csrf", "")):
            raise Refusal(403, "missing or wrong CSRF token",
                          "send the console session's CSRF token as X-CSRF-Token, or use "
                          "Authorization: Bearer <RELAY_ADMIN_TOKEN>")
        return None
    if request.endpoint == "console.login":
        return None
    if where == "admin":
        return redirect(url_for("console.login", next=request.full_path))
    raise Refusal(401, "authentication required",
                  "send Authorization: Bearer <RELAY_ADMIN_TOKEN>", {"WWW-Authenticate": "Bearer"})


def _security_headers(response: Any) -> Any:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if area(request) is not None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


# --- the API ----------------------------------------------------------------------------------

EVENT_ID = f"<int(min=1, max={MAX_ID}):event_id>"  # larger ids exist nowhere: 404, not 500


def _bad(message: str, hint: str | None = None, status: int = 400) -> Any:
    body = {"error": message}
    if hint:
        body["hint"] = hint
    return jsonify(body), status


@api.get("/openapi.json")
def openapi() -> Any:
    return jsonify(OPENAPI)


@api.get("/events")
def list_events() -> Any:
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        return _bad(f"unknown status {status!r}", "one of " + ", ".join(STATUSES))
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 500:
        return _bad("limit must be a whole number from 1 to 500")
    rows = _relay()["store"].events(status=status, mapping=request.args.get("mapping") or None,
                                    limit=limit)
    return jsonify(events=rows)


@api.get(f"/events/{EVENT_ID}")
def show_event(event_id: int) -> Any:
    event = _relay()["store"].event(event_id)
    if event is None:
        return _bad(f"no event {event_id}", status=404)
    event["body"] = event["body"].decode("utf-8", "replace")
    return jsonify(event)


@api.post(f"/events/{EVENT_ID}/replay")
def replay_one(event_id: int) -> Any:
    if _relay()["store"].event(event_id) is None:
        return _bad(f"no event {event_id}", status=404)
    replayed = replay_event(_relay()["store"], _relay()["registry"].get, event_id, time.time())
    return jsonify(replayed.to_dict()), 200 if replayed.ok else 422


def _object(spec: Any, keys: tuple[str, ...]) -> str | None:
    """Why a JSON body is not an object of only these keys (None when it is)."""
    if not isinstance(spec, dict):
        return "send a JSON object"
    unknown = sorted(set(spec) - set(keys))
    if unknown:  # a typo must not widen what is replayed
        return f"unknown key(s) {', '.join(map(repr, unknown))}"
    return None


def _json_body() -> Any:
    """The request's JSON, or None when it is not JSON (or nested past what the parser
    takes: a RecursionError, which get_json does not turn into None)."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None


@api.post("/replay")
def replay_many() -> Any:
    spec = _json_body()
    example = '{"dead": true} and/or {"failed": true}, optionally with "mapping": name'
    problem = _object(spec, ("dead", "failed", "mapping"))
    if problem:
        return _bad(problem, f"send {example}")
    if any(k in spec and not isinstance(spec[k], bool) for k in ("dead", "failed")):
        return _bad("dead and failed must be true or false", f"send {example}")
    if "mapping" in spec and not isinstance(spec["mapping"], str):
        return _bad("mapping must be a string: the name of a mapping", f"send {example}")
    if not (spec.get("dead") or spec.get("failed")):
        return _bad("say what to replay", f"send {example}")
    store = _relay()["store"]
    ids = store.replayable(dead=spec.get("dead", False), failed=spec.get("failed", False),
                          mapping=spec.get("mapping") or None, since=None)
    results = [replay_event(store, _relay()["registry"].get, i, time.time()).to_dict()
               for i in ids]
    return jsonify(events=results)


@api.get("/failures")
def failures() -> Any:
    return jsonify(groups=group_failures(_relay()["store"].failures()))


@api.post("/preview")
def preview() -> Any:
    spec = _json_body()
    example = '{"mapping": name, "body": text, "headers": {}, "query": {}}'
    problem = _object(spec, ("mapping", "body", "headers", "query"))
    if problem or not isinstance(spec.get("mapping"), str):
        return _bad(problem or "mapping must be a string: the name of a mapping",
                    f"send {example}")
    if not isinstance(spec.get("body", ""), str):
        return _bad("body must be a string: the webhook's body as it would arrive",
                    f"send {example}")
    for key in ("headers", "query"):
        value = spec.get(key, {})
        if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            return _bad("headers and query are objects of strings",
                        'e.g. "headers": {"Content-Type": "application/json"}')
    mapping = _relay()["registry"].get(spec["mapping"])
    if mapping is None:
        return _bad(f"no mapping named {spec['mapping']!r}", status=404)
    return jsonify(preview_body(mapping, spec.get("body", "").encode(),
                                spec.get("headers", {}), spec.get("query", {})))


def preview_body(mapping: Endpoint, raw: bytes, headers: dict[str, str],
                 query: dict[str, Any]) -> dict[str, Any]:
    """What a pasted body would trigger (JSON unless headers say otherwise); nothing is sent.

    A body that cannot be parsed is a failed preview (the relay would answer the sender 400),
    saying why: the preview itself was asked for properly.
    """
    if not any(k.lower() == "content-type" for k in headers):
        headers = {**headers, "Content-Type": "application/json"}
    try:
        result = evaluate_raw(mapping, raw, headers, query)
    except BodyError as exc:
        return {"status": "failed", "skipped": None, "requests": [],
                "errors": [{"field": "body", "message": str(exc)}]}
    return {"status": result.status, "skipped": result.skipped,
            "requests": [build_request(mapping.mapping.engati, d, mask=True)
                         for d in result.deliveries],
            "errors": [e.to_dict() for e in result.errors]}


def group_failures(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failures grouped by reason: what a person fixes once for many events."""
    groups: dict[str, dict[str, Any]] = {}
    for item in items:
        reason = _reason(item)
        group = groups.setdefault(reason, {"reason": reason, "count": 0, "event_ids": [],
                                           "example": ""})
        group["count"] += item.get("count", 1)  # refusals come counted, a row a minute
        if item["event_id"] is not None and item["event_id"] not in group["event_ids"]:
            group["event_ids"].append(item["event_id"])
        group["example"] = group["example"] or _detail(item)
    return sorted(groups.values(), key=lambda g: -g["count"])


def _reason(item: dict[str, Any]) -> str:
    if item["kind"] == "refused":
        return f"signature refused ({item['mapping']})"
    if item["kind"] == "failed":
        field = re.sub(r"^each\[\d+\]\.", "", (item["errors"] or [{"field": ""}])[0]["field"])
        for prefix, reason in (("phone", "missing or invalid phone"),
                               ("flows", "no flow matched"),
                               ("attributes", "missing required field")):
            if field.startswith(prefix):
                return reason
        return "mapping error"
    error = item["last_error"] or ""
    if "gave up after" in error:
        return "dead after retries"
    if "HTTP 4" in error:
        return "Engati refused (4xx)"
    return "Engati failure"


def _detail(item: dict[str, Any]) -> str:
    if item["kind"] == "refused":
        return item["reason"]
    if item["kind"] == "failed":
        return "; ".join(f"{e['field']}: {e['message']}" for e in item["errors"] or [])
    return item["last_error"] or ""
