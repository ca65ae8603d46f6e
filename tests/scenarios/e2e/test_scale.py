"""Scale-out on PostgreSQL with real processes: 2 gunicorn web processes and 3 workers.

5,000 webhooks posted concurrently, about 10% of them repeats of others: every accepted event
reaches the Engati stand-in exactly once, and all three workers share the work.
"""

from __future__ import annotations

import random
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import fresh_postgres, postgres_reason
from tests.support.live import Process, Relay, answers, free_port, wait_for

UNIQUE, REPEATS = 4500, 500
MAPPING = """
id: body.id
phone: body.phone
attributes:
  marker: body.id
flows: [{flow_key: SCALE}]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    database = fresh_postgres("relay_scale")
    root = tmp_path_factory.mktemp("scale")
    (root / "mappings").mkdir()
    (root / "mappings" / "scale.yaml").write_text(MAPPING)
    sandbox_port, web_port = free_port(), free_port()
    env = {
        "DATABASE_URL": database,
        "RELAY_MAPPINGS": str(root / "mappings"),
        "ENGATI_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
        "ENGATI_CUSTOMER_ID": "1", "ENGATI_BOT_KEY": "b", "ENGATI_API_KEY": "k",
        "RELAY_POLL_INTERVAL": "0.05",
        "RELAY_UNVERIFIED_LIMIT": "1000000",  # the mapping verifies nothing
    }
    upgrade = Relay(["db", "upgrade"], env, root / "upgrade.log")
    upgrade.process.wait(60)
    assert upgrade.stop() == 0, upgrade.output()
    processes = [
        Relay(["sandbox", "--port", str(sandbox_port)], env, root / "sandbox.log"),
        Process([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{web_port}",
                 "--workers", "2", "--worker-class", "relay.web_server.Worker", "--threads", "8",
                 "relay.app:create_app()"], env, root / "web.log"),
        *(Relay(["worker"], env, root / f"worker{i}.log") for i in range(3)),
    ]
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{sandbox_port}/_sandbox/calls"),
                 what="the sandbox")
        wait_for(lambda: answers(f"http://127.0.0.1:{web_port}/readyz"), what="gunicorn")
        yield {"web": f"http://127.0.0.1:{web_port}", "engati": f"http://127.0.0.1:{sandbox_port}",
               "database": database}
    finally:
        codes = [p.stop() for p in processes]
    assert codes == [0] * len(processes), [p.output()[-2000:] for p in processes]


def test_5000_webhooks_two_web_three_workers_exactly_once(cluster):
    """Every accepted event is delivered exactly once; repeats are answered as duplicates."""
    ids = [uuid.uuid4().hex for _ in range(UNIQUE)]
    posts = ids + random.Random(7).sample(ids, REPEATS)
    random.Random(8).shuffle(posts)
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32)) as client, \
            ThreadPoolExecutor(32) as pool:
        answers_ = list(pool.map(
            lambda i: client.post(f"{cluster['web']}/hooks/scale",
                                  json={"id": i, "phone": "+919812345678"}), posts))
    statuses = [a.status_code for a in answers_]
    assert statuses.count(202) == UNIQUE
    assert statuses.count(200) == REPEATS
    assert {a.json()["status"] for a in answers_ if a.status_code == 200} == {"duplicate"}

    engine = sa.create_engine(cluster["database"])

    def settled():
        with engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT count(*) FROM deliveries WHERE status = 'delivered'").scalar() == UNIQUE

    wait_for(settled, timeout=180, what=f"{UNIQUE} deliveries")
    calls = httpx.get(f"{cluster['engati']}/_sandbox/calls", timeout=30).json()
    markers = [c["json"]["marker"] for c in calls if c["status"] == 200]
    assert len(markers) == UNIQUE  # no repeats
    assert set(markers) == set(ids)  # none missing
    with engine.connect() as conn:
        per_worker = dict(conn.exec_driver_sql(
            "SELECT worker, count(*) FROM attempts WHERE outcome = 'delivered' "
            "GROUP BY worker").all())
        pending = conn.exec_driver_sql(
            "SELECT count(*) FROM deliveries WHERE status <> 'delivered'").scalar()
    engine.dispose()
    assert pending == 0
    assert len(per_worker) == 3
    assert sum(per_worker.values()) == UNIQUE
    assert min(per_worker.values()) >= UNIQUE * 0.1, per_worker
