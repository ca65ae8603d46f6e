"""Search: events found by a phone typed in any format and by text in their body, on every
backend (the search tables of migrations 0009 on SQLite and 0015 on PostgreSQL, the fake's
scan). The real backends' searches run twice: with every event indexed by the worker's step
(`index_search`), and with none indexed yet (read from the events themselves)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from relay.errors import RelayError
from relay.mapping import Delivery, Result
from relay.store.search import escape_bytes, phone_terms
from tests.unit.store import helpers
from tests.unit.store.helpers import FAILED, NOW

# `everywhere`, and the real backends with their search index kept after every event.
searched = pytest.mark.parametrize(
    ("database_url", "any_store"),
    [("sqlite", "real"), ("sqlite", "indexed"), ("postgresql", "real"),
     ("postgresql", "indexed"), ("sqlite", "fake")],
    indirect=True, ids=["sqlite", "sqlite-indexed", "postgresql", "postgresql-indexed", "fake"])


def accept(store, result: Result, **kwargs):
    receipt = helpers.accept(store, result, **kwargs)
    if getattr(store, "index_each", False):
        assert store.index_search(1000) == 1
    return receipt


def one(phone: str) -> Result:
    return Result((Delivery("FLOW", "whatsapp", phone, {}),))


def ids(store, **search) -> list[int]:
    return [row["id"] for row in store.events(**search)]


class TestPhoneTerms:
    def test_a_number_in_any_format_reads_as_its_two_stored_forms(self):
        """+91 98220 12345, 09822012345, 9822012345 and 0091... all mean one number."""
        for typed in ("+91 98220 12345", "09822012345", "9822012345", "0091 9822012345",
                      "(+91) 98220-12345"):
            assert phone_terms(typed, ["IN"]) == (("919822012345", "+919822012345"), None)

    def test_a_number_without_country_code_needs_a_region(self):
        """With no mapping of region IN, 9822012345 is only digits to look for."""
        assert phone_terms("9822012345", []) == ((), "9822012345")

    def test_a_partial_number_is_digits_to_look_for(self):
        assert phone_terms("123-45", ["IN"]) == ((), "12345")
        assert phone_terms("%_'", ["IN"]) == ((), None)


def test_postgresql_escape_spelling_matches_encode():
    """escape_bytes spells bytes as PostgreSQL's encode(x, 'escape') does."""
    assert escape_bytes(b"a\\b") == "a\\\\b"
    assert escape_bytes("José".encode()) == "Jos\\303\\251"
    assert escape_bytes(b"\x00x") == "\\000x"


