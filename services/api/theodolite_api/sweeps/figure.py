"""A finished sweep's summary figure: a metric against a swept parameter, one line per
combination of the other swept parameters, each point the mean over seeds and repeats with a
bar from the lowest to the highest value."""

from __future__ import annotations

from typing import Any

from theodolite.db.status_tables import Sweep
from theodolite.problems import Problem
from theodolite.web.errors import InvalidSubmission
from theodolite_api.schemas.sweeps import SweepPointPublic
from theodolite_api.sweeps.svg_chart import ChartPoint, Series, line_chart


def swept_names(sweep: Sweep) -> list[str]:
    return [*sweep.grid, *([sweep.seed_param] if sweep.seeds else [])]


def default_x(sweep: Sweep) -> str:
    """The first numeric grid parameter, else the first swept one, else the repeat number."""
    for name, values in sweep.grid.items():
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return name
    names = swept_names(sweep)
    return names[0] if names else "repeat"


def _x_value(point: SweepPointPublic, x: str) -> Any:
    return point.repeat if x == "repeat" else point.values[x]


def render(sweep: Sweep, points: list[SweepPointPublic], metric: str, x: str | None) -> str:
    x = x or default_x(sweep)
    allowed = [*swept_names(sweep), "repeat"]
    if x not in allowed:
        raise InvalidSubmission(
            "bad figure axis",
            [Problem(field="x", message=f"not a swept parameter (swept: {', '.join(allowed)})")],
        )
    others = [name for name in sweep.grid if name != x]
    x_values = list(dict.fromkeys(_x_value(p, x) for p in points))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in x_values)
    categories = None if numeric else [str(v) for v in x_values]
    groups: dict[str, dict[Any, list[float]]] = {}
    for point in points:
        if metric not in point.metrics:
            continue
        name = ", ".join(f"{o}={point.values[o]}" for o in others) or metric
        groups.setdefault(name, {}).setdefault(_x_value(point, x), []).append(point.metrics[metric])
    series = [
        Series(
            name=name,
            points=[
                ChartPoint(
                    x=float(value) if numeric else float(x_values.index(value)),
                    y=sum(ys) / len(ys),
                    low=min(ys) if len(ys) > 1 else None,
                    high=max(ys) if len(ys) > 1 else None,
                )
                for value, ys in by_x.items()
            ],
        )
        for name, by_x in groups.items()
    ]
    label = sweep.name or f"sweep {str(sweep.id)[:8]}"
    return line_chart(
        title=f"{label}: {metric} against {x}",
        x_label=x,
        y_label=metric,
        series=series,
        x_categories=categories,
    )
