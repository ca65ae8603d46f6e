"""Capture, then draft, as JSON under /api/capture: what `relay capture` and `relay draft`
do and the console's Capture page shows. Windows are opened and closed; samples are listed
(sizes, not bodies), read one at a time, drafted into a mapping (never written from here)
and replayed through the mapping once one exists. Samples are never delivered."""

from __future__ import annotations

import time
from typing import Any

from flask import jsonify, request

from relay.capture.draft import draft
from relay.capture.samples import replay_sample
from relay.capture.windows import check_name, open_window
from relay.errors import RelayError
from relay.web.api import _json_body, _object, api
from relay.web.errors import json_error
from relay.web.openapi import MAX_ID
from relay.web.services import services

SAMPLE_ID = f"<int(min=1, max={MAX_ID}):sample_id>"
_OPEN = '{"name": "crm-leads", "minutes": 15}'


@api.get("/capture/windows")
def capture_windows() -> Any:
    return jsonify(windows=services().store.open_windows(time.time()))


@api.post("/capture/windows")
def capture_open() -> Any:
    spec = _json_body()
    problem = _object(spec, ("name", "minutes"))
    if problem:
        return json_error(400, problem, f"send {_OPEN}")
    minutes = spec.get("minutes", 15)
    if not isinstance(spec.get("name"), str) or isinstance(minutes, bool) or not isinstance(
            minutes, int | float):
        return json_error(400, "name must be a string and minutes a number", f"send {_OPEN}")
    try:
        window = open_window(services().store, spec["name"], minutes, time.time())
    except RelayError as exc:
        return json_error(400, str(exc), f"send {_OPEN}")
    return jsonify(window=window), 201


@api.post("/capture/windows/<name>/close")
def capture_close(name: str) -> Any:
    try:
        check_name(name)
    except RelayError as exc:
        return json_error(400, str(exc))
    return jsonify(closed=services().store.close_window(name, time.time()))


@api.get("/capture/samples")
def capture_samples() -> Any:
    name = request.args.get("name") or None
    try:
        limit = int(request.args.get("limit", 50))
        if name is not None:
            check_name(name)
    except (ValueError, RelayError) as exc:
        return json_error(400, str(exc) if isinstance(exc, RelayError) else
                          "limit must be a whole number from 1 to 500")
    if not 1 <= limit <= 500:
        return json_error(400, "limit must be a whole number from 1 to 500")
    return jsonify(samples=services().store.samples(name, limit))


def _sample(sample_id: int) -> dict[str, Any] | None:
    return services().store.sample(sample_id)


@api.get(f"/capture/samples/{SAMPLE_ID}")
def capture_sample(sample_id: int) -> Any:
    found = _sample(sample_id)
    if found is None:
        return json_error(404, f"no sample {sample_id}")
    return jsonify({**found, "body": found["body"].decode("utf-8", "replace")})


@api.get(f"/capture/samples/{SAMPLE_ID}/draft")
def capture_draft(sample_id: int) -> Any:
    found = _sample(sample_id)
    if found is None:
        return json_error(404, f"no sample {sample_id}")
    try:
        made = draft(found["name"], found, request.args.get("region", "IN") or None)
    except RelayError as exc:
        return json_error(422, str(exc), "a mapping for this sample is yours to write")
    return jsonify(name=found["name"], yaml=made.yaml, example=made.example,
                   preset=made.preset)


@api.post(f"/capture/samples/{SAMPLE_ID}/replay")
def capture_replay(sample_id: int) -> Any:
    found = _sample(sample_id)
    if found is None:
        return json_error(404, f"no sample {sample_id}")
    replayed = replay_sample(services().store, services().registry.get(found["name"]), found,
                             time.time())
    return jsonify(ok=replayed.ok, message=replayed.message,
                   event_id=replayed.event_id), 200 if replayed.ok else 422
