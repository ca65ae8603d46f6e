"""The operator console under /admin: server-rendered pages over the same store as /api.

Logging in with RELAY_ADMIN_TOKEN opens a session (a row in the store, named by a signed
cookie: HttpOnly, SameSite=Lax, Secure; see auth.py); every form carries the session's CSRF
token; logging out deletes the row. RELAY_MASK_PII masks phone numbers and emails on every
page.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from relay.store.display import utc_text
from relay.web.auth import check_token, end_session, start_session
from relay.web.services import services

# Scripts and the like at /admin/static/ (relay/web/static/), behind the login like the pages.
console = Blueprint("console", __name__, url_prefix="/admin", static_folder="../static")
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
    path = urlsplit(target).path  # and no "..": /admin/../x is /x to a browser
    if (not target.isprintable() or "\\" in target or target.startswith("//")
            or not path.startswith("/admin") or ".." in path.split("/")):
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


def mask(text: Any, enabled: bool) -> Any:
    """Phone numbers to their last 4 digits, emails to their first letter and domain."""
    if not enabled or not isinstance(text, str):
        return text
    text = _PHONE.sub(lambda m: "•" * max(0, len(m.group(0)) - 4) + m.group(0)[-4:], text)
    return _EMAIL.sub(lambda m: f"{m.group(1)}•••{m.group(2)}", text)


# The pages, one module each; importing them adds their views to the blueprint.
from relay.web.console import capture, dashboard, events, failures, mappings, playground  # noqa: E402, F401
