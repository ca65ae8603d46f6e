"""Do deliveries scheduled for later slow the claiming of due ones? Prints the figures.

    .venv/bin/python benchmarks/schedule.py [--scheduled 100000] [--rounds 9]
                                            [--backends sqlite,postgresql] [--idle 4]

Two databases per backend: one with `--scheduled` pending deliveries due a day or more ahead
(schedule: delay / at), the other with as many delivered ones (tables of one size). Each
round puts 3,000 due deliveries in both, then claims and records them through the store
contract as the worker does (claims of 32, each batch's outcomes in one `record_many`),
taking the databases in turn. Prints due deliveries claimed and recorded a second and the
CPU each cost (this process's, and on PostgreSQL its server backends'), medians of
`--rounds`; and the ratios, each the median of the rounds' pairs, which share the shared
machine's spell (issue 16: at least 90%).

Then the idle worker: a real `relay worker` against the database with the scheduled
deliveries and nothing due (RELAY_POLL_INTERVAL 0.5 s), for `--idle` seconds: its CPU, and
on PostgreSQL its transactions a second (pg_stat_database); and how late it calls the
Engati stand-in for deliveries that fall due while it sleeps.

PostgreSQL uses the server at RELAY_TEST_POSTGRES (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), in two databases of its own named after
that URL's (`<name>_schedule_0`, `<name>_schedule_n`), created afresh and dropped at the end;
without a server, PostgreSQL is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from harness import cpu_seconds, free_port, start_standin, stats, stop, wait_until

from relay.mapping import Result
from relay.mapping.model import Cancellation
from relay.model import Attempt, Received
from relay.store import Store, open_store

SAMPLE = 3000  # due deliveries claimed per round
BATCH = 32  # a claim's limit: the worker's ramp step under load
ATTRIBUTES = json.dumps({"name": "Asha", "category": "VIP"})
MAPPING = "phone: body.phone\nattributes: {marker: body.marker}\nflows: [{flow_key: BENCH}]\n"


def marks(engine: sa.Engine, n: int) -> str:
    return ", ".join(["%s" if engine.dialect.name == "postgresql" else "?"] * n)


def insert(store: Store, count: int, due: float, spread: float, tag: str,
           status: str = "pending") -> None:
    """`count` events with one delivery each, due from `due` over `spread` seconds (a
    scheduled one carries its schedule's words and a cancel key, as accept writes them)."""
    engine = store.engine
    with engine.begin() as conn:
        first = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM events").scalar() + 1
    then = time.time()
    scheduled = spread > 0
    for start in range(first, first + count, 50_000):
        ids = range(start, min(start + 50_000, first + count))
        events = [(i, "bench", then, "accepted", b"{}", "{}", "{}") for i in ids]
        deliveries = [
            (i, i, "bench", f"{tag}-{i}", "BENCH", "whatsapp", "919812345678",
             json.dumps({"marker": f"{tag}-{i}"}), status, 0,
             due + spread * (i - first) / count, then, then,
             "delay 1d" if scheduled else None, f"checkout-{i}" if scheduled else None)
            for i in ids]
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:  # the store's connections leave transactions to the caller
                cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(
                "INSERT INTO events (id, mapping, received_at, status, body, headers, query) "
                f"VALUES ({marks(engine, 7)})", events)
            cursor.executemany(
                "INSERT INTO deliveries (id, event_id, mapping, dedup_key, flow_key, channel, "
                "phone, attributes, status, attempts, next_at, created_at, updated_at, "
                f"schedule, cancel_key) VALUES ({marks(engine, 15)})", deliveries)
            if sqlite:
                cursor.execute("COMMIT")
            else:
                raw.commit()
        finally:
            raw.close()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for table in ("events", "deliveries"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))")


