"""How fast the events list searches a big history: phone and text in the body. Prints both.

    .venv/bin/python benchmarks/search.py [--rows 1000000] [--backends sqlite,postgresql]

For each backend: a database filled in bulk with `--rows` events (a ~330-byte Typeform-like
body each, with its own email, name, form token and phone, and one delivery), then the
latency of `Store.events` (the console's and the API's query, a page of 51) for each search,
the median of 7 runs after a warm-up run, and how many rows it found. SQLite fills through
its triggers (the FTS5 index grows as webhooks would grow it); PostgreSQL by COPY, with its
search table `events_search` filled and its trigram index built afterwards (as a restore
would, and as migration 0015 does), the time printed. PostgreSQL uses the server at
RELAY_TEST_POSTGRES (default postgresql+psycopg://postgres@127.0.0.1:5432/test), in a
database of its own, named after that one's with `_search_bench`, created afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import tempfile
import time
from typing import Any

import sqlalchemy as sa

from relay.store import Store, open_store
from relay.store.search import phone_terms

HEADERS = json.dumps({"content-type": "application/json"})
NAMES = ("Asha", "Ravi", "Meera", "Kiran", "Arjun", "Divya", "Sanjay", "Priya", "Vikram", "Anita")
CHUNK = 50_000


def token(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=12))


def row(i: int, rng: random.Random, then: float) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """An event and its delivery: every value distinct per event, as in real traffic."""
    name = f"{rng.choice(NAMES)} {token(rng)[:6].capitalize()}"
    phone = f"9198{i:08d}"
    body = json.dumps({"event_id": f"ev-{i}", "event_type": "form_response", "form_response": {
        "form_id": "lT4Z3j", "token": token(rng), "submitted_at": "2026-11-30T10:00:00Z",
        "answers": [{"type": "text", "text": name, "field": {"ref": "name"}},
                    {"type": "email", "email": f"user{i}@example.com"},
                    {"type": "phone_number", "phone_number": f"+{phone}"}]}}).encode()
    event = (i, "typeform-leads", then + i * 0.001, "accepted", body, HEADERS, "{}")
    delivery = (i, i, "typeform-leads", f"k-{i}", "4F1E0C2B9A7D4E3F8A6B5C4D3E2F1A0B",
                "whatsapp", phone, "{}", "delivered", 1, then, then, then)
    return event, delivery


EVENT_COLUMNS = "id, mapping, received_at, status, body, headers, query"
DELIVERY_COLUMNS = ("id, event_id, mapping, dedup_key, flow_key, channel, phone, attributes, "
                    "status, attempts, next_at, created_at, updated_at")


def fill(store: Store, rows: int) -> dict[str, Any]:
    """`rows` events, each with its delivery; what the searches below look for."""
    rng = random.Random(14)
    engine, postgres = store.engine, store.engine.dialect.name == "postgresql"
    then = time.time() - 30 * 86400
    wanted: dict[str, Any] = {}
    started = time.perf_counter()
    if postgres:  # built after the load, as a restore would
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX events_search_body")
    for start in range(1, rows + 1, CHUNK):
        pairs = [row(i, rng, then) for i in range(start, min(start + CHUNK, rows + 1))]
        for event, _ in pairs:
            if event[0] == rows // 3:  # one event's values, to be found among all
                found = json.loads(event[4])["form_response"]
                wanted = {"email": found["answers"][1]["email"],
                          "name": found["answers"][0]["text"], "token": found["token"],
                          "phone": found["answers"][2]["phone_number"]}
        raw = engine.raw_connection()
        try:
            if postgres:
                with raw.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                    with cursor.copy(f"COPY events ({EVENT_COLUMNS}) FROM STDIN") as copy:
                        for event, _ in pairs:
                            copy.write_row(event)
                    with cursor.copy(f"COPY deliveries ({DELIVERY_COLUMNS}) FROM STDIN") as copy:
                        for _, delivery in pairs:
                            copy.write_row(delivery)
                raw.commit()
            else:
                db = raw.driver_connection
                db.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
                db.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) "  # type: ignore[union-attr]
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", [e for e, _ in pairs])
                db.executemany(f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) "  # type: ignore[union-attr]
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               [d for _, d in pairs])
                db.execute("COMMIT")  # type: ignore[union-attr]
        finally:
            raw.close()
    loaded = time.perf_counter() - started
    index = 0.0
    with engine.begin() as conn:
        if postgres:
            started = time.perf_counter()
            conn.exec_driver_sql("INSERT INTO events_search (id, body) "
                                 "SELECT id, encode(body, 'escape') FROM events")
            conn.exec_driver_sql("CREATE INDEX events_search_body ON events_search "
                                 "USING gin (body gin_trgm_ops)")
            conn.exec_driver_sql("UPDATE instance SET value = (SELECT max(id) FROM events) "
                                 "WHERE key = 'search_indexed'")
            index = time.perf_counter() - started
        conn.exec_driver_sql("ANALYZE")
    print(f"  filled {rows:,} events in {loaded:.0f} s"
          + (f"; search table and trigram index built in {index:.0f} s" if postgres
             else " (FTS5 included)"),
          flush=True)
    return wanted


def timed(store: Store, **search: Any) -> tuple[float, int]:
    """Median milliseconds of 7 runs (after one to warm up) and the rows found."""
    found = store.events(limit=51, **search)
    runs = []
    for _ in range(7):
        started = time.perf_counter()
        store.events(limit=51, **search)
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs), len(found)


def searches(wanted: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    national = wanted["phone"][3:]  # as typed in India: 0 and the ten digits
    phones, _ = phone_terms(f"0{national[:5]} {national[5:]}", ["IN"])
    return [
        (f"phone typed 0{national[:5]} {national[5:]}", {"phones": phones}),
        (f"phone digits {national[-7:]} (a scan)", {"phone": national[-7:]}),
        (f"text: email {wanted['email']}", {"text": wanted["email"]}),
        (f"text: name {wanted['name']}", {"text": wanted["name"]}),
        (f"text: form token {wanted['token']}", {"text": wanted["token"]}),
        ("text: example.com (every event)", {"text": "example.com"}),
        ("text: example.com, and mapping=typeform-leads",
         {"text": "example.com", "mapping": "typeform-leads"}),
        (f"text: email {wanted['email']}, and since=60d",
         {"text": wanted["email"], "since": time.time() - 60 * 86400}),
        ("text: nobody@nowhere.test (none)", {"text": "nobody@nowhere.test"}),
        ("no search (the first page)", {}),
    ]


def database(backend: str, folder: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder}/search.db"
    url = sa.engine.make_url(os.environ.get(
        "RELAY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    name = f"{url.database}_search_bench"  # runs given different databases share none
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def size_mb(store: Store, folder: str) -> str:
    if store.engine.dialect.name == "sqlite":
        files = [f for f in os.listdir(folder) if f.startswith("search.db")]
        return f"{sum(os.path.getsize(os.path.join(folder, f)) for f in files) / 1e6:.0f} MB"
    with store.engine.connect() as conn:
        total, index = conn.exec_driver_sql(
            "SELECT pg_database_size(current_database()), "
            "pg_relation_size('events_search') + pg_relation_size('events_search_body')").one()
    return f"{total / 1e6:.0f} MB, of which the search table and its index {index / 1e6:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends.split(","):
            store = open_store(database(backend, folder))
            store.upgrade()
            print(f"{backend}:", flush=True)
            wanted = fill(store, args.rows)
            print(f"  database: {size_mb(store, folder)}")
            print(f"  {'search':<52} {'ms':>8} {'found':>6}")
            for label, search in searches(wanted):
                ms, found = timed(store, **search)
                print(f"  {label:<52} {ms:>8.2f} {found:>6}", flush=True)
            store.dispose()


if __name__ == "__main__":
    main()
