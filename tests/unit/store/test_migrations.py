"""Migrations: an empty database and one at a previous schema both reach tables.py."""

from __future__ import annotations

import alembic.command
import alembic.config
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from relay.mapping import Delivery, Result
from relay.model import Attempt, Outcome, Received
from relay.store import Store, open_store
from relay.store.tables import metadata


def differences(store: Store) -> list:
    with store.engine.connect() as conn:
        dialect = conn.dialect.name

        # Left out of the comparison, on purpose, on SQLite: its FTS5 table of body search
        # (events_search, with the shadow tables FTS5 keeps beside it; 0009), which tables.py
        # cannot express, and tables.py's events_search in its place, PostgreSQL's (0015).
        # test_search.py checks that both work.
        def include_name(name: str | None, kind: str, _parent: object) -> bool:
            return not (dialect == "sqlite" and kind == "table"
                        and (name or "").startswith("events_search"))

        def include_object(obj: object, name: str | None, kind: str, *_: object) -> bool:
            return not (dialect == "sqlite" and kind in ("table", "index")
                        and (name or "").startswith("events_search"))

        context = MigrationContext.configure(conn, opts={
            "include_name": include_name, "include_object": include_object})
        return compare_metadata(context, metadata)


def upgrade_to(store: Store, revision: str) -> None:
    config = alembic.config.Config()
    config.set_main_option("script_location", "relay.store:migrations")
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        alembic.command.upgrade(config, revision)


def test_empty_database_gets_the_schema_of_tables_py(database_url):
    """`relay db upgrade` on an empty database builds exactly what relay/tables.py says."""
    store = open_store(database_url)
    assert store.upgrade() == (None, "0016")
    assert differences(store) == []
    assert store.upgrade() == ("0016", "0016")  # idempotent
    store.dispose()


def test_first_schema_is_upgraded_with_its_data(database_url):
    """A database at revision 0001 with events in it upgrades and keeps working."""
    store = open_store(database_url)
    upgrade_to(store, "0001")
    with store.engine.begin() as conn:
        assert "worker" not in {c["name"] for c in sa.inspect(conn).get_columns("attempts")}
    # Write through the old columns only, as the previous version would have.
    with store.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO events (mapping, received_at, status, body, headers, query) "
            "VALUES ('leads', 1.0, 'accepted', :body, '{}', '{}')"), {"body": b"{}"})
        event_id = conn.execute(sa.text("SELECT id FROM events")).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO deliveries (event_id, mapping, flow_key, channel, phone, attributes,"
            " status, attempts, next_at, created_at, updated_at) VALUES "
            "(:event, 'leads', 'F', 'whatsapp', '919812345678', '{}', 'pending', 0, 1.0, 1.0,"
            " 1.0)"), {"event": event_id})
    store.upgrade()
    assert differences(store) == []
    (claimed,) = store.claim("w", 10, 2.0, 60)
    assert claimed.event_id == event_id
    store.record_many([Attempt(claimed.id, 2.0, 1.0, Outcome.DELIVERED, 200, 1000)], "w", 3.0)
    assert store.event(event_id)["deliveries"][0]["attempt_log"][0]["worker"] == "w"
    receipt = store.accept(Received("leads", b"{}", {}, {},
                                    Result((Delivery("F", "whatsapp", "1", {}),)), 4.0))
    assert receipt.status == "accepted"
    store.dispose()


# Errors as the worker wrote them before 0006, and the kind each is given.
OLD_ERRORS = {
    "engati settings not set: ENGATI_API_KEY": "unconfigured",
    "timed out waiting for Engati; gave up after 8 attempts": "timeout",
    "could not reach Engati: ClientConnectorError": "unreachable",
    "Engati answered HTTP 401 (check the API key)": "auth",
    "Engati answered HTTP 403 with status 4003 forbidden (check the API key)": "auth",
    "Engati answered HTTP 429; gave up after 86400s": "rate_limited",
    "Engati answered HTTP 400 with status 4001 bad phone": "rejected",
    "Engati answered HTTP 503": "server",
    "Engati answered HTTP 200 with status 5000 flow not found": "code",
    "something no worker wrote": None,
}


def test_failure_kinds_are_filled_from_the_old_error_texts(database_url):
    """0006 gives every delivery and attempt of a database at 0005 the kind of failure its
    error text says, so the failures inbox groups the old failures too."""
    store = open_store(database_url)
    upgrade_to(store, "0005")
    with store.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO events (mapping, received_at, status, body, headers, query) "
            "VALUES ('leads', 1.0, 'accepted', :body, '{}', '{}')"), {"body": b"{}"})
        event_id = conn.execute(sa.text("SELECT id FROM events")).scalar_one()
        for error in [*OLD_ERRORS, None]:
            delivery_id = conn.execute(sa.text(
                "INSERT INTO deliveries (event_id, mapping, flow_key, channel, phone, "
                "attributes, status, attempts, next_at, created_at, updated_at, last_error) "
                "VALUES (:event, 'leads', 'F', 'whatsapp', '1', '{}', 'dead', 1, 1.0, 1.0, 1.0,"
                " :error) RETURNING id"), {"event": event_id, "error": error}).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome, error) "
                "VALUES (:delivery, 1.0, 1.0, 'dead', :error)"),
                {"delivery": delivery_id, "error": error})
    assert store.upgrade() == ("0005", "0016")
    expected = [*OLD_ERRORS.values(), None]
    with store.engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT failure FROM deliveries ORDER BY id")).scalars().all() == expected
        assert conn.execute(sa.text(
            "SELECT failure FROM attempts ORDER BY id")).scalars().all() == expected
    assert {f["failure"] for f in store.failures() if f["kind"] == "dead"} == (
        set(OLD_ERRORS.values()))
    store.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgres_search_moves_to_its_table_with_the_stored_events(database_url):
    """0015 copies the events stored at 0014 into events_search, marks them all indexed and
    drops the trigram index over events: they are found through the table, and new events
    still are."""
    store = open_store(database_url)
    upgrade_to(store, "0014")
    with store.engine.begin() as conn:
        stored = [conn.execute(sa.text(
            "INSERT INTO events (mapping, received_at, status, body, headers, query) "
            "VALUES ('leads', 1.0, 'accepted', :body, '{}', '{}') RETURNING id"),
            {"body": body}).scalar_one() for body in (b'{"a": "Old One"}', b"old\xe9two")]
    assert store.upgrade() == ("0014", "0016")
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, body FROM events_search ORDER BY id")).all() == [
            (stored[0], '{"a": "Old One"}'), (stored[1], "old\\351two")]
        assert conn.execute(sa.text(
            "SELECT value FROM instance WHERE key = 'search_indexed'")).scalar_one() == str(
            stored[1])
        assert "events_body_trgm" not in {i["name"] for i in sa.inspect(conn).get_indexes("events")}
    assert differences(store) == []
    assert [e["id"] for e in store.events(text="old")] == stored[::-1]
    new = store.accept(Received("leads", b'{"a": "old news"}', {}, {}, Result(), 2.0)).event_id
    assert [e["id"] for e in store.events(text="old")] == [new, *stored[::-1]]
    assert store.index_search(10) == 1
    assert [e["id"] for e in store.events(text="old")] == [new, *stored[::-1]]
    store.dispose()
