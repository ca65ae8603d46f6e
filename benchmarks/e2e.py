"""End to end, side by side: bare Flask, a naive relay, Node-RED and the relay, under the same
load.

    .venv/bin/python benchmarks/e2e.py [--webhooks 5000] [--senders 32] [--rounds 1]
                                       [--database URL] [--systems bare,naive,node-red,relay]

wrk (Debian's package) posts `--webhooks` signed Typeform webhooks (the 2 KB example, each
with its own event id and email) from `--senders` connections, a new connection per webhook
as senders open them. The references run under gunicorn with `relay serve`'s process and
thread counts (2 workers x 8 threads, on gunicorn's gthread worker); the relay runs as
`relay serve`, with its one `relay worker` (RELAY_CONCURRENCY at its default), on SQLite in
a temporary folder unless `--database` names another. Node-RED (node_red.py: installed from
npm into benchmarks/.node-red/ on first use) runs an http in -> function -> http request flow
that checks the signature and answers after Engati, as the naive relay does; it is one Node.js
process, as `node-red` runs. Engati is the asyncio stand-in, answering at once.
Everything runs on 127.0.0.1.
With `--rounds N` the systems take turns N times, each round with new webhooks, and the
median round of each is reported: this machine's speed drifts by 20% from minute to minute.

Printed per system: webhooks answered a second; deliveries a second from the first post to
Engati's last call; missing and repeated deliveries; how long after the last 2xx the last
delivery came; server CPU per webhook (web and worker processes, not wrk or the stand-in);
peak RSS per web process and of the worker; wrk's own CPU, to show it is not the bottleneck;
each system's end-to-end rate (deliveries a second; bare Flask's answers, as it delivers
nothing) as a ratio to the naive relay's and to the relay's.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import node_red
import sqlalchemy as sa
from harness import (
    HERE,
    cpu_seconds,
    family,
    free_port,
    peak_rss_mb,
    server_backends,
    start_standin,
    stats,
    stop,
    wait_until,
)

ROOT = HERE.parent
SECRET = "bench-secret"
EXAMPLE = ROOT / "mappings" / "examples" / "typeform-standard.json"


@dataclass
class Figures:
    name: str
    answered_per_s: float = 0.0
    delivered_per_s: float = 0.0
    missing: int | None = None
    repeats: int | None = None
    lag_s: float | None = None
    web_cpu_ms: float = 0.0
    worker_cpu_ms: float = 0.0
    server_cpu_ms: float | None = None  # PostgreSQL's backends for the relay's database
    web_rss_mb: list[float] = field(default_factory=list)
    worker_rss_mb: float | None = None
    wrk_cpu_share: float = 0.0
    failed: int = 0


def build_requests(path: Path, count: int, prefix: str = "bench") -> int:
    """`count` unique signed webhooks, one per line for replay.lua; the body's size."""
    example = json.loads(EXAMPLE.read_text())
    with path.open("w") as out:
        for i in range(count):
            example["event_id"] = example["form_response"]["token"] = f"{prefix}{i:07d}"
            for answer in example["form_response"]["answers"]:
                if answer["type"] == "email":
                    answer["email"] = f"{prefix}{i}@example.com"
            body = json.dumps(example, indent=2).replace("\n", "")  # one line, as on disk
            digest = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest()
            out.write(f"sha256={base64.b64encode(digest).decode()}\t{body}\n")
    return len(body)


def gunicorn(app: str, port: int, env: dict[str, str], log: Path,
             chdir: Path | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
               "2", "--worker-class", "gthread", "--threads", "8"]
    if chdir:
        command += ["--chdir", str(chdir)]
    return subprocess.Popen([*command, app], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)


def warm_up(port: int, path: str, run_name: str) -> None:
    """A few requests so that every web process has imported and connected what it needs;
    their ids are the run's own, so that rounds on one --database are not duplicates."""
    body = json.loads(EXAMPLE.read_text())
    for i in range(40):
        body["event_id"] = f"warm-{run_name}-{i}"
        raw = json.dumps(body).encode()
        signature = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest())
        httpx.post(f"http://127.0.0.1:{port}{path}", content=raw, timeout=10, headers={
            "Content-Type": "application/json",
            "Typeform-Signature": f"sha256={signature.decode()}"}).raise_for_status()


def load(port: int, path: str, requests: Path, count: int, senders: int,
         folder: Path) -> tuple[float, float, int, float]:
    """Run wrk until `count` answers: (start, end, non-2xx answers, wrk's CPU seconds)."""
    done = folder / "wrk.done"
    done.unlink(missing_ok=True)
    env = {**os.environ, "BENCH_REQUESTS": str(requests), "BENCH_COUNT": str(count),
           "BENCH_PATH": path, "BENCH_DONE": str(done)}
    before = os.times()
    start = time.time()
    wrk = subprocess.Popen(["wrk", "-t1", f"-c{senders}", "-d300s", "--timeout", "30s", "-s",
                            str(HERE / "replay.lua"), f"http://127.0.0.1:{port}"], env=env,
                           stdout=subprocess.DEVNULL)
    wait_until(done.exists, "wrk", timeout=300, every=0.002)
    end = time.time()
    wrk.send_signal(signal.SIGINT)
    wrk.wait(30)
    after = os.times()
    wrk_cpu = (after.children_user - before.children_user
               + after.children_system - before.children_system)
    _, failed = (int(n) for n in done.read_text().split())
    return start, end, failed, wrk_cpu


