"""Capture windows and samples in SQL: functions over a transaction of `SqlStore` (sql.py).

A sample is stored only while its window is open and has a slot left: the UPDATE that takes
the slot checks both and locks the window's row, so that the cap holds however many web
processes take samples at once, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from relay.store.tables import capture_samples, capture_windows

KEEP = 7 * 86400  # seconds a window's samples are kept after it closes
_WINDOW_LOCKS = 0x52454C01  # the advisory locks' first key, for capture windows by name

w, s = capture_windows.c, capture_samples.c
_WINDOW = (w.id, w.name, w.opened_at, w.closes_at, w.taken)
_LISTED = (s.id, s.window_id, s.name, s.received_at, s.method, s.headers, s.query, s.signature,
           sa.func.length(s.body).label("size"))  # a list of samples: sizes, not bodies
_SAMPLE = (*_LISTED, s.body)


def open_window(conn: sa.Connection, name: str, now: float, until: float) -> dict[str, Any]:
    """Open a window for `name` until `until`; one already open is closed first (its samples
    stay), so that a name has one open window and the new one starts with a full cap.
    Windows closed more than KEEP ago go, with their samples: samples never pile up."""
    if conn.dialect.name == "postgresql":  # SQLite's writers are one at a time already
        # Two opens of one name at once (a double submit) must not both find no window
        # open and both insert one: they queue on the name.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_WINDOW_LOCKS,
                                                             sa.func.hashtext(name))))
    old = sa.select(w.id).where(w.closes_at < now - KEEP).scalar_subquery()
    conn.execute(capture_samples.delete().where(s.window_id.in_(old)))
    conn.execute(capture_windows.delete().where(w.closes_at < now - KEEP))
    conn.execute(capture_windows.update().where(w.name == name, w.closes_at > now)
                 .values(closes_at=now))
    window_id = conn.execute(capture_windows.insert().values(
        name=name, opened_at=now, closes_at=until, taken=0).returning(w.id)).scalar_one()
    return {"id": window_id, "name": name, "opened_at": now, "closes_at": until, "taken": 0}


def close_window(conn: sa.Connection, name: str, now: float) -> bool:
    closed: int = conn.execute(capture_windows.update()
                               .where(w.name == name, w.closes_at > now)
                               .values(closes_at=now)).rowcount
    return closed > 0


def open_windows(conn: sa.Connection, now: float) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(*_WINDOW).where(w.closes_at > now).order_by(w.name))
    return [dict(row._mapping) for row in rows]


def add_sample(conn: sa.Connection, window_id: int, sample: dict[str, Any], cap: int,
               now: float) -> int | None:
    """The new sample's id, or None when the window is closed or full."""
    taken = conn.execute(capture_windows.update()
                         .where(w.id == window_id, w.closes_at > now, w.taken < cap)
                         .values(taken=w.taken + 1).returning(w.name)).first()
    if taken is None:
        return None
    sample_id: int = conn.execute(capture_samples.insert().values(
        window_id=window_id, name=taken.name, received_at=now, **sample)
        .returning(s.id)).scalar_one()
    return sample_id


def samples(conn: sa.Connection, name: str | None, limit: int) -> list[dict[str, Any]]:
    query = sa.select(*_LISTED).order_by(s.id.desc()).limit(limit)
    if name is not None:
        query = query.where(s.name == name)
    return [dict(row._mapping) for row in conn.execute(query)]


def sample(conn: sa.Connection, sample_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(*_SAMPLE).where(s.id == sample_id)).first()
    return _row(row) if row else None


def _row(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    found["body"] = bytes(found["body"])
    return found
