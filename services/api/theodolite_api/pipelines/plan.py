"""A pipeline's shape, checked before anything is created: each stage's edges (declared, and
implied by its references), cycles named as ``a -> b -> a``, references to stages that run after,
sweeps and fan-in; then each stage's jobs: one, or one per sweep point."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from theodolite.problems import Problem
from theodolite_api.pipelines import references
from theodolite_api.schemas.pipelines import StageCreate
from theodolite_api.sweeps.operations import expand_points, shape_problems

# A job's ``depends_on`` holds at most this many (``JobCreate``): a fan-in waits on each point.
MAX_DEPENDENCIES = 100

JobKey = tuple[str, int | None]  # (stage, sweep point index; None for a stage's only job)


@dataclass(frozen=True)
class StageJobPlan:
    point_index: int | None
    point: dict[str, Any]  # the sweep point it runs or follows; empty for a stage's only job
    params: dict[str, Any]  # literal values, swept values included
    templates: dict[str, str]  # values holding references, resolved when it is queued
    depends_on: list[JobKey]


@dataclass
class PipelinePlan:
    order: list[str]  # upstream first
    upstream: dict[str, list[str]]  # declared and implied, sorted
    jobs: dict[str, list[StageJobPlan]] = field(default_factory=dict)

    def job_count(self) -> int:
        return sum(len(jobs) for jobs in self.jobs.values())


def _edges(stages: dict[str, StageCreate], problems: list[Problem]) -> dict[str, set[str]]:
    """Declared edges (stage -> what it depends on), with a problem for each bad name."""
    edges: dict[str, set[str]] = {name: set() for name in stages}
    for name, stage in stages.items():
        for index, upstream in enumerate(stage.depends_on):
            where = f"stages.{name}.depends_on.{index}"
            if upstream == name:
                problems.append(Problem(field=where, message="a stage cannot depend on itself"))
            elif upstream not in stages:
                known = ", ".join(sorted(stages))
                problems.append(
                    Problem(field=where, message=f"no stage {upstream!r} (stages: {known})")
                )
            elif upstream in edges[name]:
                problems.append(Problem(field=where, message=f"{upstream!r} named twice"))
            else:
                edges[name].add(upstream)
    return edges


Located = tuple[str, str, references.Reference]  # (stage, parameter, what it references)


def _add_references(
    stages: dict[str, StageCreate], edges: dict[str, set[str]], problems: list[Problem]
) -> tuple[dict[str, dict[str, str]], list[Located]]:
    """Each stage's parameters that hold references (their stages become its upstream), and
    every reference with where it is."""
    templates: dict[str, dict[str, str]] = {name: {} for name in stages}
    located: list[Located] = []
    for name, stage in stages.items():
        for param, value in stage.params.items():
            where = f"stages.{name}.params.{param}"
            found, bad = references.parse(value)
            problems.extend(Problem(field=where, message=message) for message in bad)
            if found or bad:
                templates[name][param] = value
            for reference in found:
                if reference.stage == name:
                    problems.append(
                        Problem(
                            field=where, message=f"{reference}: a stage cannot reference itself"
                        )
                    )
                elif reference.stage not in stages:
                    known = ", ".join(sorted(stages))
                    problems.append(
                        Problem(
                            field=where,
                            message=f"{reference}: no stage {reference.stage!r} (stages: {known})",
                        )
                    )
                else:
                    edges[name].add(reference.stage)
                    located.append((name, param, reference))
    return templates, located


def _cycle_problems(loops: list[list[str]], located: list[Located]) -> list[Problem]:
    """Each cycle, and each reference that closes one: its stage is not upstream."""
    problems = [Problem(field="stages", message=f"cycle: {' -> '.join(loop)}") for loop in loops]
    for loop in loops:
        on_loop = set(zip(loop, loop[1:], strict=False))
        for name, param, reference in located:
            if (name, reference.stage) in on_loop:
                problems.append(
                    Problem(
                        field=f"stages.{name}.params.{param}",
                        message=f"{reference}: {reference.stage!r} is not upstream of {name!r} "
                        f"(cycle: {' -> '.join(loop)})",
                    )
                )
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle once, as the path of stages that closes it (``[a, b, a]``: a waits for b...)."""
    found: dict[tuple[str, ...], list[str]] = {}
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        path.append(name)
        for upstream in sorted(edges[name]):
            if state.get(upstream) == "open":
                loop = path[path.index(upstream) :]
                start = loop.index(min(loop))  # one rotation per cycle, however it was entered
                rotated = loop[start:] + loop[:start]
                found.setdefault(tuple(rotated), [*rotated, rotated[0]])
            elif upstream not in state:
                visit(upstream, path)
        path.pop()
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [])
    return list(found.values())


