"""The console's rows in SQL: the deployment's session signing key and the logged-in
sessions, so that every web process of a deployment signs cookies alike and a logout ends a
session everywhere. Functions over a write transaction of `SqlStore` (sql.py)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from relay.store.tables import console_sessions, instance

_KEY = "session_key"


def session_key(conn: sa.Connection, insert: Callable[[sa.Table], Any]) -> str:
    """Insert-if-absent, then read: concurrent first requests of several processes agree on
    the one row that won, on SQLite and PostgreSQL alike (`insert` is the dialect's, which
    has ON CONFLICT DO NOTHING)."""
    conn.execute(insert(instance).values(key=_KEY, value=secrets.token_urlsafe(48))
                 .on_conflict_do_nothing())
    key: str = conn.execute(sa.select(instance.c.value)
                            .where(instance.c.key == _KEY)).scalar_one()
    return key


def open_session(conn: sa.Connection, session_id: str, now: float, lifetime: float) -> None:
    conn.execute(console_sessions.delete().where(console_sessions.c.expires_at <= now))
    conn.execute(console_sessions.insert().values(
        id=session_hash(session_id), created_at=now, expires_at=now + lifetime))


def session_alive(conn: sa.Connection, session_id: str, now: float) -> bool:
    found: int = conn.execute(
        sa.select(sa.func.count()).select_from(console_sessions)
        .where(console_sessions.c.id == session_hash(session_id),
               console_sessions.c.expires_at > now)).scalar_one()
    return found > 0


def end_session(conn: sa.Connection, session_id: str) -> None:
    conn.execute(console_sessions.delete()
                 .where(console_sessions.c.id == session_hash(session_id)))


def session_hash(session_id: str) -> str:
    """What the row is keyed by: a copy of the table does not hold usable session ids."""
    return hashlib.sha256(session_id.encode()).hexdigest()
