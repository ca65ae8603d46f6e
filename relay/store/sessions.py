"""The console's rows in the store: the deployment's session signing key and the logged-in
sessions, so that every web process of a deployment signs cookies alike and a logout ends a
session everywhere.

Kept apart from store.py and history.py, which hold the webhook and delivery paths; this uses
their connection handling (`Store._tx`) and the backend's INSERT (`Store._insert`).
"""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa

from relay.store import Store
from relay.store.tables import console_sessions, instance

_KEY = "session_key"


class ConsoleStore:
    def __init__(self, store: Store):
        self._store = store

    def session_key(self) -> str:
        """The deployment's random session signing key, made by whichever process asks first.

        Insert-if-absent, then read: concurrent first requests of several processes agree on
        the one row that won, on SQLite and PostgreSQL alike.
        """
        with self._store._tx() as conn:
            conn.execute(self._store._insert(instance)
                         .values(key=_KEY, value=secrets.token_urlsafe(48))
                         .on_conflict_do_nothing())
            return conn.execute(sa.select(instance.c.value)
                                .where(instance.c.key == _KEY)).scalar_one()

    def open_session(self, session_id: str, now: float, lifetime: float) -> None:
        """Record a new logged-in session; expired ones are deleted on the way."""
        with self._store._tx() as conn:
            conn.execute(console_sessions.delete().where(console_sessions.c.expires_at <= now))
            conn.execute(console_sessions.insert().values(
                id=session_hash(session_id), created_at=now, expires_at=now + lifetime))

    def session_alive(self, session_id: str, now: float) -> bool:
        with self._store._tx() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(console_sessions)
                .where(console_sessions.c.id == session_hash(session_id),
                       console_sessions.c.expires_at > now)).scalar_one() > 0

    def end_session(self, session_id: str) -> None:
        with self._store._tx() as conn:
            conn.execute(console_sessions.delete()
                         .where(console_sessions.c.id == session_hash(session_id)))


def session_hash(session_id: str) -> str:
    """What the row is keyed by: a copy of the table does not hold usable session ids."""
    return hashlib.sha256(session_id.encode()).hexdigest()
