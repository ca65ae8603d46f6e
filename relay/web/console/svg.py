"""Charts drawn as inline SVG on the server: no script, no chart library, nothing fetched
(the console's Content-Security-Policy allows neither). Stacked bars for counts, lines for
measures; a y axis with round ticks, x labels in UTC, a legend, and a tooltip (<title>) on
every bar and point."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from markupsafe import Markup, escape

WIDTH, HEIGHT = 560, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 10, 10, 40
# Colours that stay apart for most eyes; outcomes and percentiles get fixed ones.
PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#0ea5e9", "#84cc16",
           "#ec4899", "#64748b", "#14b8a6")
FIXED = {"delivered": "#17803d", "retry": "#d97706", "dead": "#b42318", "p50": "#2563eb",
         "p95": "#b42318", "pending": "#a15c07"}


@dataclass
class Chart:
    """`series` maps a name to one value per bucket (None: nothing measured there)."""

    title: str
    unit: str
    kind: str  # "bars" (stacked) | "lines"
    labels: list[str]  # a label per bucket, "" where none is shown
    tips: list[str]  # each bucket's time span, for the tooltips
    series: dict[str, list[float | None]] = field(default_factory=dict)


def nice_ceiling(value: float, whole: bool = False) -> float:
    """The smallest of 1, 1.5, 2, 2.5, 5, 7.5 x 10^n at or above `value` (1 for nothing at
    all); `whole`: of 1, 2, 5 x 10^n, n >= 0 (steps for counts)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    if whole:
        power = max(power, 1)
    steps = (1, 2, 5, 10) if whole else (1, 1.5, 2, 2.5, 5, 7.5, 10)
    return next(step * power for step in steps if step * power >= value)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def colours(names: list[str]) -> dict[str, str]:
    return {name: FIXED.get(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)}


def render(chart: Chart) -> Markup:
    n = max(1, len(chart.labels))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    if chart.kind == "bars":
        totals = [sum(v[i] or 0 for v in chart.series.values()) for i in range(n)]
        peak = max(totals, default=0)
    else:
        peak = max((x for v in chart.series.values() for x in v if x is not None), default=0)
    # Four round steps up the y axis; counts in whole numbers.
    top = 4 * nice_ceiling(peak / 4, whole=chart.kind == "bars")

    def y(value: float) -> float:
        return TOP + plot_h - value / top * plot_h

    step = plot_w / n
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
           f'height="{HEIGHT}" role="img" aria-label="{escape(chart.title)}" '
           'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" '
           'font-size="11">']
    for k in range(5):  # the y axis: 0, 1/4, ... of a round top, with grid lines
        value = top * k / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" '
                   f'y2="{y(value):.1f}" stroke="{"#98a2b3" if k == 0 else "#e3e6ea"}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
                   f'fill="#475467">{_number(value)}</text>')
    out.append(f'<text x="12" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" fill="#475467" '
               f'transform="rotate(-90 12 {TOP + plot_h / 2:.0f})">{escape(chart.unit)}</text>')
    for i, label in enumerate(chart.labels):  # the x axis
        if label:
            x = LEFT + i * step
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + plot_h}" '
                       f'y2="{TOP + plot_h + 4}" stroke="#98a2b3"/>')
            out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
                       f'fill="#475467">{escape(label)}</text>')
    colour = colours(list(chart.series))
    if chart.kind == "bars":
        base = [0.0] * n
        for name, values in chart.series.items():
            for i, count in enumerate(values):
                if not count:
                    continue
                value = float(count)
                x, h = LEFT + i * step + step * 0.1, value / top * plot_h
                out.append(f'<rect class="bar" x="{x:.1f}" y="{y(base[i] + value):.1f}" '
                           f'width="{step * 0.8:.1f}" height="{h:.1f}" fill="{colour[name]}">'
                           f'<title>{escape(chart.tips[i])}: {escape(name)} '
                           f'{_number(value)}</title></rect>')
                base[i] += value
    else:
        for name, values in chart.series.items():
            points = [(LEFT + (i + 0.5) * step, value, i) for i, value in enumerate(values)
                      if value is not None]
            if len(points) > 1:
                path = " ".join(f"{x:.1f},{y(v):.1f}" for x, v, _ in points)
                out.append(f'<polyline points="{path}" fill="none" stroke="{colour[name]}" '
                           'stroke-width="2"/>')
            for x, v, i in points:
                out.append(f'<circle class="point" cx="{x:.1f}" cy="{y(v):.1f}" r="2.5" '
                           f'fill="{colour[name]}"><title>{escape(chart.tips[i])}: '
                           f'{escape(name)} {_number(v)} {escape(chart.unit)}</title></circle>')
    if all(v is None or (chart.kind == "bars" and v == 0)
           for values in chart.series.values() for v in values):
        out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" '
                   'text-anchor="middle" fill="#667085">nothing in this window</text>')
    x = LEFT
    for name in chart.series:  # the legend, under the axis
        out.append(f'<rect x="{x}" y="{HEIGHT - 12}" width="10" height="10" '
                   f'fill="{colour[name]}"/><text x="{x + 14}" y="{HEIGHT - 3}" '
                   f'fill="#1d2330">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    out.append("</svg>")
    return Markup("".join(out))
