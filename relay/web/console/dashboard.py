"""The dashboard: the last 24 hours (by the hour) or 7 days (by 6 hours), in four charts
drawn on the server from the store's series (relay/store/charts.py) as inline SVG (svg.py)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from flask import render_template, request

from relay.store.charts import CHARTS
from relay.web.console import console
from relay.web.console.svg import Chart, render
from relay.web.services import services

HOUR = 3600
# The windows: (buckets, bucket width); a window ends at the end of the current bucket.
WINDOWS = {"24h": (24, HOUR), "7d": (28, 6 * HOUR)}
OUTCOMES = ("delivered", "retry", "dead")
TITLES = {
    "webhooks": ("Webhooks in, per mapping", "webhooks", "bars"),
    "outcomes": ("Delivery attempts by outcome", "attempts", "bars"),
    "latency": ("Engati call time, p50 and p95", "ms", "lines"),
    "queue": ("Queue depth: pending deliveries", "pending", "lines"),
}


@console.get("/dashboard")
def dashboard() -> Any:
    window = request.args.get("window", "24h")
    if window not in WINDOWS:
        window = "24h"
    buckets, width = WINDOWS[window]
    now = time.time()
    end = math.ceil(now / width) * width
    start = end - buckets * width
    labels, tips = axis(start, width, buckets)
    store = services().store
    charts, totals = {}, {}
    for name in CHARTS:
        rows = store.chart(name, start, width, buckets)
        names = list(dict.fromkeys([*(OUTCOMES if name == "outcomes" else ()),
                                    *(series for _, series, _ in rows)]))
        fill: float | None = 0.0 if TITLES[name][2] == "bars" else None
        series: dict[str, list[float | None]] = {s: [fill] * buckets for s in names}
        for bucket, s, value in rows:
            series[s][bucket] = value
        title, unit, kind = TITLES[name]
        charts[name] = render(Chart(title, unit, kind, labels, tips, series))
        totals[name] = {s: sum(v or 0 for v in values) for s, values in series.items()}
    pending, oldest, dead = store.queue_stats(now)
    scheduled, cancelled = store.schedule_stats(now)
    return render_template("dashboard.html", window=window, windows=list(WINDOWS),
                           charts=charts, titles=TITLES, totals=totals, pending=pending,
                           oldest=oldest, dead=dead, scheduled=scheduled, cancelled=cancelled)


def axis(start: float, width: int, buckets: int) -> tuple[list[str], list[str]]:
    """x labels (every 3 hours, or every day at midnight UTC) and each bucket's span."""
    labels, tips = [], []
    for i in range(buckets):
        at = datetime.fromtimestamp(start + i * width, UTC)
        until = datetime.fromtimestamp(start + (i + 1) * width, UTC)
        if width == HOUR:
            labels.append(at.strftime("%H:%M") if at.hour % 3 == 0 else "")
            tips.append(f"{at:%H:%M}-{until:%H:%M} UTC")
        else:
            labels.append(at.strftime("%a %d") if at.hour == 0 else "")
            tips.append(f"{at:%a %d %H:%M}-{until:%H:%M} UTC")
    return labels, tips
