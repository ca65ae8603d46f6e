"""The web app: webhooks (intake.py), health, metrics, and the console and API for operators.

`gunicorn 'relay.app:create_app()'` serves it, under the worker class of server.py, which
sets up logging and the collector for the process; the factory only builds the app, so
that tests may build as many as they like.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from relay.config import Settings
from relay.errors import StoreUnavailable
from relay.sources.registry import Registry
from relay.sources.status import folder_states
from relay.store import Store, open_store
from relay.web import api, auth, console, errors, metrics
from relay.web.intake import Intake
from relay.web.limits import RateLimit
from relay.web.services import Services, services


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    settings.check_admin_token()  # from_env checks it too; this holds for settings made in code
    if registry is None:
        registry = Registry(settings.mappings)
        registry.load(announce=not settings.quiet_start, strict=not settings.quiet_start)
    app = Flask(__name__, static_folder=None)  # the console serves its own, at /admin/static
    store = store or open_store(settings.database_url, timeout=settings.db_timeout)
    app.extensions["relay"] = Services(settings, store, registry, login_limit=RateLimit(5, 60.0))
    auth.init_app(app)
    api.init_app(app)
    console.init_app(app)
    errors.init_app(app)
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    app.add_url_rule("/readyz", "readyz", ready)
    app.add_url_rule("/metrics", "metrics", metrics_page)
    # Webhooks are answered in front of Flask, by a plain WSGI app (see intake.py).
    app.wsgi_app = Intake(app.wsgi_app, settings, store, registry)  # type: ignore[method-assign]
    return app


def metrics_page() -> Response:
    body, content_type = metrics.render(services().store, bool(services().settings.metrics_dir))
    return Response(body, content_type=content_type)


def ready() -> Any:
    """Ready when the database answers and a mapping is loaded. Broken mapping files are
    listed (`broken`, always there) but do not make the relay unready: one bad file must not
    take every other endpoint out of a load balancer. `states` gives every file's state
    (ok, broken, locked, unconfigured; relay/sources/status.py)."""
    relay = services()
    try:
        relay.store.ping()
    except StoreUnavailable as exc:
        return errors.json_error(503, str(exc), "check DATABASE_URL and that the database is up")
    names = relay.registry.names()
    if not names:
        return errors.json_error(503, "no mappings loaded",
                                 f"add mapping files to {relay.settings.mappings}/")
    # Each file's state, as the console's Mappings page and `relay check` say it (status.py),
    # without their why: this page answers anyone, and which variables wait is the console's.
    states = [{k: getattr(s, k) for k in ("name", "file", "state", "line", "serving")}
              for s in folder_states(relay.registry.files())]
    return {"status": "ready", "mappings": names, "broken": relay.registry.broken(),
            "states": states}
