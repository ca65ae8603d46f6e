"""A relay made of real processes on 127.0.0.1, for tests that break things on purpose:
the Engati sandbox, gunicorn web processes and `relay worker`s, each of which can be killed
and started again, on SQLite or PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tests.support.live import Process, Relay, answers, free_port, wait_for

MAPPING = """
id: body.id
phone: body.phone
attributes:
  marker: body.id
flows: [{flow_key: RELIABLE}]
"""


class Cluster:
    def __init__(self, root: Path, database: str, *, web_processes: int = 1,
                 mapping: str = MAPPING, **env: str):
        self.root = root
        self.database = database
        self.web_processes = web_processes
        (root / "mappings").mkdir(exist_ok=True)
        (root / "mappings" / "hooks.yaml").write_text(mapping)
        self.sandbox_port, self.web_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.web_port}"
        self.engati = f"http://127.0.0.1:{self.sandbox_port}"
        self.env = {
            "DATABASE_URL": database,
            "RELAY_MAPPINGS": str(root / "mappings"),
            "ENGATI_BASE_URL": self.engati,
            "ENGATI_CUSTOMER_ID": "123456", "ENGATI_BOT_KEY": "0a1b2c3d4e5f6a7b",
            "ENGATI_API_KEY": "reliability-api-key",
            "RELAY_POLL_INTERVAL": "0.05", "RELAY_RETRY_BASE": "0.2", "RELAY_RETRY_CAP": "1",
            "RELAY_LEASE": "3", "RELAY_SHUTDOWN_GRACE": "2",
            "RELAY_UNVERIFIED_LIMIT": "1000000",  # the test mappings verify nothing
            **env,
        }
        self.sandbox: Process | None = None
        self.web: Process | None = None
        self.workers: list[Process] = []
        self._logs = Counter[str]()
        upgrade = Relay(["db", "upgrade"], self.env, self._log("upgrade"))
        upgrade.process.wait(60)
        assert upgrade.stop() == 0, upgrade.output()

    def _log(self, name: str) -> Path:
        self._logs[name] += 1
        return self.root / f"{name}{self._logs[name]}.log"

    # --- processes ---------------------------------------------------------------------------

    def start_sandbox(self) -> None:
        self.sandbox = Relay(["sandbox", "--port", str(self.sandbox_port)], self.env,
                             self._log("sandbox"))
        wait_for(lambda: answers(f"{self.engati}/_sandbox/calls"), what="the sandbox")

    def stop_sandbox(self) -> None:
        assert self.sandbox is not None
        self.sandbox.stop()
        self.sandbox = None

    def start_web(self) -> None:
        self.web = Process(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.web_port}",
             "--workers", str(self.web_processes), "--worker-class", "relay.web_server.Worker",
             "--threads", "8", "relay.app:create_app()"], self.env, self._log("web"))
        wait_for(lambda: answers(f"{self.base}/healthz"), what="gunicorn")

    def kill_web(self) -> None:
        """kill -9 the gunicorn master and every web process."""
        assert self.web is not None
        os.killpg(self.web.process.pid, signal.SIGKILL)
        self.web.stop()
        self.web = None

    def start_worker(self, **env: str) -> Process:
        worker = Relay(["worker"], {**self.env, **env}, self._log("worker"))
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: Process) -> None:
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.stop()
        self.workers.remove(worker)

    def start(self, workers: int = 1) -> Cluster:
        self.start_sandbox()
        self.start_web()
        for _ in range(workers):
            self.start_worker()
        return self

    def stop(self) -> dict[str, int]:
        """Stop everything with SIGTERM; the exit codes, by process."""
        codes = {}
        for name, process in [("web", self.web), ("sandbox", self.sandbox),
                              *((f"worker{i}", w) for i, w in enumerate(self.workers))]:
            if process is not None:
                codes[name] = process.stop()
        return codes

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("*.log")))

    # --- traffic -----------------------------------------------------------------------------

    @staticmethod
    def markers(count: int) -> list[str]:
        return [uuid.uuid4().hex for _ in range(count)]

    def post(self, markers: list[str], *, retry: bool = False, threads: int = 16,
             deadline: float = 60) -> dict[str, int]:
        """Post one webhook per marker; the last HTTP status of each (0: no answer).

        With `retry`, a post that got no answer or a 5xx is sent again, as senders do,
        until it gets an answer below 500 or `deadline` seconds pass.
        """
        def send(marker: str) -> int:
            body = {"id": marker, "phone": "+919812345678"}
            status = 0
            stop_at = time.monotonic() + deadline
            while True:
                try:
                    status = client.post(f"{self.base}/hooks/hooks", json=body).status_code
                except httpx.HTTPError:
                    status = 0
                if not retry or 0 < status < 500 or time.monotonic() > stop_at:
                    return status
                time.sleep(0.2)

        with httpx.Client(timeout=10) as client, ThreadPoolExecutor(threads) as pool:
            return dict(zip(markers, pool.map(send, markers), strict=True))

    def post_while(self, busy: Any, batch: int = 8, limit: int = 2000) -> dict[str, int]:
        """Keep posting new webhooks, `batch` at a time, while `busy()` is true."""
        statuses: dict[str, int] = {}
        while busy() and len(statuses) < limit:
            statuses.update(self.post(self.markers(batch), threads=batch))
        return statuses

    def steer(self, path: str, body: Any) -> None:
        httpx.post(f"{self.engati}/_sandbox/{path}", json=body, timeout=5).raise_for_status()

    def calls(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.engati}/_sandbox/calls", timeout=30).json()

    def delivered(self, markers: list[str]) -> Counter[str]:
        """How many times Engati accepted each of `markers`."""
        wanted = set(markers)
        return Counter(c["json"]["marker"] for c in self.calls()
                       if c["status"] == 200 and (c["json"] or {}).get("marker") in wanted)

    def wait_delivered(self, markers: list[str], timeout: float = 90) -> Counter[str]:
        """Wait until each marker reached Engati and nothing is left to deliver (so that a
        repeat still to come is counted too); Engati's acceptances per marker."""
        def done() -> bool:
            settled = self.query(
                "SELECT count(*) FROM deliveries WHERE status = 'pending'")[0][0] == 0
            return settled and len(self.delivered(markers)) == len(set(markers))

        wait_for(done, timeout=timeout, what=f"{len(markers)} deliveries")
        return self.delivered(markers)

    def query(self, sql: str) -> Any:
        engine = sa.create_engine(self.database)
        try:
            with engine.connect() as conn:
                return conn.exec_driver_sql(sql).all()
        finally:
            engine.dispose()


def report(scenario: str, backend: str, **figures: Any) -> None:
    """Record a scenario's figures (docs/reliability.md) where RELAY_FIGURES says."""
    line = json.dumps({"scenario": scenario, "backend": backend, **figures})
    print(line)
    if path := os.environ.get("RELAY_FIGURES"):
        with open(path, "a") as file:
            file.write(line + "\n")
