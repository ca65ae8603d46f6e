"""The operator console under /admin: server-rendered pages over the same store as /api.

Logging in with RELAY_ADMIN_TOKEN sets a session cookie (HttpOnly, SameSite=Lax, Secure);
every form carries a CSRF token. RELAY_MASK_PII masks phone numbers and emails on every page.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from relay.admin import group_failures, preview_body, token_matches
from relay.config import parse_since
from relay.errors import BodyError, RelayError
from relay.history import STATUSES, event_problem, event_state, utc_text
from relay.replay import replay_event

console = Blueprint("console", __name__, url_prefix="/admin")
_PHONE = re.compile(r"\+?\d[\d ()-]{6,}\d")
_EMAIL = re.compile(r"([\w.+-])[\w.+-]*(@[\w-]+(\.[\w-]+)+)")


def init_app(app: Flask) -> None:
    settings = app.extensions["relay"]["settings"]
    # Sessions are signed with a key derived from the admin token: changing the token logs
    # everyone out.
    app.secret_key = hashlib.sha256(b"relay console " + settings.admin_token.encode()).digest()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="relay_console")
    app.session_interface = _SessionInterface()
    app.jinja_env.filters["when"] = utc_text
    app.jinja_env.filters["mask"] = lambda text: _mask(text, settings.mask_pii)
    app.register_blueprint(console)


class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app: Flask) -> bool:
        # Secure (HTTPS only) everywhere but plain HTTP on this machine's loopback, where
        # browsers would drop a Secure cookie and nothing travels over a network.
        host = request.host.rsplit(":", 1)[0].strip("[]")
        return request.is_secure or host not in ("127.0.0.1", "localhost", "::1")


def _relay() -> dict[str, Any]:
    return current_app.extensions["relay"]


@console.context_processor
def _csrf() -> dict[str, str]:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return {"csrf": session["csrf"]}


@console.before_request
def _check_csrf() -> None:
    if request.method == "POST" and request.endpoint != "console.login" and not (
            secrets.compare_digest(request.form.get("csrf", ""), session.get("csrf", "-"))):
        abort(400, "the form expired: reload the page and try again")


@console.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = request.values.get("next") or url_for("console.events")
    if not target.startswith("/admin"):
        target = url_for("console.events")  # never redirect off the console
    if request.method == "POST":
        if token_matches(request.form.get("token", "")):
            session.clear()
            session["admin"] = True
            return redirect(target)
        flash("That is not the admin token.", "error")
    return render_template("login.html", next=target)


@console.post("/logout")
def logout() -> Any:
    session.clear()
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
    rows = _relay()["store"].events(status=filters["status"], mapping=filters["mapping"],
                                    phone=filters["phone"], since=since, before=before,
                                    limit=51)
    for row in rows:
        row["state"] = event_state(row)
        row["problem"] = event_problem(row)
    return render_template("events.html", events=rows[:50], more=len(rows) > 50,
                           filters={k: v for k, v in filters.items() if v},
                           mappings=_relay()["registry"].names(), statuses=STATUSES)


@console.get("/events/<int:event_id>")
def event(event_id: int) -> Any:
    found = _relay()["store"].event(event_id)
    if found is None:
        abort(404, f"no event {event_id}")
    body = found["body"].decode("utf-8", "replace")
    with contextlib.suppress(ValueError):  # not JSON: shown as it came
        body = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    return render_template("event.html", event=found, body=body)


@console.post("/events/<int:event_id>/replay")
def replay(event_id: int) -> Any:
    replayed = replay_event(_relay()["store"], _relay()["registry"].get, event_id, time.time())
    flash(f"Event {event_id}: {replayed.message}", "ok" if replayed.ok else "error")
    return redirect(url_for("console.event", event_id=event_id))


@console.get("/failures")
def failures() -> Any:
    return render_template("failures.html",
                           groups=group_failures(_relay()["store"].failures()))


@console.post("/failures/replay")
def replay_group() -> Any:
    ids = sorted({int(i) for i in request.form.getlist("event") if i.isdigit()})
    results = [replay_event(_relay()["store"], _relay()["registry"].get, i, time.time())
               for i in ids]
    failed = [r for r in results if not r.ok]
    flash(f"Replayed {len(results)} event(s); {len(failed)} with problems"
          + (f": {failed[0].message}" if failed else ""), "error" if failed else "ok")
    return redirect(url_for("console.failures"))


@console.route("/playground", methods=["GET", "POST"])
def playground() -> Any:
    names = _relay()["registry"].names()
    form = {"mapping": request.form.get("mapping", names[0] if names else ""),
            "body": request.form.get("body", ""), "headers": request.form.get("headers", "")}
    result = None
    if request.method == "POST":
        result = _preview(form)
    return render_template("playground.html", mappings=names, form=form, result=result)


def _preview(form: dict[str, str]) -> dict[str, Any]:
    mapping = _relay()["registry"].get(form["mapping"])
    if mapping is None:
        return {"status": "failed", "errors": [{"field": "mapping", "message": "not found"}]}
    lines = (line.partition(":") for line in form["headers"].splitlines() if ":" in line)
    headers = {name.strip(): value.strip() for name, _, value in lines}
    try:
        return preview_body(mapping, form["body"].encode(), headers, {})
    except BodyError as exc:
        return {"status": "failed", "errors": [{"field": "body", "message": str(exc)}]}


def _mask(text: Any, enabled: bool) -> Any:
    """Phone numbers to their last 4 digits, emails to their first letter and domain."""
    if not enabled or not isinstance(text, str):
        return text
    text = _PHONE.sub(lambda m: "•" * max(0, len(m.group(0)) - 4) + m.group(0)[-4:], text)
    return _EMAIL.sub(lambda m: f"{m.group(1)}•••{m.group(2)}", text)
