"""The dashboard's series, bucketed in SQL: one statement per chart, SQLite and PostgreSQL.

Each chart covers `buckets` buckets of `width` seconds starting at `start`, and answers rows
of (bucket, series, value), bucket 0 the oldest; buckets with nothing in them are left out.

- webhooks: events received per mapping (a series per mapping).
- outcomes: attempts per outcome (delivered, retry, dead), at the time the call started.
- latency: p50 and p95 of the Engati calls' duration_ms (nearest rank), per bucket.
- queue: pending deliveries at the end of each bucket. Not sampled: derived from the rows.
  A delivery is pending from its `created_at` until its final attempt (delivered or dead),
  so depth(t) = pending now - queued after t + finished after t. A replay re-queues a dead
  delivery with a new `created_at`, so its earlier wait is forgotten, and purged history
  drops out: the chart is exact for the deliveries the database still holds as they are.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

CHARTS = ("webhooks", "outcomes", "latency", "queue")


def _bucket(column: str, dialect: str) -> str:
    # floor((t - start) / width); t >= start, so SQLite's CAST (which truncates) is floor.
    # PostgreSQL's CAST would round: floor first.
    inner = f"({column} - :start) / :width"
    return f"CAST(floor({inner}) AS INTEGER)" if dialect == "postgresql" else (
        f"CAST({inner} AS INTEGER)")


def _window(column: str) -> str:
    return f"{column} >= :start AND {column} < :end"


def statement(chart: str, dialect: str) -> sa.TextClause:
    """The SQL of one chart, bound to :start, :end (start + buckets * width) and :width."""
    if chart == "webhooks":
        b = _bucket("received_at", dialect)
        sql = (f"SELECT {b} AS bucket, mapping AS series, count(*) AS value FROM events "
               f"WHERE {_window('received_at')} GROUP BY {b}, mapping")
    elif chart == "outcomes":
        b = _bucket("started_at", dialect)
        sql = (f"SELECT {b} AS bucket, outcome AS series, count(*) AS value FROM attempts "
               f"WHERE {_window('started_at')} GROUP BY {b}, outcome")
    elif chart == "latency":
        b = _bucket("started_at", dialect)
        # Nearest rank: the p-th percentile of n values is the ceil(n * p / 100)-th smallest.
        sql = (
            f"WITH timed AS (SELECT {b} AS bucket, duration_ms FROM attempts "
            f"WHERE {_window('started_at')}), "
            "ranked AS (SELECT bucket, duration_ms, "
            "ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY duration_ms) AS n, "
            "COUNT(*) OVER (PARTITION BY bucket) AS total FROM timed) "
            "SELECT bucket, 'p50' AS series, duration_ms AS value FROM ranked "
            "WHERE n = (total * 50 + 99) / 100 "
            "UNION ALL SELECT bucket, 'p95', duration_ms FROM ranked "
            "WHERE n = (total * 95 + 99) / 100")
    elif chart == "queue":
        created, started = _bucket("created_at", dialect), _bucket("a.started_at", dialect)
        # Changes per bucket (queued +1, finished -1); the depth at the end of bucket k is
        # the depth now less the changes of the buckets after k. Changes after the window
        # (:end is in the past) count too: they are in "after k" for every k.
        sql = (
            "WITH changes AS ("
            f" SELECT CASE WHEN created_at >= :end THEN :buckets ELSE {created} END AS bucket,"
            " 1 AS change FROM deliveries WHERE created_at >= :start"
            f" UNION ALL SELECT CASE WHEN a.started_at >= :end THEN :buckets ELSE {started}"
            " END, -1 FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE a.started_at >= :start AND a.outcome IN ('delivered', 'dead')"
            " AND d.status = a.outcome AND a.started_at >= d.created_at), "
            "per_bucket AS (SELECT bucket, sum(change) AS change FROM changes GROUP BY bucket),"
            " buckets AS (SELECT 0 AS bucket UNION ALL SELECT bucket + 1 FROM buckets"
            " WHERE bucket + 1 < :buckets), "
            "later AS (SELECT b.bucket, (SELECT coalesce(sum(p.change), 0) FROM per_bucket p"
            " WHERE p.bucket > b.bucket) AS change FROM buckets b) "
            "SELECT bucket, 'pending' AS series, (SELECT count(*) FROM deliveries"
            " WHERE status = 'pending') - change AS value FROM later")
        sql = sql.replace("WITH changes", "WITH RECURSIVE changes", 1)
    else:
        raise ValueError(f"no chart {chart!r}: one of {', '.join(CHARTS)}")
    return sa.text(sql)


def chart(conn: sa.Connection, chart: str, start: float, width: float,
          buckets: int) -> list[tuple[int, str, float]]:
    params: dict[str, Any] = {"start": start, "width": width, "end": start + buckets * width,
                              "buckets": buckets}
    rows = conn.execute(statement(chart, conn.dialect.name), params).all()
    return sorted((int(b), str(s), float(v)) for b, s, v in rows)
