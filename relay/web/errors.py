"""Every error the web process answers, built once: `{"error": ..., "hint": ...}`.

`error_body` is the one place that shape is written. Its users: the Flask error handlers
below (JSON under /api and everywhere else, a page in the console's layout under /admin, where
people read it), the views that refuse input (`json_error`), the intake (which passes the
body through the sender's preset, so that Salesforce gets a SOAP fault), and the server's
own answers before the app runs (bridge.py: 503 busy, 408 late).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Request, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from relay.errors import StoreUnavailable

log = logging.getLogger("relay.web")


def error_body(message: str, hint: str | None = None, **extra: Any) -> dict[str, Any]:
    """The error answer: what went wrong, anything the caller adds, and what to do about it
    (left out when there is no hint). Key order is the answer's byte order."""
    body: dict[str, Any] = {"error": message, **extra}
    if hint:
        body["hint"] = hint
    return body


def json_error(status: int, message: str, hint: str | None = None,
               headers: dict[str, str] | None = None) -> Response:
    """The error as a JSON answer, whatever the path (the API, and the guard's 404)."""
    response = jsonify(error_body(message, hint))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def area(request: Request) -> str | None:
    """"admin" or "api" for a request under /admin or /api, else None."""
    first = request.path.split("/")[1]
    return first if first in ("admin", "api") else None


class Refusal(HTTPException):
    """An HTTP error with a hint and headers of its own (Retry-After, WWW-Authenticate); the
    error handler answers it as JSON under /api and as a page under /admin."""

    def __init__(self, code: int, message: str, hint: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(description=message)
        self.code = code
        self.hint = hint
        self.headers = headers or {}

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), *self.headers.items()]


def init_app(app: Flask) -> None:
    # No handler for InboundError: /hooks answers its errors itself (intake.py), in front
    # of Flask, and nothing Flask serves raises one.
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _answer(status: int, message: str, hint: str | None = None,
            headers: dict[str, str] | None = None) -> Response:
    if area(request) != "admin":
        return json_error(status, message, hint, headers)
    response = current_app.make_response(
        render_template("error.html", status=status, message=message, hint=hint))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _store_unavailable(exc: StoreUnavailable) -> Response:
    log.error("database unavailable: %s", exc)
    return _answer(503, "the database is unavailable right now", "retry later",
                   {"Retry-After": "5"})


def _http_error(exc: HTTPException) -> Response:
    # Werkzeug's own headers stay (a 405's Allow, a 429's Retry-After); the body is ours.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return _answer(exc.code or 500, exc.description or exc.name, getattr(exc, "hint", None),
                   headers)


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error")
    return _answer(500, "internal error; the relay's log has the details")
