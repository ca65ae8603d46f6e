"""Who may use /admin and /api: the guard in front of both, and the console's sessions.

Everything under /admin and /api needs RELAY_ADMIN_TOKEN, as `Authorization: Bearer <token>`
(scripts) or the console's session (a cookie naming a session row in the store, see
relay/store/sessions.py); with no token configured both are off (404). A request
authenticated by the cookie that changes something (POST) must also carry the session's CSRF
token, as the form field `csrf` (console forms, console.py) or the `X-CSRF-Token` header
(/api). Wrong tokens are limited per client address (`Services.login_limit`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

from flask import Flask, Request, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.wrappers import Response

from relay.errors import StoreUnavailable
from relay.web.errors import Refusal, area, json_error
from relay.web.services import services

log = logging.getLogger("relay.web.console")

SESSION_LIFETIME = 12 * 3600.0  # seconds a console login lasts
_SAFE = ("GET", "HEAD", "OPTIONS")  # methods that change nothing: no CSRF token needed
# What the console and the API answer, on top of nosniff (which every Flask answer gets):
# nothing loads but the pages' own inline style, images and the relay's own scripts (files
# under /admin/static/, never inline), which talk to the relay alone; no page can frame them,
# no link leaks their address.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "script-src 'self'; connect-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def init_app(app: Flask) -> None:
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="relay_console")
    app.session_interface = SessionInterface()
    app.before_request(guard)
    app.after_request(_security_headers)


# --- who is asking ----------------------------------------------------------------------------


def client_address() -> str:
    """The client's address: REMOTE_ADDR, or behind a proxy you control (RELAY_TRUST_PROXY)
    the address that proxy saw (the last X-Forwarded-For entry), so that one client's wrong
    tokens do not lock out everyone behind the proxy."""
    if services().settings.trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    return request.remote_addr or "unknown"


def check_token(given: str) -> bool:
    """Whether `given` is the admin token; 429 (a Refusal) for a wrong one once this client
    has guessed wrong too often. The right token always passes: whoever shares the admin's
    address (everyone behind one proxy) must not be able to lock the admin out, and a token
    of 32 characters or more is not guessed in any number of tries the limit allows."""
    token = services().settings.admin_token
    if token and hmac.compare_digest(given.encode(), token.encode()):
        return True
    client = client_address()
    wait = services().login_limit.take(client)
    if wait:
        raise Refusal(429, f"too many wrong admin tokens from {client}; try again in {wait} "
                      "second(s)", "wait, then use the token RELAY_ADMIN_TOKEN holds",
                      {"Retry-After": str(wait)})
    log.warning("wrong admin token from %s", client)  # never what was sent
    return False


# --- console sessions -------------------------------------------------------------------------


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, only under /admin and /api, signed with the deployment's key."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
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
        relay = services(app)
        app.secret_key = relay.settings.secret_key or relay.store.session_key()


def _token_mark() -> str:
    """Stands for the admin token in a session, so that changing the token ends every
    session; keyed with the session key, so the cookie tells nothing about the token."""
    key = str(current_app.secret_key).encode()
    return hmac.new(key, services().settings.admin_token.encode(), hashlib.sha256).hexdigest()


def start_session() -> None:
    """Log the browser in: a new session row, and a fresh cookie naming it."""
    session_id = secrets.token_urlsafe(32)
    services().store.open_session(session_id, time.time(), SESSION_LIFETIME)
    session.clear()
    session.update(id=session_id, csrf=secrets.token_urlsafe(24), token=_token_mark())


def end_session() -> None:
    if isinstance(session.get("id"), str):
        services().store.end_session(session["id"])
    session.clear()


def session_alive() -> bool:
    """Whether the cookie names a live session opened under the current admin token."""
    session_id = session.get("id")
    if not isinstance(session_id, str):
        return False
    if session.get("token") == _token_mark() and (
            services().store.session_alive(session_id, time.time())):
        return True
    session.clear()  # logged out, expired, or from before a token change: drop the cookie
    return False


def guard() -> Response | None:
    """Before every request under /admin and /api: let it through (None) or answer it."""
    where = area(request)
    if where is None:
        return None
    if not services().settings.admin_token:
        return json_error(404, "the admin API and console are off",
                          "set RELAY_ADMIN_TOKEN to turn them on")
    ensure_session_key(current_app)
    g.auth = None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        if check_token(value.strip()):
            g.auth = "bearer"
            return None
    elif session_alive():
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
