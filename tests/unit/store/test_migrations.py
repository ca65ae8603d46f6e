"""Migrations: an empty database and one at the previous schema both reach tables.py."""

from __future__ import annotations

import alembic.command
import alembic.config
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from relay.mapping import Delivery, Result
from relay.model import Attempt
from relay.store import Store
from relay.store.tables import metadata


def differences(store: Store) -> list:
    with store.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def upgrade_to(store: Store, revision: str) -> None:
    config = alembic.config.Config()
    config.set_main_option("script_location", "relay.store:migrations")
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        alembic.command.upgrade(config, revision)


def test_empty_database_gets_the_schema_of_tables_py(database_url):
    """`relay db upgrade` on an empty database builds exactly what relay/tables.py says."""
    store = Store(database_url)
    store.upgrade()
    assert differences(store) == []
    store.upgrade()  # idempotent
    store.dispose()


def test_previous_schema_is_upgraded_with_its_data(database_url):
    """A database at revision 0001 with events in it upgrades and keeps working."""
    store = Store(database_url)
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
    store.record_many([Attempt(claimed.id, 2.0, 1.0, "delivered", 200, 1000)], "w", 3.0)[0]
    assert store.event(event_id)["deliveries"][0]["attempt_log"][0]["worker"] == "w"
    receipt = store.accept("leads", b"{}", {}, {}, Result((Delivery("F", "whatsapp", "1", {}),)),
                           4.0)
    assert receipt.status == "accepted"
    store.dispose()
