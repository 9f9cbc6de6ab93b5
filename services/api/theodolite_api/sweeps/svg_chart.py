"""A small SVG line chart in pure Python (the api stays light: no plotting library)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 80, 190, 50, 60
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    low: float | None = None  # error bar, e.g. min or mean - std
    high: float | None = None


@dataclass(frozen=True)
class Series:
    name: str
    points: list[ChartPoint]


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) covering the range."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _label(value: float) -> str:
    return f"{value:.6g}"


def line_chart(
    *,
    title: str,
    x_label: str,
    y_label: str,
    series: list[Series],
    x_categories: list[str] | None = None,
) -> str:
    """An SVG document: one line per series, error bars where given. With ``x_categories`` the
    x values are indexes into them, shown evenly spaced with their names."""
    points = [p for s in series for p in s.points]
    ys = [v for p in points for v in (p.y, p.low, p.high) if v is not None and math.isfinite(v)]
    xs = [p.x for p in points]
    y_ticks = nice_ticks(min(ys, default=0.0), max(ys, default=1.0))
    if x_categories is not None:
        x_ticks = [float(i) for i in range(len(x_categories))]
        x_low, x_high = -0.5, len(x_categories) - 0.5
    else:
        x_ticks = nice_ticks(min(xs, default=0.0), max(xs, default=1.0))
        x_low, x_high = x_ticks[0], x_ticks[-1]
    y_low, y_high = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / ((x_high - x_low) or 1.0) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_low) / ((y_high - y_low) or 1.0) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2:.1f}" y="24" text-anchor="middle" font-size="15">'
        f"{escape(title)}</text>",
    ]
    for y in y_ticks:
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            'stroke="#e5e5e5"/>'
        )
        out.append(f'<text x="{LEFT - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{_label(y)}</text>')
    for i, x in enumerate(x_ticks):
        name = x_categories[i] if x_categories is not None else _label(x)
        out.append(
            f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 5}" '
            'stroke="black"/>'
        )
        out.append(
            f'<text x="{sx(x):.1f}" y="{TOP + plot_h + 20}" text-anchor="middle">'
            f"{escape(name)}</text>"
        )
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="black"/>'
    )
    out.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 15}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    out.append(
        f'<text transform="translate(20 {TOP + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    for i, line in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        ordered = sorted(line.points, key=lambda p: p.x)
        if len(ordered) > 1:
            path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in ordered)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for p in ordered:
            if p.low is not None and p.high is not None:
                out.append(
                    f'<line x1="{sx(p.x):.1f}" x2="{sx(p.x):.1f}" y1="{sy(p.low):.1f}" '
                    f'y2="{sy(p.high):.1f}" stroke="{colour}"/>'
                )
            out.append(
                f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(line.name)}: {_label(p.x)}, {_label(p.y)}</title></circle>"
            )
        legend_y = TOP + 10 + i * 20
        out.append(
            f'<line x1="{WIDTH - RIGHT + 15}" x2="{WIDTH - RIGHT + 35}" y1="{legend_y}" '
            f'y2="{legend_y}" stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{WIDTH - RIGHT + 40}" y="{legend_y + 4}">{escape(line.name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
