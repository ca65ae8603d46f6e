"""SQLite's search index merges its segments only when the worker asks (automerge off,
`SqliteStore.merge_search`), in transactions of their own sized like the indexing's, rather
than inside the transactions that index.

With automerge on (0014: 16 at a time), FTS5 did a share of a pending merge in whatever
transaction wrote a new segment: most of the worker's indexing transactions held the write
lock for 2-4 ms, but one in ten for 6-14 ms while a merge went on in it, and a webhook
arriving meanwhile waited for it (its ack, in `benchmarks/ingest.py` at 300 a second: 35-40
lock waits over 4 ms in 20 s, up to 12 ms). Merged apart, in steps of at most 50 pages
(upkeep.MERGE_MOST): 7-13 such waits, up to 6 ms, and the acks' p99 6.2-7.2 ms in three
runs; the index's segments stayed at about 20 or fewer. A level is merged once it holds 16
segments (usermerge), as before, and FTS5 still merges a level of 32 at once unasked
(crisismerge, 0014), should no worker merge. What matches is unchanged.
"""

from alembic import op

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for key, value in (("automerge", 0), ("usermerge", 16)):
            op.execute(f"INSERT INTO events_search (events_search, rank) VALUES ('{key}', {value})")