@searched
class TestSearch:
    def test_phone_in_any_format_finds_its_events_and_no_others(self, any_store):
        """Both stored forms are found by their exact value; a longer or shorter number
        sharing digits is not."""
        digits = accept(any_store, one("919822012345"), body=b'{"n": 1}').event_id
        e164 = accept(any_store, one("+919822012345"), body=b'{"n": 2}').event_id
        accept(any_store, one("9198220123456"), body=b'{"n": 3}')
        accept(any_store, one("19822012345"), body=b'{"n": 4}')
        phones, _ = phone_terms("098220 12345", ["IN"])
        assert ids(any_store, phones=phones) == [e164, digits]

    def test_digits_within_a_phone(self, any_store):
        first = accept(any_store, one("919822012345"), body=b'{"n": 1}').event_id
        accept(any_store, one("919800000000"), body=b'{"n": 2}')
        assert ids(any_store, phone="2012345") == [first]
        assert ids(any_store, phone="%") == ids(any_store, phone="_") == []

    def test_text_in_the_body_any_case(self, any_store):
        """An email, a name, a form token: found anywhere in the body, case aside."""
        asha = accept(any_store, one("919800000001"),
                      body=b'{"email": "Asha.K@Example.com", "token": "tf_8x2Kq9"}').event_id
        ravi = accept(any_store, one("919800000002"),
                      body=b'{"email": "ravi@example.org", "name": "Ravi Menon"}').event_id
        assert ids(any_store, text="asha.k@example.com") == [asha]
        assert ids(any_store, text="TF_8X2") == [asha]
        assert ids(any_store, text="ravi menon") == [ravi]
        assert ids(any_store, text="example") == [ravi, asha]
        assert ids(any_store, text="nobody@example.com") == []

    def test_wildcards_quotes_and_sql_are_literal(self, any_store):
        """% and _ match only themselves; quotes and SQL are text, never syntax."""
        plain = accept(any_store, one("919800000001"), body=b'{"a": "abcdef"}').event_id
        odd = accept(any_store, one("919800000002"),
                     body=b'{"a": "50%_off", "q": "it\'s \\"x\\" OR 1=1"}').event_id
        assert ids(any_store, text="%_o") == [odd]
        assert ids(any_store, text="b%d") == ids(any_store, text="b_d") == []
        assert ids(any_store, text="___") == ids(any_store, text="%%%") == []
        assert ids(any_store, text="it's") == [odd]
        assert ids(any_store, text='"x\\"') == [odd]
        assert ids(any_store, text="' OR 1=1 --") == []
        assert ids(any_store, text='" OR "a') == []
        assert ids(any_store, text="abc") == [plain]

    def test_unicode_and_bytes_that_are_not_utf8(self, any_store):
        """A body that is not UTF-8 stores and searches like any other."""
        latin = accept(any_store, one("919800000001"), body=b"name=Jos\xe9&x=1").event_id
        utf8 = accept(any_store, one("919800000002"), body='{"name": "José"}'.encode()).event_id
        assert ids(any_store, text="José") == [utf8]
        assert ids(any_store, text="&x=1") == [latin]

    def test_text_is_three_characters_or_more(self, any_store):
        with pytest.raises(RelayError, match="at least 3 characters"):
            any_store.events(text=" ab ")

    def test_a_nul_is_refused_saying_so(self, any_store):
        """Not a database error (FTS5 cut its string there): a message."""
        with pytest.raises(RelayError, match="without NUL"):
            any_store.events(text="abc\x00def")

    def test_search_combines_with_the_other_filters(self, any_store):
        accept(any_store, one("919800000001"), mapping="a", body=b'{"x": "needle"}')
        b = accept(any_store, one("919800000002"), mapping="b", body=b'{"x": "needle"}').event_id
        failed = accept(any_store, FAILED, body=b'{"x": "needle 2"}').event_id
        assert ids(any_store, text="needle", mapping="b") == [b]
        assert ids(any_store, text="needle", status="failed") == [failed]
        assert ids(any_store, text="needle", since=NOW + 1) == []


