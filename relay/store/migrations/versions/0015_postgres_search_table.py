"""PostgreSQL's search index leaves the webhooks' transactions: the bodies' text goes into a
table of its own, `events_search` (id, body as `encode(body, 'escape')` spells it) with the
trigram index, filled by the worker after the commits (PostgresStore.index_search), as
SQLite's FTS5 table is; the index over events (`events_body_trgm`, 0009) goes. Every accepted
webhook's insert kept that GIN index in the web process's synced transaction: dropping it
took `benchmarks/e2e.py` on PostgreSQL from 1106-1183 to 1299-1400 webhooks a second.
Events not indexed yet (id above the mark `search_indexed` in `instance`) are read directly
(relay/store/search.py). A no-op on SQLite.

The events stored so far are copied here, in the upgrade's transaction, which holds off new
webhooks until it ends (LOCK TABLE: an insert still open could otherwise commit an id below
the mark, and never be indexed). On a large history an operator may create and fill the
table beforehand (docs/operations.md); what is found is kept, and only the missing events
are copied.
"""

from alembic import op

revision = "0015"
down_revision = "0014"

POSTGRESQL = (
    "LOCK TABLE events IN SHARE MODE",
    "CREATE TABLE IF NOT EXISTS events_search ("
    "id bigint PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE, body text NOT NULL)",
    "INSERT INTO events_search (id, body) SELECT id, encode(body, 'escape') FROM events "
    "WHERE NOT EXISTS (SELECT FROM events_search s WHERE s.id = events.id)",
    # After the copy: a GIN index built at once is smaller and faster than one grown row by row.
    "CREATE INDEX IF NOT EXISTS events_search_body ON events_search USING gin (body gin_trgm_ops)",
    "INSERT INTO instance (key, value) "
    "SELECT 'search_indexed', CAST(coalesce(max(id), 0) AS text) FROM events "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    "DROP INDEX IF EXISTS events_body_trgm",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL:
            op.execute(statement)
