"""The web app: POST /hooks/<name> stores a webhook and answers; the worker delivers it.

`gunicorn 'relay.app:create_app()'` serves it. The sender is answered 2xx only after the
event and its deliveries are committed; Engati is never called inside the request.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from relay import admin, console, metrics
from relay.config import Settings
from relay.errors import BodyError, InboundError, SignatureError, StoreUnavailable
from relay.logs import configure_logging
from relay.mapping import evaluate
from relay.redact import redact
from relay.registry import Registry
from relay.sources import Inbound, Preset
from relay.store import Store

DEFAULT_PRESET = Preset()

log = logging.getLogger("relay.inbound")


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
) -> Flask:
    configure_logging()
    settings = settings or Settings.from_env()
    if registry is None:
        registry = Registry(settings.mappings)
        registry.load()
    app = Flask(__name__)
    app.extensions["relay"] = {
        "settings": settings,
        "store": store or Store(settings.database_url, timeout=settings.db_timeout),
        "registry": registry,
    }
    admin.init_app(app)
    console.init_app(app)
    app.add_url_rule("/hooks/<name>", "hook", receive, methods=["POST"])
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    app.add_url_rule("/readyz", "readyz", ready)
    app.add_url_rule("/metrics", "metrics", metrics_page)
    app.register_error_handler(InboundError, _inbound_error)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.before_request(lambda: setattr(g, "started", time.perf_counter()))
    app.after_request(_log_request)
    # What the app holds from here on lives as long as the process: out of the collector's
    # sight, a full collection no longer walks it, and the webhook it interrupts is not
    # held up for tens of milliseconds.
    gc.freeze()
    return app


def _relay() -> dict[str, Any]:
    return current_app.extensions["relay"]


def receive(name: str) -> Any:
    relay = _relay()
    g.mapping = name
    mapping = relay["registry"].get(name)
    if mapping is None:
        return _error(404, f"no mapping named {name!r}",
                      f"create {relay['settings'].mappings}/{name}.yaml to serve /hooks/{name}")
    g.preset = mapping.source
    if mapping.locked:
        return _error(503, f"/hooks/{name} is not ready: {mapping.locked}",
                      "set it in the relay's environment and restart; the sender's retries "
                      "will then be accepted", retry_after=60)
    raw = _read_body(relay["settings"].max_body)
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = {k: v[0] if len(v) == 1 else v for k, v in request.args.lists()}
    now = time.time()
    inbound = Inbound(raw, headers, query, request.method, _public_url(relay["settings"]))
    mapping.source.verify(mapping, inbound, now)  # SignatureError: 401
    envelope = mapping.source.envelope(raw, headers, query)  # BodyError: 400 / 415
    mapping.source.admit(mapping, envelope)
    result = evaluate(mapping, envelope)
    receipt = relay["store"].accept(name, raw, redact(headers), redact(query), result, now)
    g.event_id = receipt.event_id
    answer: dict[str, Any] = {"status": receipt.status, "event_id": receipt.event_id}
    errors = [e.to_dict() for e in result.errors]
    status = 200
    if receipt.status == "accepted":
        answer["deliveries"] = receipt.deliveries
        if errors:  # some items of a batch could not be mapped
            answer["errors"] = errors
        status = 202
    elif receipt.status == "failed":
        answer["error"] = "the webhook could not be mapped: " + "; ".join(
            f"{e['field']}: {e['message']}" for e in errors)
        answer["errors"] = errors
        answer["hint"] = (f"fix the webhook or {mapping.file}; the event is stored: "
                          f"`relay replay {receipt.event_id}` maps it again")
        status = 422
    elif receipt.status == "skipped":
        answer["reason"] = result.skipped
    return _respond(status, answer)


def _read_body(limit: int) -> bytes:
    """The whole body, or 413 past `limit` bytes, whether Content-Length is given, absent
    (chunked) or lying; a body that ends before its Content-Length is refused, not guessed."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestEntityTooLarge()
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    if declared is not None and len(raw) < declared:
        raise BodyError(f"the body ended after {len(raw)} of its {declared} bytes")
    return raw


def _public_url(settings: Settings) -> str:
    """The URL as the sender called it (HubSpot signs it), behind proxies too."""
    query = request.query_string.decode("latin-1")
    path = request.path + (f"?{query}" if query else "")
    if settings.public_url:
        return settings.public_url.rstrip("/") + path
    if settings.trust_proxy:
        proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
        return f"{proto}://{host}{path}"
    return f"{request.scheme}://{request.host}{path}"


def metrics_page() -> Response:
    body, content_type = metrics.render(_relay()["store"])
    return Response(body, content_type=content_type)


def ready() -> Any:
    relay = _relay()
    try:
        relay["store"].ping()
    except StoreUnavailable as exc:
        return _error(503, str(exc), "check DATABASE_URL and that the database is up")
    names = relay["registry"].names()
    if not names:
        return _error(503, "no mappings loaded",
                      f"add mapping files to {relay['settings'].mappings}/")
    return {"status": "ready", "mappings": names}


def _respond(status: int, answer: dict[str, Any], retry_after: int | None = None) -> Response:
    """JSON, or what the mapping's sender must be answered (Salesforce: SOAP)."""
    preset = g.get("preset") or DEFAULT_PRESET
    status, body, content_type = preset.respond(status, answer)
    response = Response(body, status, content_type=content_type)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _error(status: int, message: str, hint: str | None = None,
           retry_after: int | None = None) -> Response:
    answer = {"error": message}
    if hint:
        answer["hint"] = hint
    return _respond(status, answer, retry_after)


def _inbound_error(exc: InboundError) -> Any:
    if isinstance(exc, SignatureError):
        log.warning("refused mapping=%s: %s", g.get("mapping", "-"), exc.reason)
        with contextlib.suppress(StoreUnavailable):  # the refusal stands either way
            _relay()["store"].refuse(g.get("mapping", "-"), exc.reason, time.time())
    return _error(exc.status, str(exc))


def _store_unavailable(exc: StoreUnavailable) -> Any:
    log.error("database write failed: %s", exc)
    return _error(503, "the webhook could not be stored right now",
                  "retry later; nothing was accepted", retry_after=5)


def _http_error(exc: HTTPException) -> Any:
    if isinstance(exc, RequestEntityTooLarge):
        limit = _relay()["settings"].max_body
        return _error(413, f"the body is larger than {limit} bytes",
                      "send a smaller body, or raise RELAY_MAX_BODY")
    return _error(exc.code or 500, exc.description or exc.name)


def _unexpected(exc: Exception) -> Any:
    log.exception("unexpected error")
    return _error(500, "internal error; the relay's log has the details")


def _log_request(response: Any) -> Any:
    if request.path.startswith("/hooks/"):
        metrics.INBOUND.labels(g.get("mapping", "-") if g.get("preset") else "(unknown)",
                               str(response.status_code)).inc()
        ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info("inbound mapping=%s status=%d event=%s bytes=%s ms=%.1f",
                 g.get("mapping", "-"), response.status_code, g.get("event_id", "-"),
                 request.content_length if request.content_length is not None else "-", ms)
    return response
