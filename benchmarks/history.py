"""Does the cost of accepting and delivering grow with history? Prints both figures.

    .venv/bin/python benchmarks/history.py [--rows 1000000] [--backends sqlite,postgresql]
                                           [--worker] [--senders 1]

For each backend: accept and deliver speed on an empty database, then again with `--rows`
delivered events (each with its delivery and its attempt) stored. PostgreSQL uses the server
at RELAY_TEST_POSTGRES (default postgresql+psycopg://postgres@127.0.0.1:5432/test), in a
database of its own created afresh, named after that one's (test_bench): runs given different
databases never drop each other's. With `--senders N`, N threads accept at once, as a web
process's requests do: their webhooks share commits (the group commit), where one sender
waits for a commit of its own per webhook.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

from relay.mapping import Delivery, Result
from relay.model import Attempt, Received
from relay.store import Store, open_store

ROOT = Path(__file__).resolve().parent.parent
BODY = (ROOT / "mappings" / "examples" / "typeform-vip.json").read_bytes()
HEADERS = {"content-type": "application/json", "user-agent": "Typeform Webhooks"}
SAMPLE = 2000


def accept_rate(store: Store, senders: int) -> float:
    def send(count: int) -> None:
        for _ in range(count):
            delivery = Delivery("4F1E0C2B9A7D4E3F8A6B5C4D3E2F1A0B", "whatsapp", "919812345678",
                                {"name": "Asha", "category": "VIP"}, uuid.uuid4().hex)
            store.accept(Received("typeform-leads", BODY, HEADERS, {}, Result((delivery,)),
                                  time.time()))

    start = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, [SAMPLE // senders] * senders))
    return SAMPLE // senders * senders / (time.perf_counter() - start)


def deliver_rate(store: Store) -> float:
    start = time.perf_counter()
    done = 0
    while done < SAMPLE:
        claimed = store.claim("bench", 32, time.time(), 60)
        if not claimed:
            break
        for c in claimed:
            store.record_many([Attempt(c.id, time.time(), 120.0, "delivered", 200, 1000)],
                              "bench", time.time())[0]
        done += len(claimed)
    return done / (time.perf_counter() - start)


def measure(store: Store, deliverer: Store, senders: int) -> tuple[float, float]:
    """Best of five rounds of SAMPLE accepts, then SAMPLE deliveries (commits vary a lot)."""
    accepts, delivers = [], []
    for _ in range(5):
        accepts.append(accept_rate(store, senders))
        delivers.append(deliver_rate(deliverer))
    return max(accepts), max(delivers)


def fill(store: Store, rows: int) -> None:
    """`rows` delivered events with one delivery and one attempt each, in bulk."""
    engine = store.engine
    with engine.begin() as conn:
        first = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM events").scalar() + 1
    chunk = 50_000
    attributes = json.dumps({"name": "Asha", "category": "VIP"})
    then = time.time() - 86400
    for start in range(first, first + rows, chunk):
        ids = range(start, min(start + chunk, first + rows))
        events = [(i, "typeform-leads", then, "accepted", BODY, json.dumps(HEADERS), "{}")
                  for i in ids]
        deliveries = [(i, i, "typeform-leads", f"history-{i}", "4F1E0C2B9A7D4E3F8A6B5C4D3E2F1A0B",
                       "whatsapp", "919812345678", attributes, "delivered", 1, then, then, then)
                      for i in ids]
        attempts = [(i, i, then, 120.0, 200, 1000, "delivered", "bench") for i in ids]
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:  # the store's connections leave transactions to the caller
                cursor.execute("BEGIN IMMEDIATE")
            marks = {n: ", ".join(["%s" if engine.dialect.name == "postgresql" else "?"] * n)
                     for n in (7, 13, 8)}
            cursor.executemany(
                "INSERT INTO events (id, mapping, received_at, status, body, headers, query) "
                f"VALUES ({marks[7]})", events)
            cursor.executemany(
                "INSERT INTO deliveries (id, event_id, mapping, dedup_key, flow_key, channel, "
                "phone, attributes, status, attempts, next_at, created_at, updated_at) "
                f"VALUES ({marks[13]})", deliveries)
            cursor.executemany(
                "INSERT INTO attempts (id, delivery_id, started_at, duration_ms, http_status, "
                f"engati_code, outcome, worker) VALUES ({marks[8]})", attempts)
            if sqlite:
                cursor.execute("COMMIT")
            else:
                raw.commit()
        finally:
            raw.close()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for table in ("events", "deliveries", "attempts"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))")
        conn.exec_driver_sql("ANALYZE")


def database(backend: str, folder: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder}/history.db"
    url = sa.engine.make_url(os.environ.get(
        "RELAY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    name = f"{url.database}_bench"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--worker", action="store_true",
                        help="deliver through a store opened as `relay worker` opens it, whose "
                             "commits do not wait for the disk")
    parser.add_argument("--senders", type=int, default=1,
                        help="threads accepting at once (a web process has 8)")
    args = parser.parse_args()
    print(f"{'backend':<11} {'history':>9} {'accept/s':>9} {'deliver/s':>10}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends.split(","):
            url = database(backend, folder)
            store = open_store(url)
            store.upgrade()
            deliverer = open_store(url, worker=True) if args.worker else store
            empty = measure(store, deliverer, args.senders)
            print(f"{backend:<11} {0:>9,} {empty[0]:>9.0f} {empty[1]:>10.0f}", flush=True)
            started = time.perf_counter()
            fill(store, args.rows)
            filled = time.perf_counter() - started
            full = measure(store, deliverer, args.senders)
            print(f"{backend:<11} {args.rows:>9,} {full[0]:>9.0f} {full[1]:>10.0f}"
                  f"   (history written in {filled:.0f}s)", flush=True)
            results[backend] = (full[0] / empty[0], full[1] / empty[1])
            deliverer.dispose()
            store.dispose()
    for backend, (accept, deliver) in results.items():
        print(f"{backend}: with history, accept at {accept:.0%} and deliver at {deliver:.0%} "
              "of the empty-database speed")


if __name__ == "__main__":
    main()
