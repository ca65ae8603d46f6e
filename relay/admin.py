"""The operator API under /api (the console under /admin uses it too).

Everything under /admin and /api needs RELAY_ADMIN_TOKEN, as `Authorization: Bearer <token>`
(scripts) or the console's session cookie; with no token configured both are off (404).
/api/openapi.json describes every operation.
"""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, redirect, request, session, url_for

from relay.engati import build_request
from relay.errors import BodyError
from relay.history import STATUSES
from relay.mapping import Mapping, evaluate_raw
from relay.openapi import OPENAPI
from relay.replay import replay_event

api = Blueprint("api", __name__, url_prefix="/api")


def init_app(app: Flask) -> None:
    app.before_request(_guard)
    app.register_blueprint(api)


def _relay() -> dict[str, Any]:
    return current_app.extensions["relay"]


def token_matches(given: str) -> bool:
    token = _relay()["settings"].admin_token
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def _guard() -> Any:
    area = request.path.split("/")[1]
    if area not in ("api", "admin"):
        return None
    if not _relay()["settings"].admin_token:
        return jsonify(error="the admin API and console are off",
                       hint="set RELAY_ADMIN_TOKEN to turn them on"), 404
    if session.get("admin") or request.endpoint == "console.login":
        return None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token_matches(value.strip()):
        return None
    if area == "admin":
        return redirect(url_for("console.login", next=request.full_path))
    response = jsonify(error="authentication required",
                       hint="send Authorization: Bearer <RELAY_ADMIN_TOKEN>")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response, 401


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
    if status and status not in STATUSES:
        return _bad(f"unknown status {status!r}", "one of " + ", ".join(STATUSES))
    try:
        limit = min(int(request.args.get("limit", 50)), 500)
    except ValueError:
        return _bad("limit must be a whole number")
    rows = _relay()["store"].events(status=status, mapping=request.args.get("mapping") or None,
                                    limit=limit)
    return jsonify(events=rows)


@api.get("/events/<int:event_id>")
def show_event(event_id: int) -> Any:
    event = _relay()["store"].event(event_id)
    if event is None:
        return _bad(f"no event {event_id}", status=404)
    event["body"] = event["body"].decode("utf-8", "replace")
    return jsonify(event)


@api.post("/events/<int:event_id>/replay")
def replay_one(event_id: int) -> Any:
    replayed = replay_event(_relay()["store"], _relay()["registry"].get, event_id, time.time())
    return jsonify(replayed.to_dict()), 200 if replayed.ok else 422


@api.post("/replay")
def replay_many() -> Any:
    spec = request.get_json(silent=True)
    if not isinstance(spec, dict) or not (spec.get("dead") or spec.get("failed")):
        return _bad("say what to replay", 'send {"dead": true} and/or {"failed": true}, '
                    'optionally with "mapping"')
    store = _relay()["store"]
    ids = store.replayable(dead=bool(spec.get("dead")), failed=bool(spec.get("failed")),
                          mapping=spec.get("mapping") or None, since=None)
    results = [replay_event(store, _relay()["registry"].get, i, time.time()).to_dict()
               for i in ids]
    return jsonify(events=results)


@api.get("/failures")
def failures() -> Any:
    return jsonify(groups=group_failures(_relay()["store"].failures()))


@api.post("/preview")
def preview() -> Any:
    spec = request.get_json(silent=True)
    if not isinstance(spec, dict) or not isinstance(spec.get("mapping"), str):
        return _bad("send {\"mapping\": name, \"body\": text, \"headers\": {}, \"query\": {}}")
    mapping = _relay()["registry"].get(spec["mapping"])
    if mapping is None:
        return _bad(f"no mapping named {spec['mapping']!r}", status=404)
    try:
        previewed = preview_body(mapping, str(spec.get("body", "")).encode(),
                                 spec.get("headers") or {}, spec.get("query") or {})
    except BodyError as exc:
        return _bad(str(exc))
    return jsonify(previewed)


def preview_body(mapping: Mapping, raw: bytes, headers: dict[str, str],
                 query: dict[str, Any]) -> dict[str, Any]:
    """What a pasted body would trigger (JSON unless headers say otherwise); nothing is sent.

    Raises BodyError when the body cannot be parsed.
    """
    if not any(k.lower() == "content-type" for k in headers):
        headers = {**headers, "Content-Type": "application/json"}
    result = evaluate_raw(mapping, raw, headers, query)
    return {"status": result.status, "skipped": result.skipped,
            "requests": [build_request(mapping.engati, d, mask=True) for d in result.deliveries],
            "errors": [e.to_dict() for e in result.errors]}


def group_failures(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failures grouped by reason: what a person fixes once for many events."""
    groups: dict[str, dict[str, Any]] = {}
    for item in items:
        reason = _reason(item)
        group = groups.setdefault(reason, {"reason": reason, "count": 0, "event_ids": [],
                                           "example": ""})
        group["count"] += 1
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