def server_pids(store: Store) -> list[int]:
    """The PostgreSQL backends serving `store`'s connections (none for SQLite: it runs in
    this process), whose CPU the claims spend too."""
    if store.engine.dialect.name != "postgresql":
        return []
    with store.engine.connect() as conn:
        return list(conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend'").scalars())


def claim_round(store: Store, round_: int) -> tuple[float, float]:
    """Put SAMPLE due deliveries in, then claim and record them all as the worker does:
    deliveries a second, and CPU microseconds per delivery (this process's and, on
    PostgreSQL, its server backends'). CPU is the steadier figure on a shared machine."""
    insert(store, SAMPLE, time.time() - 60, 0, f"due{round_}")
    pids = server_pids(store)
    done = 0
    cpu = time.process_time() + cpu_seconds(pids)
    start = time.perf_counter()
    while True:
        claimed = store.claim("bench", BATCH, time.time(), 60)
        if not claimed:
            break
        now = time.time()
        store.record_many([Attempt(c.id, now, 120.0, "delivered", 200, 1000) for c in claimed],
                          "bench", now)
        done += len(claimed)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() + cpu_seconds(pids) - cpu
    assert done == SAMPLE, f"claimed {done} of {SAMPLE}"
    return done / elapsed, cpu / done * 1e6


def cancel_ms(store: Store, keys: list[str]) -> float:
    """Milliseconds per webhook whose `cancel:` names one of `keys` (each its own accept,
    as the web processes store one at a time when quiet)."""
    start = time.perf_counter()
    for n, key in enumerate(keys):
        cancel = Cancellation(key, ("bench",), 86400.0)
        store.accept(Received("paid", b"{}", {}, {}, Result(key=f"paid-{n}", cancels=(cancel,)),
                              time.time()))
    return (time.perf_counter() - start) / len(keys) * 1000


def analyze(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def pg_url() -> sa.URL:
    return sa.engine.make_url(os.environ.get(
        "RELAY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))


def pg_reason() -> str | None:
    """Why PostgreSQL cannot be measured here, or None."""
    try:
        engine = sa.create_engine(pg_url(), connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any failure to connect: skip it, and say why
        return f"no PostgreSQL at {pg_url().render_as_string()} ({type(exc).__name__})"
    return None


@contextmanager
def databases(backend: str, folder: str) -> Iterator[tuple[str, str]]:
    """Two fresh databases' URLs: the one kept empty of scheduled work, and the other."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/schedule-0.db", f"sqlite:///{folder}/schedule-n.db"
        return
    url = pg_url()
    names = [f"{url.database}_schedule_0", f"{url.database}_schedule_n"]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
        yield tuple(url.set(database=name).render_as_string(hide_password=False)  # type: ignore[misc]
                    for name in names)
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def explain(store: Store) -> str:
    """The claim's plan, as the database would run it now."""
    engine = store.engine
    now = time.time()
    if engine.dialect.name == "sqlite":
        from relay.store.sqlite import CLAIM
        with engine.begin() as conn:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + CLAIM,
                                        (now + 60, "bench", now, now, BATCH)).all()
        return "\n".join(f"    {row[-1]}" for row in rows)
    claim = store._claim  # type: ignore[attr-defined]  # the statement the store runs
    compiled = claim.compile(engine)
    values = {**compiled.params, "now": now, "limit": BATCH, "until": now + 60,
              "worker": "bench"}
    with engine.connect() as conn:  # EXPLAIN without ANALYZE plans the update, runs nothing
        rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), values).all()
        conn.rollback()
    return "\n".join(f"    {row[0]}" for row in rows)


def claiming(backend: str, urls: tuple[str, str], scheduled: int, rounds: int) -> float:
    stores = [open_store(url, worker=True) for url in urls]
    for store in stores:
        store.upgrade()
    started = time.perf_counter()
    insert(stores[1], scheduled, time.time() + 86400, 86400 * 30, "later")
    # The other database holds as many rows, delivered: tables of one size (and autovacuum
    # thresholds alike), so that what differs is the pending deliveries' index only.
    insert(stores[0], scheduled, time.time() - 86400, 3600, "done", status="delivered")
    print(f"{backend}: {scheduled:,} deliveries scheduled 1 to 31 days ahead (the other "
          f"database: {scheduled:,} delivered), written in "
          f"{time.perf_counter() - started:.1f}s", flush=True)
    for store in stores:
        analyze(store)
    rounds_: list[list[tuple[float, float]]] = [[], []]
    for n in range(rounds):  # in turn, the first of each pair alternating
        for which in (0, 1) if n % 2 == 0 else (1, 0):
            rounds_[which].append(claim_round(stores[which], n))
    for label, measured in (("0", rounds_[0]), (f"{scheduled:,}", rounds_[1])):
        rates = " ".join(f"{rate:,.0f}" for rate, _ in measured)
        print(f"  scheduled {label:>7}: {statistics.median(r for r, _ in measured):>7,.0f} "
              f"claimed+recorded/s, "
              f"{statistics.median(c for _, c in measured):>4.0f} us CPU each (medians; "
              f"rounds/s: {rates})")
    # Pairs taken one after the other share the machine's spell: the median of their ratios.
    speed = statistics.median(f[0] / e[0] for e, f in zip(*rounds_, strict=True))
    cost = statistics.median(e[1] / f[1] for e, f in zip(*rounds_, strict=True))
    print(f"  with {scheduled:,} scheduled: {speed:.1%} of the claim speed, "
          f"{cost:.1%} by CPU per delivery (medians of the rounds' pairs; "
          f"{'within' if min(speed, cost) >= 0.9 else 'OUTSIDE'} the 10% bound)")
    # Cancellations by key: none match in the first database, one each in the other.
    keys = [f"checkout-{i}" for i in random.Random(16).sample(range(1, scheduled + 1), 200)]
    costs = [cancel_ms(store, keys) for store in stores]
    with stores[1].engine.connect() as conn:
        cancelled = conn.exec_driver_sql(
            "SELECT count(*) FROM deliveries WHERE status = 'cancelled'").scalar()
    print(f"  a webhook with cancel: {costs[0]:.2f} ms (nothing to cancel), {costs[1]:.2f} ms "
          f"with {scheduled:,} scheduled ({cancelled} of {len(keys)} cancelled)")
    print("  the claim's plan with the scheduled deliveries:\n" + explain(stores[1]))
    for store in stores:
        store.dispose()
    return cost


def pg_transactions(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()").scalar())
    finally:
        engine.dispose()


def idle_worker(backend: str, url: str, folder: Path, seconds: float) -> None:
    """A real worker with only far-off work: its CPU (and transactions), then its lateness."""
    store = open_store(url)
    port = free_port()
    standin = start_standin(port)
    env = {**os.environ, "DATABASE_URL": url, "RELAY_MAPPINGS": str(folder / "mappings"),
           "ENGATI_BASE_URL": f"http://127.0.0.1:{port}", "ENGATI_CUSTOMER_ID": "1",
           "ENGATI_BOT_KEY": "b", "ENGATI_API_KEY": "k", "RELAY_POLL_INTERVAL": "0.5",
           "RELAY_UNVERIFIED_LIMIT": "100000000"}
    log = (folder / f"worker-{backend}.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "relay", "worker"], env=env, stderr=log)
    try:
        # Start-up (imports, the first upkeep) is not idling: one due delivery, then wait.
        insert(store, 1, time.time() - 1, 0, "warm")
        wait_until(lambda: stats(port, summary=True)["calls"] >= 1, "the worker's first call")
        time.sleep(1.0)
        pg = backend == "postgresql"
        cpu, xacts, start = cpu_seconds([worker.pid]), pg and pg_transactions(url), time.time()
        time.sleep(seconds)
        elapsed = time.time() - start
        cpu = cpu_seconds([worker.pid]) - cpu
        said = (f", {(pg_transactions(url) - xacts - 1) / elapsed:.1f} transactions/s"
                if pg else "")
        print(f"  idle worker ({backend}, poll interval 0.5 s, only scheduled work): "
              f"{cpu / elapsed:.2%} of a core{said}")
        late = []
        for k in range(3):  # due while it sleeps, at times unrelated to its polling
            stats(port, clear=True)
            due = time.time() + 0.8 + 0.37 * k
            insert(store, 1, due, 0, f"late{k}")
            wait_until(lambda: stats(port, summary=True)["calls"] >= 1, "a scheduled call",
                       timeout=10)
            late.append((stats(port, summary=True)["first"] - due) * 1000)
        print(f"  deliveries falling due while it idles reach Engati "
              f"{', '.join(f'{ms:.0f}' for ms in late)} ms after their time")
    finally:
        stop(worker, standin)
        log.close()
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheduled", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--idle", type=float, default=4.0, help="seconds (0: skip)")
    args = parser.parse_args()
    ratios = {}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "mappings").mkdir()
        (Path(folder) / "mappings" / "bench.yaml").write_text(MAPPING)
        for backend in args.backends.split(","):
            if backend == "postgresql" and (reason := pg_reason()):
                print(f"postgresql: skipped, {reason}; set RELAY_TEST_POSTGRES")
                continue
            with databases(backend, folder) as urls:
                ratios[backend] = claiming(backend, urls, args.scheduled, args.rounds)
                if args.idle:
                    idle_worker(backend, urls[1], Path(folder), args.idle)
    print("; ".join(f"{backend}: {ratio:.0%}" for backend, ratio in ratios.items()),
          "of the claim speed (by CPU) with", f"{args.scheduled:,} scheduled")


if __name__ == "__main__":
    main()
