"""The relay runs on SQLite with the base install (`pip install -e .`, the README's quick
start): PostgreSQL's driver is an extra ('.[postgres]') and nothing but a PostgreSQL store
may need it."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_PSYCOPG = """
import sys
sys.modules["psycopg"] = None  # as if not installed: importing it raises ImportError
import relay.app, relay.cli, relay.delivery.worker, relay.web.server
from relay.store import open_store
store = open_store("sqlite:///" + sys.argv[1])
store.upgrade()
print(type(store).__name__, store.waiter())
"""


def test_the_cli_the_web_app_and_a_sqlite_store_need_no_psycopg(tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_PSYCOPG, str(tmp_path / "relay.db")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["SqliteStore", "None"]
