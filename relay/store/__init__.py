"""The store: every webhook, delivery and attempt, in SQLite or PostgreSQL.

`Store` is the contract (base.py); `open_store` opens the backend a DATABASE_URL names.
"""

from __future__ import annotations

from relay.store.base import STATUSES, Store
from relay.store.sql import SqlStore
from relay.store.sqlite import SqliteStore

__all__ = ["STATUSES", "SqlStore", "SqliteStore", "Store", "database_url", "open_store"]


def open_store(url: str, *, timeout: float = 5.0, worker: bool = False) -> Store:
    """The store at `url`: SQLite's backend for a `sqlite:` URL, PostgreSQL's (psycopg's)
    for a `postgresql:` one, SQLAlchemy's for any other. `timeout`: seconds to wait for the
    database (SQLite's write lock); `worker`: the store of a delivery worker (see
    SqliteStore)."""
    url = database_url(url)
    backend: type[SqlStore] = SqliteStore if url.startswith("sqlite") else SqlStore
    if url.startswith("postgresql+psycopg:"):
        # Imported here: psycopg is an extra ('.[postgres]'), absent where SQLite runs.
        from relay.store.postgres import PostgresStore
        backend = PostgresStore
    return backend(url, timeout=timeout, worker=worker)


def database_url(url: str) -> str:
    """DATABASE_URL as SQLAlchemy takes it: `postgres://` and `postgresql://` (what hosts
    hand out) mean psycopg 3, the driver the relay installs, not SQLAlchemy's default."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url
