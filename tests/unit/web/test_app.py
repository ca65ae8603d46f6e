"""The app factory, /healthz and /readyz."""

from __future__ import annotations

import gc
import logging

import pytest

from relay.config import Settings
from relay.errors import RelayError
from relay.sources.registry import Registry
from relay.store import open_store
from relay.web.app import create_app
from tests.support.admin_app import make_admin


class TestFactory:
    def test_it_builds_an_app_and_leaves_the_process_alone(self, tmp_path):
        """Logging and the collector's freeze are the web server's to set up (server.py):
        an app made in a test touches neither."""
        factory, handlers = logging.getLogRecordFactory(), list(logging.getLogger().handlers)
        frozen = gc.get_freeze_count()
        admin = make_admin(tmp_path)
        assert admin.client().get("/healthz").status_code == 200
        assert logging.getLogRecordFactory() is factory
        assert logging.getLogger().handlers == handlers
        assert gc.get_freeze_count() == frozen

    def test_it_refuses_a_short_admin_token(self, tmp_path):
        """A token under 32 characters is refused however the settings were made."""
        with pytest.raises(RelayError, match="needs at least 32"):
            create_app(Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}",
                                mappings=str(tmp_path), admin_token="x" * 31))


def test_healthz_is_alive_whatever_else_is_wrong(tmp_path):
    """No mapping, no tables: the process answers, so it is alive."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    app = create_app(Settings(database_url=url, mappings=str(tmp_path)))
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}


class TestReadyz:
    def test_it_lists_broken_mapping_files_and_stays_ready(self, tmp_path):
        admin = make_admin(tmp_path)
        ready = admin.client().get("/readyz")
        assert ready.status_code == 200
        answer = ready.get_json()
        assert (answer["status"], answer["mappings"], answer["broken"]) == ("ready", ["leads"], [])
        assert [(s["name"], s["state"]) for s in answer["states"]] == [("leads", "unconfigured")]
        (tmp_path / "orders.yaml").write_text("phone: body.phone\nflows: nope\n")
        admin.registry.refresh(force=True)
        ready = admin.client().get("/readyz")
        assert ready.status_code == 200
        answer = ready.get_json()
        assert answer["status"] == "ready" and answer["mappings"] == ["leads"]
        assert [(b["name"], b["file"]) for b in answer["broken"]] == [("orders", "orders.yaml")]
        assert answer["broken"][0]["error"].startswith("orders.yaml")
        assert {s["name"]: s["state"] for s in answer["states"]}["orders"] == "broken"
        assert str(tmp_path) not in ready.get_data(as_text=True)  # no machine paths
        assert "ENGATI_API_KEY" not in ready.get_data(as_text=True)  # the why is the console's

    def test_without_mappings_it_is_not_ready(self, tmp_path):
        url = f"sqlite:///{tmp_path / 'r.db'}"
        store = open_store(url)
        store.upgrade()
        registry = Registry(tmp_path)
        registry.load()
        app = create_app(Settings(database_url=url, mappings="mappings"), store=store,
                         registry=registry)
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json() == {"error": "no mappings loaded",
                                    "hint": "add mapping files to mappings/"}
        store.dispose()
