"""An app with the console and API on, over SQLite in a temporary folder: for the tests of
/admin and /api (test_auth.py, test_console.py, test_api.py, ...)."""

from __future__ import annotations

import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from relay.config import Settings
from relay.model import Attempt
from relay.sources.registry import Registry
from relay.store import Store, open_store
from relay.web.app import create_app

TOKEN = "admin-token-for-tests-0123456789-abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
LEADS = """
phone: {path: body.phone, region: IN}
flows:
  - flow_key: ABC
"""


@dataclass
class Admin:
    app: Flask
    store: Store
    registry: Registry

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def logged_in(self, address: str = "127.0.0.1") -> FlaskClient:
        client = self.app.test_client()
        answer = client.post("/admin/login", data={"token": TOKEN},
                             environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return client

    def csrf(self, client: FlaskClient) -> str:
        with client.session_transaction("/admin/") as session:
            return session["csrf"]

    def dead_delivery(self, phone: str = "+919812345678") -> int:
        """A webhook whose one delivery Engati refused (HTTP 400): dead after 1 attempt."""
        event_id = self.client().post("/hooks/leads", json={"phone": phone}).get_json()[
            "event_id"]
        self.attempt("dead", 400, "Engati answered HTTP 400")
        return event_id

    def attempt(self, outcome: str, status: int, error: str | None = None) -> None:
        now = time.time()
        (claimed,) = self.store.claim("test", 1, now, 60)
        assert self.store.record_many([Attempt(claimed.id, now, 5.0, outcome, status, None, error)],
                                      "test", now)[0]


def make_admin(folder: Path, mapping: str = LEADS, **settings: Any) -> Admin:
    """The relay app with RELAY_ADMIN_TOKEN set and a `leads` mapping in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leads.yaml").write_text(textwrap.dedent(mapping))
    return serve_folder(folder, folder / "relay.db", admin_token=TOKEN, **settings)


def serve_folder(folder: Path, database: Path, **settings: Any) -> Admin:
    """The relay app over the mappings in `folder`, on a new SQLite file `database` (the
    caller disposes of its store)."""
    url = f"sqlite:///{database}"
    store = open_store(url)
    store.upgrade()
    registry = Registry(folder)
    registry.load()
    app = create_app(Settings(database_url=url, mappings=str(folder), **settings),
                     store=store, registry=registry)
    return Admin(app, store, registry)
