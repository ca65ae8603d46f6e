"""The events list (filtered by mapping, state, phone and time), an event's page, its replay."""

from __future__ import annotations

import time
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from relay.config import parse_since
from relay.errors import RelayError
from relay.store import STATUSES
from relay.store.display import event_problem, event_state, pretty_body, shown_state
from relay.store.replay import replay_event
from relay.store.search import search_args
from relay.web.api import EVENT_ID
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
    try:
        search = search_args(filters["phone"], filters["q"], _regions(filters["mapping"]))
    except RelayError as exc:
        flash(f"Search: {exc}.", "error")
        search = search_args(filters["phone"], None, _regions(filters["mapping"]))
    rows = services().store.events(status=filters["status"], mapping=filters["mapping"],
                                    since=since, before=before, limit=51, **search)
    for row in rows:
        row["state"] = event_state(row)
        row["problem"] = event_problem(row)
    return render_template("events.html", events=rows[:50], more=len(rows) > 50,
                           filters={k: v for k, v in filters.items() if v},
                           mappings=services().registry.names(), statuses=STATUSES)


def _regions(mapping: str | None) -> list[str | None]:
    """The regions a typed phone is read in (search.phone_terms): the filtered mapping's,
    else every loaded mapping's."""
    registry = services().registry
    names = [mapping] if mapping else registry.names()
    return [m.mapping.phone.region for m in map(registry.get, names) if m is not None]


@console.get(f"/events/{EVENT_ID}")
def event(event_id: int) -> Any:
    found = services().store.event(event_id)
    if found is None:
        abort(404, f"no event {event_id}")
    # The state the events list shows, not the raw status ("accepted" above a dead delivery).
    return render_template("event.html", event=found, body=pretty_body(found["body"]),
                           state=shown_state(found))


@console.post(f"/events/{EVENT_ID}/replay")
def replay(event_id: int) -> Any:
    replayed = replay_event(services().store, services().registry.get, event_id, time.time())
    flash(f"Event {event_id}: {replayed.message}", "ok" if replayed.ok else "error")
    return redirect(url_for("console.event", event_id=event_id))
