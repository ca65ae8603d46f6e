"""The events list (filtered by mapping, state, phone and time), an event's page, its replay,
and a pending delivery sent now or cancelled."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from relay.config import parse_since
from relay.errors import BodyError, RelayError
from relay.model import DeliveryStatus
from relay.sources.body import media_type, parse_body
from relay.store import STATUSES
from relay.store.display import (
    cancelled_by_event,
    event_problem,
    event_state,
    is_scheduled,
    pretty_body,
    shown_state,
    why_not,
)
from relay.store.replay import replay_event
from relay.store.search import search_args
from relay.web.api import DELIVERY_ID, EVENT_ID
from relay.web.console import console
from relay.web.openapi import MAX_ID
from relay.web.services import services


@console.get("/")
def events() -> Any:
    filters = {k: request.args.get(k) or None
               for k in ("mapping", "status", "phone", "q", "since")}
    if filters["status"] not in (None, *STATUSES):
        filters["status"] = None
    since = None
    if filters["since"]:
        try:
            since = parse_since(filters["since"], time.time())
        except RelayError:
            flash(f"Since {filters['since']!r}: use 24h, 7d or a date like 2026-11-01.", "error")
    before = request.args.get("before", type=int)
    if before is not None and not 1 <= before <= MAX_ID:
        before = None  # no id is that large (or small): the first page
    regions = services().registry.regions(filters["mapping"])
    try:
        search = search_args(filters["phone"], filters["q"], regions)
    except RelayError as exc:
        flash(f"Search: {exc}.", "error")
        search = search_args(filters["phone"], None, regions)
    rows = services().store.events(status=filters["status"], mapping=filters["mapping"],
                                    since=since, before=before, limit=51, now=time.time(),
                                    **search)
    for row in rows:
        row["state"] = event_state(row)
        row["problem"] = event_problem(row)
    return render_template("events.html", events=rows[:50], more=len(rows) > 50,
                           filters={k: v for k, v in filters.items() if v},
                           mappings=services().registry.names(), statuses=STATUSES)


@console.get(f"/events/{EVENT_ID}")
def event(event_id: int) -> Any:
    found = services().store.event(event_id)
    if found is None:
        abort(404, f"no event {event_id}")
    now = time.time()
    for delivery in found["deliveries"]:
        delivery["answer"] = engati_answer(delivery["attempt_log"])
        delivery["scheduled"] = is_scheduled(delivery, now)
        delivery["by_event"] = cancelled_by_event(delivery)
        # Send now and Cancel: a pending delivery no worker holds (one in flight is called).
        lease = delivery["lease_until"]
        delivery["in_flight"] = lease is not None and lease > now
        delivery["actionable"] = (delivery["status"] == DeliveryStatus.PENDING
                                  and not delivery["in_flight"])
    # The state the events list shows, not the raw status ("accepted" above a dead delivery).
    return render_template("event.html", event=found, body=pretty_body(found["body"]),
                           state=shown_state(found, now), parsed=parsed_body(found))


@console.app_template_filter("iso")
def iso(ts: float | None) -> str:
    """UNIX seconds as ISO 8601 in UTC, for <time datetime> (static/time.js shows it in the
    browser's zone)."""
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(
        timespec="seconds").replace("+00:00", "Z")


def engati_answer(attempts: list[dict[str, Any]]) -> str | None:
    """What Engati last answered a delivery: HTTP status, status.code, and its message (the
    attempt's error, which quotes the reply's status.desc); None before any attempt."""
    if not attempts:
        return None
    last = attempts[-1]
    parts = [f"HTTP {last['http_status']}" if last["http_status"] else "no HTTP answer"]
    if last["engati_code"] is not None:
        parts.append(f"status.code {last['engati_code']}")
    parts.append(last["error"] or ("accepted" if last["outcome"] == "delivered" else ""))
    return ", ".join(p for p in parts if p)


def parsed_body(event: dict[str, Any]) -> str | None:
    """A body that is not JSON (XML from Salesforce and other SOAP senders, forms) as the
    mapping's expressions see it: `body` of the preset's envelope, as JSON. None for JSON
    bodies (shown as they are) and for bodies that no longer parse."""
    headers = {k.lower(): v for k, v in event["headers"].items()}
    kind = media_type(headers.get("content-type"))
    if kind in ("", "application/json") or kind.endswith("+json"):
        return None
    endpoint = services().registry.get(event["mapping"])
    try:
        if endpoint is not None:
            value = endpoint.preset.envelope(event["body"], headers, event["query"])["body"]
        else:
            value = parse_body(event["body"], headers.get("content-type"))
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (BodyError, ValueError, RecursionError):
        return None


@console.post(f"/events/{EVENT_ID}/replay")
def replay(event_id: int) -> Any:
    replayed = replay_event(services().store, services().registry.get, event_id, time.time())
    flash(f"Event {event_id}: {replayed.message}", "ok" if replayed.ok else "error")
    return redirect(url_for("console.event", event_id=event_id))


@console.post(f"/deliveries/{DELIVERY_ID}/send-now")
def send_now(delivery_id: int) -> Any:
    return _operate(delivery_id, services().store.send_now,
                    "is due now: the worker calls it at its next claim")


@console.post(f"/deliveries/{DELIVERY_ID}/cancel")
def cancel(delivery_id: int) -> Any:
    return _operate(delivery_id, services().store.cancel_delivery,
                    "is cancelled: it will never be called")


def _operate(delivery_id: int, act: Callable[[int, float], bool], done: str) -> Any:
    """Send now or cancel, then back to the delivery on its event's page, saying what
    became of it (or why nothing did)."""
    store = services().store
    now = time.time()
    acted = act(delivery_id, now)
    found = store.delivery(delivery_id)
    if found is None:
        abort(404, f"no delivery {delivery_id}")
    if acted:
        flash(f"Delivery {delivery_id} {done}.", "ok")
    else:
        flash(f"Delivery {delivery_id} was not changed: {why_not(found, now)}.", "error")
    return redirect(url_for("console.event", event_id=found["event_id"],
                            _anchor=f"delivery-{delivery_id}"))
