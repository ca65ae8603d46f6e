"""The operator API under /api: events, replays, a delivery sent now or cancelled, the
failures inbox and previews, as JSON.

auth.py's guard stands in front of it (RELAY_ADMIN_TOKEN, as a bearer token or the console's
session with its CSRF token). /api/openapi.json describes every operation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as dt_time
from typing import Any

from flask import Blueprint, Flask, jsonify, request

from relay.config import parse_since
from relay.delivery.request import build_request
from relay.errors import BodyError, RelayError
from relay.sources import Endpoint, evaluate_raw
from relay.store import STATUSES
from relay.store.display import why_not
from relay.store.failures import group_failures
from relay.store.replay import replay_event
from relay.store.search import search_args
from relay.web.errors import json_error
from relay.web.openapi import MAX_ID, OPENAPI, SEARCH_TEXT, SINCE_DURATION
from relay.web.services import services

api = Blueprint("api", __name__, url_prefix="/api")


def init_app(app: Flask) -> None:
    app.register_blueprint(api)


EVENT_ID = f"<int(min=1, max={MAX_ID}):event_id>"  # larger ids exist nowhere: 404, not 500
DELIVERY_ID = f"<int(min=1, max={MAX_ID}):delivery_id>"


@api.get("/openapi.json")
def openapi() -> Any:
    return jsonify(OPENAPI)


@api.get("/events")
def list_events() -> Any:
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        return json_error(400, f"unknown status {status!r}", "one of " + ", ".join(STATUSES))
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 500:
        return json_error(400, "limit must be a whole number from 1 to 500")
    mapping = request.args.get("mapping") or None
    since = None
    if "since" in request.args:
        since = _since(request.args["since"])
        if since is None:
            return json_error(400, f"since={request.args['since']!r}: use a duration or a date",
                              "e.g. since=24h, since=7d, since=30m or since=2026-11-01")
    if "q" in request.args and not re.search(SEARCH_TEXT, request.args["q"]):
        return json_error(400, f"q={request.args['q']!r}: search for at least 3 characters",
                          "q is text to find in the body, e.g. an email")
    try:
        search = search_args(request.args.get("phone"), request.args.get("q"),
                             services().registry.regions(mapping))
    except RelayError as exc:
        return json_error(400, f"q: {exc}", "q is text to find in the body, e.g. an email")
    rows = services().store.events(status=status, mapping=mapping, since=since, limit=limit,
                                    now=time.time(), **search)
    return jsonify(events=rows)


def _since(text: str) -> float | None:
    """`since` as openapi.py describes it (a duration, or a date in UTC), else None."""
    if re.search(SINCE_DURATION, text):
        return parse_since(text, time.time())
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        try:
            return datetime.combine(date.fromisoformat(text), dt_time(), UTC).timestamp()
        except ValueError:
            return None
    return None


@api.get(f"/events/{EVENT_ID}")
def show_event(event_id: int) -> Any:
    event = services().store.event(event_id)
    if event is None:
        return json_error(404, f"no event {event_id}")
    event["body"] = event["body"].decode("utf-8", "replace")
    return jsonify(event)


@api.post(f"/events/{EVENT_ID}/replay")
def replay_one(event_id: int) -> Any:
    if services().store.event(event_id) is None:
        return json_error(404, f"no event {event_id}")
    replayed = replay_event(services().store, services().registry.get, event_id, time.time())
    return jsonify(replayed.to_dict()), 200 if replayed.ok else 422


@api.post(f"/deliveries/{DELIVERY_ID}/send-now")
def send_now(delivery_id: int) -> Any:
    return _operate(delivery_id, services().store.send_now, "due now")


@api.post(f"/deliveries/{DELIVERY_ID}/cancel")
def cancel(delivery_id: int) -> Any:
    return _operate(delivery_id, services().store.cancel_delivery, "cancelled")


def _operate(delivery_id: int, act: Callable[[int, float], bool], done: str) -> Any:
    """An operator's hand on one pending delivery: 200 with its new state, 404 for an
    unknown id, 409 saying why when it is not pending or is in flight."""
    store = services().store
    now = time.time()
    if act(delivery_id, now):
        return jsonify(ok=True, message=f"delivery {delivery_id}: {done}",
                       delivery=store.delivery(delivery_id))
    found = store.delivery(delivery_id)
    if found is None:
        return json_error(404, f"no delivery {delivery_id}",
                          "delivery ids are in GET /api/events/{event_id}")
    return json_error(409, f"delivery {delivery_id}: {why_not(found, now)}",
                      "only a pending delivery that is not in flight can be sent now or "
                      "cancelled")


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
        return json_error(400, problem, f"send {example}")
    if any(k in spec and not isinstance(spec[k], bool) for k in ("dead", "failed")):
        return json_error(400, "dead and failed must be true or false", f"send {example}")
    if "mapping" in spec and not isinstance(spec["mapping"], str):
        return json_error(400, "mapping must be a string: the name of a mapping", f"send {example}")
    if not (spec.get("dead") or spec.get("failed")):
        return json_error(400, "say what to replay", f"send {example}")
    store = services().store
    ids = store.replayable(dead=spec.get("dead", False), failed=spec.get("failed", False),
                          mapping=spec.get("mapping") or None, since=None)
    results = [replay_event(store, services().registry.get, i, time.time()).to_dict()
               for i in ids]
    return jsonify(events=results)


@api.get("/failures")
def failures() -> Any:
    return jsonify(groups=group_failures(services().store.failures()))


@api.post("/preview")
def preview() -> Any:
    spec = _json_body()
    example = '{"mapping": name, "body": text, "headers": {}, "query": {}}'
    problem = _object(spec, ("mapping", "body", "headers", "query"))
    if problem or not isinstance(spec.get("mapping"), str):
        return json_error(400, problem or "mapping must be a string: the name of a mapping",
                    f"send {example}")
    if not isinstance(spec.get("body", ""), str):
        return json_error(400, "body must be a string: the webhook's body as it would arrive",
                    f"send {example}")
    for key in ("headers", "query"):
        value = spec.get(key, {})
        if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            return json_error(400, "headers and query are objects of strings",
                        'e.g. "headers": {"Content-Type": "application/json"}')
    mapping = services().registry.get(spec["mapping"])
    if mapping is None:
        return json_error(404, f"no mapping named {spec['mapping']!r}")
    return jsonify(preview_body(mapping, spec.get("body", "").encode(),
                                spec.get("headers", {}), spec.get("query", {})))


def preview_body(endpoint: Endpoint, raw: bytes, headers: dict[str, str],
                 query: dict[str, Any]) -> dict[str, Any]:
    """What a pasted body would trigger (JSON unless headers say otherwise); nothing is sent.

    A body that cannot be parsed is a failed preview (the relay would answer the sender 400),
    saying why: the preview itself was asked for properly.
    """
    if not any(k.lower() == "content-type" for k in headers):
        headers = {**headers, "Content-Type": "application/json"}
    try:
        result = evaluate_raw(endpoint, raw, headers, query)
    except BodyError as exc:
        return {"status": "failed", "skipped": None, "requests": [],
                "errors": [{"field": "body", "message": str(exc)}]}
    return {"status": result.status, "skipped": result.skipped,
            "requests": [build_request(endpoint.mapping.engati, d, mask=True)
                         for d in result.deliveries],
            "errors": [e.to_dict() for e in result.errors]}



# The playground's and capture's routes, in modules of their own; importing them adds them
# to the blueprint.
from relay.web import capture_api, playground_api  # noqa: E402, F401
