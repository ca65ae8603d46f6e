"""Each mapping's last event and its day in figures (the console's Mappings page)."""

from __future__ import annotations

import sqlalchemy as sa

from relay.model import Attempt, Outcome
from relay.store import mapping_stats
from tests.unit.store.helpers import FAILED, LEASE, NOW, accept, everywhere, planned

DAY = 86400.0


class TestMappingStats:
    @everywhere
    def test_it_counts_the_last_day_and_finds_the_last_event(self, any_store):
        """Accepted and failed events and dead deliveries of the last day are counted per
        mapping; the last event's time is found however old; a mapping without events has
        none and zeros; a mapping not asked about is left out."""
        old = accept(any_store, planned("old"), mapping="leads", now=NOW - 3 * DAY).event_id
        dying = accept(any_store, planned("a"), mapping="leads", now=NOW - 60).event_id
        accept(any_store, planned("b"), mapping="leads", now=NOW - 30)
        accept(any_store, FAILED, mapping="leads", now=NOW - 20)
        accept(any_store, planned("q"), mapping="quiet", now=NOW - 2 * DAY)
        accept(any_store, planned("x"), mapping="other", now=NOW - 10)
        for claimed in any_store.claim("w", 10, NOW, LEASE):
            if claimed.event_id in (old, dying):  # dead now, whenever the event came
                any_store.record_many([Attempt(claimed.id, NOW, 1, Outcome.DEAD, 400)], "w", NOW)
        stats = any_store.mapping_stats(["leads", "quiet", "never"], NOW - DAY)
        assert stats == {
            "leads": {"last_at": NOW - 20, "accepted": 2, "failed": 1, "dead": 2},
            "quiet": {"last_at": NOW - 2 * DAY, "accepted": 0, "failed": 0, "dead": 0},
            "never": {"last_at": None, "accepted": 0, "failed": 0, "dead": 0},
        }
        assert any_store.mapping_stats([], NOW) == {}

    def test_it_reads_the_indexes_not_the_tables(self, store):
        """The plan of the one statement uses events_mapping_received for the events and
        deliveries_dead for the dead ones: no scan of either table."""
        names, since = ["leads", "orders"], NOW - DAY
        captured: list[str] = []

        def plan(conn, query):
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
            captured.extend(str(r[-1]) for r in conn.execute(sa.text(prefix + str(compiled))))
            return []

        class Recorder:
            def __init__(self, conn):
                self.conn = conn

            def execute(self, query):
                return plan(self.conn, query)

        with store.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SET enable_seqscan = off"))  # an empty table: any plan
            mapping_stats.mapping_stats(Recorder(conn), names, since)
        text = "\n".join(captured)
        assert "events_mapping_received" in text, text
        assert "deliveries_dead" in text, text
        assert "SCAN events\n" not in text + "\n" and "Seq Scan on events" not in text, text
        assert "Seq Scan on deliveries" not in text, text
