"""Search and the dashboard: find events by phone and by text in the body, and read
deliveries and attempts by time (relay/store/search.py, relay/store/charts.py).

- `deliveries_phone`: a phone typed in any format is looked up by its stored forms.
- `deliveries_created`: the dashboard's charts read a window of time (attempts by
  `attempts_started`, from 0007).
- Text in the body. PostgreSQL: a trigram GIN index (pg_trgm) over `encode(body, 'escape')`,
  which serves ILIKE '%text%'. SQLite: an FTS5 table with the trigram tokenizer over the
  events' bodies (external content: the index only, the bodies are not copied). The worker
  indexes new events after their commit, in batches, up to the id kept in `instance` under
  `search_indexed` (SqliteStore.index_search): an insert trigger made every webhook's own
  transaction index its body, a third more CPU a webhook and twice the tail latency of the
  acks. Triggers keep the indexed part right when events are deleted (or a body changed);
  existing events are indexed here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"

INDEXED = "(SELECT CAST(value AS INTEGER) FROM instance WHERE key = 'search_indexed')"
LAST_ID = "(SELECT coalesce(max(id), 0) FROM events)"
SQLITE = (
    # content='events': the text is read from events.body when needed; only the index is kept.
    "CREATE VIRTUAL TABLE events_search USING fts5("
    "body, content='events', content_rowid='id', tokenize='trigram')",
    "INSERT INTO events_search (events_search) VALUES ('rebuild')",
    f"INSERT INTO instance (key, value) VALUES ('search_indexed', {LAST_ID})",
    # One trigger, its statements in this order: an indexed event leaves the index (an FTS5
    # 'delete' of a row never indexed would corrupt it); then, with no AUTOINCREMENT, SQLite
    # gives the ids above the last one left to new events again, so the mark comes down to
    # the last id left, or those new events would count as indexed.
    "CREATE TRIGGER events_search_delete AFTER DELETE ON events BEGIN "
    "INSERT INTO events_search (events_search, rowid, body) "
    f"SELECT 'delete', old.id, old.body WHERE old.id <= {INDEXED}; "
    f"UPDATE instance SET value = {LAST_ID} "
    f"WHERE key = 'search_indexed' AND CAST(value AS INTEGER) > {LAST_ID}; END",
    # No relay code changes a body; the trigger keeps the index right should anyone do so.
    "CREATE TRIGGER events_search_update AFTER UPDATE OF body ON events "
    f"WHEN old.id <= {INDEXED} BEGIN "
    "INSERT INTO events_search (events_search, rowid, body) "
    "VALUES ('delete', old.id, old.body); "
    "INSERT INTO events_search (rowid, body) VALUES (new.id, new.body); END",
)


def upgrade() -> None:
    # IF NOT EXISTS: on a large PostgreSQL history an operator may build these beforehand
    # with CREATE INDEX CONCURRENTLY (docs/operations.md), which blocks no webhook; a plain
    # build here holds off inserts until it ends (74 s for the text index of a million).
    op.create_index("deliveries_phone", "deliveries", ["phone"], if_not_exists=True)
    op.create_index("deliveries_created", "deliveries", ["created_at"], if_not_exists=True)
    if op.get_bind().dialect.name == "postgresql":
        # A trusted extension since PostgreSQL 13: the database's owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index("events_body_trgm", "events",
                        [sa.text("encode(body, 'escape') gin_trgm_ops")],
                        postgresql_using="gin", if_not_exists=True)
    elif op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