def upstream_first(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Upstream first; ties by name (the graph has no cycle)."""
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(edges):
        ready = sorted(n for n, up in edges.items() if n not in placed and set(up) <= placed)
        order.extend(ready)
        placed.update(ready)
    return order


def _lineages(
    stages: dict[str, StageCreate], plan: PipelinePlan, problems: list[Problem]
) -> dict[str, str | None]:
    """Which sweep's points each stage runs per (None: it runs once)."""
    lineage: dict[str, str | None] = {}
    for name in plan.order:
        stage = stages[name]
        swept = sorted({s for u in plan.upstream[name] if (s := lineage[u]) is not None})
        if stage.sweep is not None:
            lineage[name] = name
            if swept and not stage.fan_in:
                problems.append(
                    Problem(
                        field=f"stages.{name}.sweep",
                        message=f"it would run per point of sweep {swept[0]!r}: set fan_in to "
                        "run it after all of that sweep's points",
                    )
                )
        elif stage.fan_in:
            lineage[name] = None
            if not swept:
                problems.append(
                    Problem(field=f"stages.{name}.fan_in", message="no upstream stage is a sweep")
                )
        else:
            lineage[name] = swept[0] if swept else None
            if len(swept) > 1:
                problems.append(
                    Problem(
                        field=f"stages.{name}.depends_on",
                        message=f"it follows the points of sweeps {' and '.join(swept)}: set "
                        "fan_in to run it once after all of them",
                    )
                )
    return lineage


def plan_pipeline(
    stages: dict[str, StageCreate], max_jobs: int
) -> tuple[PipelinePlan, list[Problem]]:
    """The pipeline's plan and every problem of its shape. With a cycle the plan has no order:
    its stages are listed by name, each job checked alone, so their problems are found too."""
    problems: list[Problem] = []
    edges = _edges(stages, problems)
    templates, located = _add_references(stages, edges, problems)
    loops = cycles(edges)
    problems.extend(_cycle_problems(loops, located))
    plan = PipelinePlan(
        order=sorted(stages) if loops else upstream_first(edges),
        upstream={name: sorted(up) for name, up in edges.items()},
    )
    lineage = (
        {name: (name if stage.sweep else None) for name, stage in stages.items()}
        if loops
        else _lineages(stages, plan, problems)
    )
    for name in plan.order:
        stage = stages[name]
        literal = {k: v for k, v in stage.params.items() if k not in templates[name]}
        if stage.sweep is not None:
            sweep = stage.sweep
            problems.extend(
                shape_problems(
                    grid=sweep.grid,
                    seeds=sweep.seeds,
                    seed_param=sweep.seed_param,
                    params=stage.params,
                    prefix=f"stages.{name}.sweep.",
                )
            )
            points = [p.values for p in expand_points(sweep.grid, sweep.seeds, sweep.seed_param)]
        elif (followed := lineage[name]) is not None:
            points = [job.point for job in plan.jobs.get(followed, [])]
        else:
            points = []
        plan.jobs[name] = [
            StageJobPlan(
                point_index=index,
                point=point,
                params={**literal, **point} if stage.sweep is not None else literal,
                templates=templates[name],
                depends_on=_job_dependencies(plan, lineage, name, index),
            )
            for index, point in (enumerate(points) if points else [(None, {})])
        ]
        waits = max((len(job.depends_on) for job in plan.jobs[name]), default=0)
        if waits > MAX_DEPENDENCIES:
            problems.append(
                Problem(
                    field=f"stages.{name}",
                    message=f"it waits on {waits} jobs; at most {MAX_DEPENDENCIES}",
                )
            )
    if plan.job_count() > max_jobs:
        problems.append(
            Problem(
                field="stages",
                message=f"{plan.job_count()} jobs; a pipeline may have at most {max_jobs}",
            )
        )
    return plan, problems


def _job_dependencies(
    plan: PipelinePlan, lineage: dict[str, str | None], name: str, index: int | None
) -> list[JobKey]:
    """The jobs one job of ``name`` waits on: the same point of a stage that follows the same
    sweep, and every job of any other upstream stage."""
    found: list[JobKey] = []
    for upstream in plan.upstream[name]:
        if (
            index is not None
            and lineage[upstream] is not None
            and lineage[upstream] == lineage[name]
        ):
            found.append((upstream, index))
        else:
            found.extend((upstream, job.point_index) for job in plan.jobs.get(upstream, []))
    return found
