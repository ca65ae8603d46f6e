"""The web app: webhooks (intake.py), health, metrics, and the console and API for operators.

`gunicorn 'relay.app:create_app()'` serves it.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from relay.config import Settings
from relay.errors import InboundError, StoreUnavailable
from relay.logs import configure_logging
from relay.sources.registry import Registry
from relay.store import Store, open_store
from relay.web import api as admin
from relay.web import console, metrics
from relay.web.intake import Intake

log = logging.getLogger("relay.web")


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
) -> Flask:
    configure_logging()
    settings = settings or Settings.from_env()
    settings.check_admin_token()  # from_env checks it too; this holds for settings made in code
    if registry is None:
        registry = Registry(settings.mappings)
        registry.load()
    app = Flask(__name__)
    store = store or open_store(settings.database_url, timeout=settings.db_timeout)
    app.extensions["relay"] = {"settings": settings, "store": store, "registry": registry}
    admin.init_app(app)
    console.init_app(app)
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    app.add_url_rule("/readyz", "readyz", ready)
    app.add_url_rule("/metrics", "metrics", metrics_page)
    app.register_error_handler(InboundError, _inbound_error)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    # Webhooks are answered in front of Flask, by a plain WSGI app (see intake.py).
    app.wsgi_app = Intake(app.wsgi_app, settings, store, registry)  # type: ignore[method-assign]
    # What the app holds from here on lives as long as the process: out of the collector's
    # sight, a full collection no longer walks it, and the webhook it interrupts is not
    # held up for tens of milliseconds.
    gc.freeze()
    return app


def _relay() -> dict[str, Any]:
    return current_app.extensions["relay"]


def metrics_page() -> Response:
    body, content_type = metrics.render(_relay()["store"], bool(_relay()["settings"].metrics_dir))
    return Response(body, content_type=content_type)


def ready() -> Any:
    """Ready when the database answers and a mapping is loaded. Broken mapping files are
    listed (`broken`, always there) but do not make the relay unready: one bad file must not
    take every other endpoint out of a load balancer."""
    relay = _relay()
    try:
        relay["store"].ping()
    except StoreUnavailable as exc:
        return _error(503, str(exc), "check DATABASE_URL and that the database is up")
    names = relay["registry"].names()
    if not names:
        return _error(503, "no mappings loaded",
                      f"add mapping files to {relay['settings'].mappings}/")
    return {"status": "ready", "mappings": names, "broken": relay["registry"].broken()}


def _error(status: int, message: str, hint: str | None = None,
           retry_after: int | None = None, headers: list[tuple[str, str]] | None = None,
           ) -> Response:
    if admin.area(request) == "admin":  # people read the console: a page, not JSON
        response = console.error_page(status, message, hint)
    else:
        answer = {"error": message}
        if hint:
            answer["hint"] = hint
        response = jsonify(answer)
        response.status_code = status
    for name, value in headers or ():
        response.headers[name] = value
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _inbound_error(exc: InboundError) -> Any:
    return _error(exc.status, str(exc), exc.hint)


def _store_unavailable(exc: StoreUnavailable) -> Any:
    log.error("database unavailable: %s", exc)
    return _error(503, "the database is unavailable right now", "retry later", retry_after=5)


def _http_error(exc: HTTPException) -> Any:
    # Werkzeug's own headers stay (a 405's Allow, a 429's Retry-After); the body is ours.
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return _error(exc.code or 500, exc.description or exc.name, getattr(exc, "hint", None),
                  headers=headers)


def _unexpected(exc: Exception) -> Any:
    log.exception("unexpected error")
    return _error(500, "internal error; the relay's log has the details")
