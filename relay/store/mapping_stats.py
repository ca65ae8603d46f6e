"""Each mapping's last event and its last day in figures, for the console's Mappings page.

One statement for all the mappings asked about, never one per mapping, and every part of it
on an index, however long the history:

- the day's events, grouped by mapping and counted by status: `events_mapping_received`
  (mapping, received_at) ranges, one per mapping, each the day's rows only;
- the day's dead deliveries, grouped by mapping: the partial index `deliveries_dead`
  (updated_at, status 'dead');
- the last event's time: max(received_at) per mapping, which both databases answer from the
  end of that mapping's range of `events_mapping_received` (one index probe each), so a
  mapping quiet for a month costs no more than a busy one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from relay.model import DeliveryStatus, EventStatus
from relay.store.tables import deliveries, events

_E, _D = events.c, deliveries.c


def mapping_stats(conn: sa.Connection, names: list[str], since: float) -> dict[str, dict[str, Any]]:
    """{name: {last_at, accepted, failed, dead}} for every name asked about: the time of its
    last event (None if it has none), the events accepted and failed since `since`, and its
    deliveries gone dead since then."""
    names = sorted(set(names))
    if not names:
        return {}
    listed_rows = [sa.select(sa.literal(n, sa.String).label("mapping")) for n in names]
    listed = (listed_rows[0] if len(listed_rows) == 1 else sa.union_all(*listed_rows)
              ).subquery("listed")

    def counted(status: str) -> Any:
        return sa.func.sum(sa.case((_E.status == status, 1), else_=0))

    recent = (sa.select(_E.mapping, counted(EventStatus.ACCEPTED.value).label("accepted"),
                        counted(EventStatus.FAILED.value).label("failed"))
              .where(_E.mapping.in_(names), _E.received_at >= since)
              .group_by(_E.mapping).subquery("recent"))
    dead = (sa.select(_D.mapping, sa.func.count().label("dead"))
            .where(_D.status == DeliveryStatus.DEAD.value, _D.updated_at >= since)
            .group_by(_D.mapping).subquery("dead"))
    last_at = (sa.select(sa.func.max(_E.received_at)).where(_E.mapping == listed.c.mapping)
               .scalar_subquery())
    query = (sa.select(listed.c.mapping, last_at.label("last_at"),
                       sa.func.coalesce(recent.c.accepted, 0).label("accepted"),
                       sa.func.coalesce(recent.c.failed, 0).label("failed"),
                       sa.func.coalesce(dead.c.dead, 0).label("dead"))
             .select_from(listed.outerjoin(recent, recent.c.mapping == listed.c.mapping)
                          .outerjoin(dead, dead.c.mapping == listed.c.mapping)))
    return {row.mapping: {"last_at": row.last_at, "accepted": int(row.accepted),
                          "failed": int(row.failed), "dead": int(row.dead)}
            for row in conn.execute(query)}
