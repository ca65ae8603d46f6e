"""The operator console under /admin: server-rendered pages over the same store as /api.

Logging in with RELAY_ADMIN_TOKEN opens a session (a row in the store, named by a signed
cookie: HttpOnly, SameSite=Lax, Secure; see auth.py); every form carries the session's CSRF
token; logging out deletes the row. RELAY_MASK_PII masks phone numbers and emails on every
page.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import phonenumbers
from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from relay.config import parse_since
from relay.errors import RelayError
from relay.store import STATUSES
from relay.store.display import event_problem, event_state, pretty_body, shown_state, utc_text
from relay.store.failures import group_failures
from relay.store.replay import replay_event
from relay.web.api import EVENT_ID, preview_body
from relay.web.auth import check_token, end_session, start_session
from relay.web.openapi import MAX_ID
from relay.web.services import services

console = Blueprint("console", __name__, url_prefix="/admin")
_PHONE = re.compile(r"\+?\d[\d ()-]{6,}\d")
_EMAIL = re.compile(r"([\w.+-])[\w.+-]*(@[\w-]+(\.[\w-]+)+)")


def init_app(app: Flask) -> None:
    settings = services(app).settings
    app.jinja_env.filters["when"] = utc_text
    app.jinja_env.filters["mask"] = lambda text: mask(text, settings.mask_pii)
    # App-wide, not the blueprint's: error pages of paths no view matched use base.html too.
    app.context_processor(_page_context)
    app.register_blueprint(console)


def _page_context() -> dict[str, Any]:
    # Only a logged-in session has a CSRF token; an anonymous page sets no cookie at all.
    logged_in = g.get("auth") == "session"
    return {"logged_in": logged_in, "csrf": session.get("csrf", "") if logged_in else ""}


@console.before_request
def _check_csrf() -> None:
    # Bearer requests carry no cookie a browser would add by itself: no CSRF to fear.
    if request.method == "POST" and g.get("auth") == "session" and not (
            secrets.compare_digest(request.form.get("csrf", ""), session.get("csrf", "-"))):
        abort(400, "the form expired: reload the page and try again")


@console.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = request.values.get("next") or url_for("console.events")
    if not target.startswith("/admin") or not target.isprintable():
        target = url_for("console.events")  # never off the console, never a forged header
    error = None
    if request.method == "POST":
        # check_token answers 429 once this address has guessed wrong too often.
        if check_token(request.form.get("token", "")):
            start_session()
            return redirect(target)
        error = "That is not the admin token."
    # Not flashed: a flash would be kept in a cookie, and an anonymous page sets none.
    return render_template("login.html", next=target, error=error)


@console.post("/logout")
def logout() -> Any:
    end_session()
    return redirect(url_for("console.login"))


@console.get("/")
def events() -> Any:
    filters = {k: request.args.get(k) or None for k in ("mapping", "status", "phone", "since")}
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
    phone = _phone_digits(filters["phone"], filters["mapping"]) if filters["phone"] else None
    rows = services().store.events(status=filters["status"], mapping=filters["mapping"],
                                    phone=phone, since=since, before=before, limit=51)
    for row in rows:
        row["state"] = event_state(row)
        row["problem"] = event_problem(row)
    return render_template("events.html", events=rows[:50], more=len(rows) > 50,
                           filters={k: v for k, v in filters.items() if v},
                           mappings=services().registry.names(), statuses=STATUSES)


def _phone_digits(typed: str, mapping: str | None) -> str:
    """What to look for in stored phones (country code and number, digits only) when a
    person types a number: as they would dial it, e.g. 09822012345 with the trunk 0, finds
    919822012345. A number valid for the region of the filtered mapping (else of any loaded
    one) is searched by its national significant number; anything else by its digits."""
    registry = services().registry
    names = [mapping] if mapping else registry.names()
    regions = [m.mapping.phone.region for m in map(registry.get, names) if m is not None]
    for region in dict.fromkeys([*regions, None]):  # None: numbers typed with a +
        try:
            parsed = phonenumbers.parse(typed, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return str(parsed.national_number)
    return "".join(ch for ch in typed if ch.isdigit())


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


@console.get("/failures")
def failures() -> Any:
    return render_template("failures.html",
                           groups=group_failures(services().store.failures()))


@console.post("/failures/replay")
def replay_group() -> Any:
    ids = sorted({int(i) for i in request.form.getlist("event")
                  if re.fullmatch(r"[0-9]{1,19}", i) and 1 <= int(i) <= MAX_ID})
    results = [replay_event(services().store, services().registry.get, i, time.time())
               for i in ids]
    failed = [r for r in results if not r.ok]
    flash(f"Replayed {len(results)} event(s); {len(failed)} with problems"
          + (f": {failed[0].message}" if failed else ""), "error" if failed else "ok")
    return redirect(url_for("console.failures"))


@console.route("/playground", methods=["GET", "POST"])
def playground() -> Any:
    names = services().registry.names()
    form = {"mapping": request.form.get("mapping", names[0] if names else ""),
            "body": request.form.get("body", ""), "headers": request.form.get("headers", "")}
    result = None
    if request.method == "POST":
        result = _preview(form)
    return render_template("playground.html", mappings=names, form=form, result=result)


def _preview(form: dict[str, str]) -> dict[str, Any]:
    mapping = services().registry.get(form["mapping"])
    if mapping is None:
        return {"status": "failed", "errors": [{"field": "mapping", "message": "not found"}]}
    lines = (line.partition(":") for line in form["headers"].splitlines() if ":" in line)
    headers = {name.strip(): value.strip() for name, _, value in lines}
    return preview_body(mapping, form["body"].encode(), headers, {})


def mask(text: Any, enabled: bool) -> Any:
    """Phone numbers to their last 4 digits, emails to their first letter and domain."""
    if not enabled or not isinstance(text, str):
        return text
    text = _PHONE.sub(lambda m: "•" * max(0, len(m.group(0)) - 4) + m.group(0)[-4:], text)
    return _EMAIL.sub(lambda m: f"{m.group(1)}•••{m.group(2)}", text)