class TestSqliteIndex:
    """The worker indexes events after their commit (migration 0009, SqliteStore.index_search);
    deletes keep the indexed part right."""

    @pytest.fixture
    def sqlite(self, tmp_path):
        from relay.store import open_store
        store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
        store.upgrade()
        yield store
        store.dispose()

    @staticmethod
    def indexed(store, text: str) -> int:
        with store.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM events_search "
                                        "WHERE events_search MATCH :phrase"),
                                {"phrase": f'"{text}"'}).scalar_one()

    def test_indexed_in_batches_and_found_with_the_unindexed_ones(self, sqlite):
        """Five events indexed two at a time; a search finds indexed and unindexed alike."""
        made = [accept(sqlite, Result(), body=b'{"x": "needle %d"}' % i).event_id
                for i in range(5)]
        assert [sqlite.index_search(2), sqlite.index_search(2)] == [2, 2]
        assert self.indexed(sqlite, "needle") == 4
        assert ids(sqlite, text="needle") == made[::-1]
        assert ids(sqlite, text="needle", limit=2) == made[:2:-1][:2]
        assert [sqlite.index_search(2), sqlite.index_search(2)] == [1, 0]
        assert self.indexed(sqlite, "needle") == 5
        assert ids(sqlite, text="needle") == made[::-1]

    @staticmethod
    def segments(store) -> int:
        with store.engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(DISTINCT segid) FROM events_search_idx")).scalar_one()

    def test_segments_are_merged_when_the_worker_asks(self, sqlite):
        """The index merges only when asked (migration 0016: not inside the indexing's
        transactions), once a level holds 16 segments; all at once unasked only at 32
        (0014). Twenty events indexed one a transaction leave twenty segments; merging,
        asked step by step until it says nothing is left, takes them into a few; every
        event is still found."""
        with sqlite.engine.connect() as conn:
            assert dict(conn.execute(sa.text(
                "SELECT k, v FROM events_search_config "
                "WHERE k IN ('automerge', 'usermerge', 'crisismerge')")).all()
            ) == {"automerge": 0, "usermerge": 16, "crisismerge": 32}
        made = [accept(sqlite, Result(), body=b'{"x": "piece %d"}' % i).event_id
                for i in range(20)]
        assert [sqlite.index_search(1) for _ in range(20)] == [1] * 20
        assert self.segments(sqlite) == 20
        steps = 0
        while sqlite.merge_search(2):
            steps += 1
            assert steps < 100, "merging never ends"
        assert steps >= 1
        assert self.segments(sqlite) < 16
        assert sqlite.merge_search(1000) is False
        assert self.indexed(sqlite, "piece") == 20
        assert ids(sqlite, text="piece") == made[::-1]

    def test_purged_events_leave_the_index(self, sqlite):
        """A purged event is no longer found, nor its text in the index."""
        accept(sqlite, Result(), body=b'{"x": "gone soon"}')
        assert sqlite.index_search(10) == 1
        assert ids(sqlite, text="gone soon") != []
        assert sqlite.purge(NOW + 1) == 1
        assert ids(sqlite, text="gone soon") == []
        assert self.indexed(sqlite, "gone") == 0

    def test_ids_used_again_after_a_purge_are_indexed(self, sqlite):
        """SQLite gives the ids of the newest events, once purged, to new ones: those are
        indexed, not taken for indexed already."""
        old = [accept(sqlite, Result(), body=b'{"x": "old %d"}' % i).event_id for i in range(3)]
        assert sqlite.index_search(10) == 3
        assert sqlite.purge(NOW + 1) == 3
        again = accept(sqlite, Result(), body=b'{"x": "new one"}', now=NOW + 5).event_id
        assert again == old[0]  # the very id, used again
        assert ids(sqlite, text="new one") == [again]
        assert sqlite.index_search(10) == 1
        assert self.indexed(sqlite, "new one") == 1 and self.indexed(sqlite, "old") == 0
        assert ids(sqlite, text="new one") == [again] and ids(sqlite, text="old") == []

    def test_a_duplicate_rolled_back_inside_the_intake_leaves_the_mark(self, sqlite):
        """The intake deletes an event whose deliveries all were duplicates, in its own
        transaction: nothing indexed changes, and the next event is indexed."""
        first = accept(sqlite, helpers.planned("k1"), body=b'{"x": "first"}').event_id
        assert sqlite.index_search(10) == 1
        assert accept(sqlite, helpers.planned("k1"), body=b'{"x": "again"}').event_id == first
        accept(sqlite, helpers.planned("k2"), body=b'{"x": "second"}')
        assert sqlite.index_search(10) == 1
        assert self.indexed(sqlite, "first") == self.indexed(sqlite, "second") == 1
        assert self.indexed(sqlite, "again") == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