def run(name: str, args: argparse.Namespace, folder: Path, requests: Path,
        standin_port: int) -> Figures:
    figures = Figures(name)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    engati = f"http://127.0.0.1:{standin_port}"
    env = {**os.environ, "ENGATI_URL": f"{engati}/bot-api/v2.0/customer/1/bot/b/flow/F"}
    path, worker, database = "/hooks/bench", 0, None
    if name == "relay":
        database = args.database or f"sqlite:///{folder}/relay.db"
        mappings = folder / "mappings"
        mappings.mkdir(exist_ok=True)
        shutil.copy(ROOT / "mappings" / "typeform-leads.yaml", mappings)
        path = "/hooks/typeform-leads"
        env.update(DATABASE_URL=database, RELAY_MAPPINGS=str(mappings), TYPEFORM_SECRET=SECRET,
                   ENGATI_BASE_URL=engati, ENGATI_CUSTOMER_ID="1", ENGATI_BOT_KEY="b",
                   ENGATI_API_KEY="k")
        # As users run it: `relay serve` starts gunicorn (2 x 8) and one `relay worker`.
        web = subprocess.Popen([sys.executable, "-m", "relay", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL,
                               stderr=(folder / "relay.log").open("wb"))
    elif name == "node-red":
        path = node_red.PATH
        web = node_red.start(port, env["ENGATI_URL"], SECRET, folder / "node-red.log")
    else:
        web = gunicorn(f"references:{name}()", port, env, folder / f"{name}.log", chdir=HERE)
    try:
        processes = {"relay": 5, "node-red": 1}.get(name, 3)
        wait_until(lambda: len(family(web.pid)) == processes, f"{name}'s processes")
        if name == "relay":  # serve, gunicorn and its two workers, the delivery worker
            worker = next(pid for pid in family(web.pid) if b"relay\x00worker" in _cmdline(pid))
        if name == "node-red":  # it listens before its flow has started
            wait_until(lambda: _refuses_forged(port, path), "Node-RED's flow to refuse a forgery")
        else:
            wait_until(lambda: _accepts(port), f"{name} to listen")
        stats(standin_port, clear=True)
        warm_up(port, path, folder.name)
        if name != "bare":
            wait_until(lambda: stats(standin_port)["calls"] >= 40, "the warm-up deliveries")
        stats(standin_port, clear=True)
        baseline = _query(database, "SELECT max(id) FROM events") if database else 0
        server = web.pid if name != "relay" else next(
            pid for pid in family(web.pid)[1:] if pid != worker and b"gunicorn" in _cmdline(pid))
        webs = family(server)
        workers = [worker] if worker else []
        web_before, worker_before = cpu_seconds(webs), cpu_seconds(workers)
        postgres = database is not None and database.startswith("postgresql")
        backends = server_backends(database) if postgres else []
        server_before = cpu_seconds(backends)
        start, end, figures.failed, wrk_cpu = load(port, path, requests, args.webhooks,
                                                   args.senders, folder)
        figures.answered_per_s = args.webhooks / (end - start)
        figures.wrk_cpu_share = wrk_cpu / (end - start)
        if name != "bare":
            expected = _accepted(database, baseline) if database else args.webhooks
            wait_until(lambda: stats(standin_port, summary=True)["distinct"] >= expected,
                       f"{expected} deliveries", timeout=120)
            if worker:  # let a repeat, if there is one, arrive before counting
                time.sleep(1.0)
            seen = stats(standin_port)
            figures.delivered_per_s = len(seen["markers"]) / (seen["last"] - start)
            figures.repeats = sum(n - 1 for n in seen["markers"].values())
            if database:
                figures.lag_s = seen["last"] - _last_received(database)
                figures.missing = _accepted(database, baseline) - len(seen["markers"])
            handled = len(seen["markers"])
        else:
            handled = args.webhooks
        figures.web_cpu_ms = (cpu_seconds(webs) - web_before) / handled * 1000
        figures.worker_cpu_ms = (cpu_seconds(workers) - worker_before) / handled * 1000
        if postgres:  # those that connected meanwhile count whole (a pool's new connection)
            new = [pid for pid in server_backends(database) if pid not in backends]
            figures.server_cpu_ms = (cpu_seconds(backends) - server_before
                                     + cpu_seconds(new)) / handled * 1000
        # gunicorn's workers, not their master; Node-RED is one process
        figures.web_rss_mb = [peak_rss_mb(pid) for pid in (webs if name == "node-red" else
                                                           webs[1:])]
        if worker:
            figures.worker_rss_mb = peak_rss_mb(worker)
    finally:
        if name == "node-red":
            node_red.stop(web)
        else:
            stop(web)
    return figures


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _refuses_forged(port: int, path: str) -> bool:
    """Whether a webhook with a wrong signature is answered 401 (the flow is running)."""
    try:
        return httpx.post(f"http://127.0.0.1:{port}{path}", content=b"{}", timeout=5, headers={
            "Typeform-Signature": "sha256=forged"}).status_code == 401
    except httpx.HTTPError:
        return False


def _query(database: str, sql: str):
    engine = sa.create_engine(database)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def _accepted(database: str, after: int) -> int:
    return _query(database,
                  f"SELECT count(*) FROM events WHERE status = 'accepted' AND id > {after}")


def _last_received(database: str) -> float:
    return _query(database, "SELECT max(received_at) FROM events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--database", help="the relay's DATABASE_URL (default: SQLite)")
    parser.add_argument("--systems", default="bare,naive,node-red,relay")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the systems in turn this many times; report each one's median")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    if "node-red" in args.systems.split(","):
        node_red.install()  # before the clock starts; a clear message if npm is missing
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        standin_port = free_port()
        standin = start_standin(standin_port, count_by="email")
        runs: dict[str, list[Figures]] = {system: [] for system in args.systems.split(",")}
        try:
            for turn in range(args.rounds):  # in turn, so that a slow spell hits them all
                requests = folder / f"requests{turn}.txt"
                size = build_requests(requests, args.webhooks + 2 * args.senders, f"r{turn}-")
                for system, figures in runs.items():
                    figures.append(run(system, args, folder / f"{system}{turn}", requests,
                                       standin_port))
        finally:
            stop(standin)
    print(f"{args.webhooks} webhooks of {size} bytes, {args.senders} senders, "
          f"a new connection each; {os.cpu_count()} cores; "
          f"{'the median of ' + str(args.rounds) + ' rounds' if args.rounds > 1 else 'one round'}")
    report([sorted(figures, key=lambda f: f.answered_per_s)[len(figures) // 2]
            for figures in runs.values()])
    if args.rounds > 1 and "naive" in runs:
        # The machine's speed drifts between rounds: the ratio within each round, paired,
        # says more than the ratio of the medians.
        for system, figures in runs.items():
            if system != "naive":
                ratios = sorted(_rate(f) / _rate(n) for f, n in zip(figures, runs["naive"],
                                                                     strict=True))
                print(f"{system} / naive, round by round: "
                      f"{' '.join(f'{r:.2f}x' for r in ratios)} "
                      f"(median {ratios[len(ratios) // 2]:.2f}x)")


def report(results: list[Figures]) -> None:
    by_name = {f.name: f for f in results}
    print(f"{'system':<8} {'answered/s':>10} {'delivered/s':>11} {'vs naive':>8} {'vs relay':>8} "
          f"{'missing':>7} {'repeats':>7} {'lag s':>6} {'CPU ms':>13} {'web RSS MB':>11} "
          f"{'worker MB':>9} {'wrk CPU':>7} {'non-2xx':>7} {'PG CPU ms':>9}")
    for f in results:
        ratios = [_ratio(f, by_name.get(other)) for other in ("naive", "relay")]
        print(f"{f.name:<8} {f.answered_per_s:>10.0f} {f.delivered_per_s or 0:>11.0f} "
              f"{ratios[0]:>8} {ratios[1]:>8} {_opt(f.missing):>7} {_opt(f.repeats):>7} "
              f"{_opt(f.lag_s, '.2f'):>6} "
              f"{f.web_cpu_ms + f.worker_cpu_ms:>5.2f} ({f.web_cpu_ms:.2f}+{f.worker_cpu_ms:.2f}) "
              f"{'/'.join(f'{r:.0f}' for r in f.web_rss_mb):>11} "
              f"{_opt(f.worker_rss_mb, '.0f'):>9} {f.wrk_cpu_share:>7.0%} {f.failed:>7} "
              f"{_opt(f.server_cpu_ms, '.2f'):>9}")
    if any(f.server_cpu_ms is not None for f in results):
        print("PG CPU ms: the PostgreSQL server's processes for the relay's database, a "
              "webhook (not in CPU ms)")
    if "bare" in by_name:
        print("bare Flask delivers nothing: its ratios are of webhooks answered, the ceiling")


def _rate(f: Figures) -> float:
    """End to end: deliveries a second; answers for bare Flask, which delivers nothing."""
    return f.delivered_per_s or f.answered_per_s


def _ratio(f: Figures, to: Figures | None) -> str:
    return f"{_rate(f) / _rate(to):.2f}x" if to and _rate(to) else "-"


def _opt(value, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
