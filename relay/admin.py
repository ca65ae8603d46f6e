"""The operator API under /api (and the console under /admin, when it comes).

Everything under /admin and /api needs RELAY_ADMIN_TOKEN as `Authorization: Bearer <token>`;
with no token configured, both are off (404), never open.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request

from relay.operate import STATUSES

api = Blueprint("api", __name__, url_prefix="/api")


def init_app(app: Flask) -> None:
    app.before_request(_guard)
    app.register_blueprint(api)


def _guard() -> Any:
    if request.path.split("/")[1] not in ("api", "admin"):
        return None
    token = current_app.extensions["relay"]["settings"].admin_token
    if not token:
        return jsonify(error="the admin API and console are off",
                       hint="set RELAY_ADMIN_TOKEN to turn them on"), 404
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                             token.encode()):
        response = jsonify(error="authentication required",
                           hint="send Authorization: Bearer <RELAY_ADMIN_TOKEN>")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response, 401
    return None


@api.get("/events")
def list_events() -> Any:
    status = request.args.get("status")
    if status and status not in STATUSES:
        return jsonify(error=f"unknown status {status!r}",
                       hint="one of " + ", ".join(STATUSES)), 400
    try:
        limit = min(int(request.args.get("limit", 50)), 500)
    except ValueError:
        return jsonify(error="limit must be a whole number"), 400
    rows = current_app.extensions["relay"]["store"].events(
        status=status, mapping=request.args.get("mapping"), limit=limit)
    return jsonify(events=rows)


@api.get("/events/<int:event_id>")
def show_event(event_id: int) -> Any:
    event = current_app.extensions["relay"]["store"].event(event_id)
    if event is None:
        return jsonify(error=f"no event {event_id}"), 404
    event["body"] = event["body"].decode("utf-8", "replace")
    return jsonify(event)