class TestPostgresIndex:
    """The worker copies events' text into events_search after their commit (migration 0015,
    PostgresStore.index_search); the mark passes no id an open transaction may still commit."""

    @staticmethod
    def indexed(store) -> list[int]:
        with store.engine.connect() as conn:
            return conn.execute(sa.text("SELECT id FROM events_search ORDER BY id")).scalars().all()

    @staticmethod
    def mark(store) -> int:
        with store.engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT value FROM instance WHERE key = 'search_indexed'")).scalar_one())

    def test_indexed_in_batches_and_found_with_the_unindexed_ones(self, store):
        """Five events indexed two at a time, the mark after the last one indexed; a search
        finds indexed and unindexed alike, and pages newest first from both."""
        made = [accept(store, Result(), body=b'{"x": "Needle %d"}' % i).event_id
                for i in range(5)]
        assert self.indexed(store) == [] and self.mark(store) == 0
        assert ids(store, text="needle") == made[::-1]
        assert [store.index_search(2), store.index_search(2)] == [2, 2]
        assert self.indexed(store) == made[:4] and self.mark(store) == made[3]
        assert ids(store, text="needle") == made[::-1]
        assert ids(store, text="needle", limit=2) == [made[4], made[3]]  # one of each
        assert ids(store, text="needle", limit=2, before=made[4]) == [made[3], made[2]]
        assert [store.index_search(2), store.index_search(2)] == [1, 0]
        assert self.indexed(store) == made and self.mark(store) == made[4]
        assert ids(store, text="NEEDLE 4") == [made[4]]

    def test_only_new_events_are_indexed(self, store):
        """A second round indexes the events stored since the first, and nothing twice."""
        first = accept(store, Result(), body=b'{"x": "first"}').event_id
        assert store.index_search(100) == 1
        second = accept(store, Result(), body=b'{"x": "second"}').event_id
        assert store.index_search(100) == 1
        assert store.index_search(100) == 0
        assert self.indexed(store) == [first, second] and self.mark(store) == second
        assert ids(store, text="second") == [second]

    def test_an_idle_pass_writes_nothing(self, store):
        """With nothing new, the marks stay as they are, not written again (an idle worker
        runs a pass a second); with something new they move."""
        def versions() -> list[str]:  # a row's xmin changes with every write of it
            with store.engine.connect() as conn:
                return conn.execute(sa.text(
                    "SELECT xmin::text FROM instance WHERE key LIKE 'search_%' "
                    "ORDER BY key")).scalars().all()

        accept(store, Result(), body=b'{"x": "first"}')
        store.index_search(100)
        store.index_search(100)  # the settling mark catches up with the first pass's
        before = versions()
        assert store.index_search(100) == 0
        assert versions() == before
        accept(store, Result(), body=b'{"x": "second"}')
        assert store.index_search(100) == 1
        assert versions() != before

    def test_an_insert_still_open_holds_the_mark_back(self, store):
        """An event whose transaction took its id before a later event committed, but
        commits after: indexed once it commits, and found all along."""
        writer = store.engine.connect()
        try:
            writer.execute(sa.text(
                "INSERT INTO events (mapping, received_at, status, body, headers, query) "
                "VALUES ('leads', 1.0, 'accepted', 'slow needle', '{}', '{}')"))
            later = accept(store, Result(), body=b'{"x": "quick needle"}').event_id
            store.index_search(100)
            assert self.mark(store) < later - 1  # not past the open insert's id
            assert ids(store, text="needle") == [later]
            writer.commit()
        finally:
            writer.close()
        assert store.index_search(100) >= 1
        assert self.indexed(store) == [later - 1, later] and self.mark(store) == later
        assert ids(store, text="needle") == [later, later - 1]
        assert ids(store, text="slow") == [later - 1]

    def test_purged_events_leave_the_index(self, store):
        """A purged event's text goes with it: its row in events_search is deleted too."""
        gone = accept(store, Result(), body=b'{"x": "gone soon"}').event_id
        kept = accept(store, Result(), body=b'{"x": "kept"}', now=NOW + 5).event_id
        assert store.index_search(10) == 2
        assert self.indexed(store) == [gone, kept]
        assert store.purge(NOW + 1) == 1
        assert self.indexed(store) == [kept]
        assert ids(store, text="gone soon") == [] and ids(store, text="kept") == [kept]
        assert ids(store, text='"x"') == [kept]


@searched
def test_text_found_in_every_body_pages_newest_first(any_store):
    """A text every event holds: the newest page, then the next one after it."""
    made = [accept(any_store, one(f"9198000000{i:02d}"), body=b'{"site": "example.com"}')
            .event_id for i in range(7)]
    newest = list(reversed(made))
    assert ids(any_store, text="example.com", limit=3) == newest[:3]
    assert ids(any_store, text="example.com", limit=3, before=newest[2]) == newest[3:6]
    assert ids(any_store, text="example.com", limit=3, status="pending") == newest[:3]
