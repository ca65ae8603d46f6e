"""SQLite's search index merges its segments 16 at a time rather than FTS5's default 4, and
merges all at once (a crisis merge) only at 32 of a level, not at 16.

Every transaction of the worker's indexing (SqliteStore.index_search, a few milliseconds of
write lock each) leaves a new segment in the FTS5 table, and FTS5 merges them as they pile
up, a little with each transaction: at 4 to a merge, merging cost a third of the index's CPU
(a 2 KB Typeform body: 0.17 ms to index at 4, 0.12 ms at 16, in transactions of 25 on
40,000 events; benchmarks/README.md), the worker's largest cost per webhook. At 16 a merge,
the default crisis threshold (16) would be reached as often: a crisis merge held the write
lock for 184 ms where other transactions took 2; at 32 none happens, and the longest
transaction was 20 ms (86-130 ms at the defaults). A search reads more segments meanwhile:
the same times, within a millisecond, on 20,000 events. What matches is unchanged. The
settings live in the table (its config shadow table), so this sets them for every process.
"""

from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for key, value in (("automerge", 16), ("crisismerge", 32)):
            op.execute(f"INSERT INTO events_search (events_search, rank) VALUES ('{key}', {value})")
