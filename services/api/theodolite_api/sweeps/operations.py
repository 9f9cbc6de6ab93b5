"""Parameter sweeps: a grid (x seeds x repeats) submitted as one child job per point, all in
one transaction, and the sweep's status and metrics summarized from its children."""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import Sweep, SweepJob
from theodolite.db.tables import Job, utcnow
from theodolite.lifecycle import JobStatus, is_terminal
from theodolite.problems import Problem
from theodolite.web.errors import InvalidSubmission
from theodolite_api.auth.callers import Caller
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.clients.registry import RegistryClient
from theodolite_api.jobs.children import ChildProblems, submit_child, swept_value_problem
from theodolite_api.repositories import sweeps as sweep_repo
from theodolite_api.schemas.jobs import JobCreate
from theodolite_api.schemas.sweeps import (
    MetricSummary,
    SweepCreate,
    SweepPointPublic,
    SweepRowPublic,
    SweepSummary,
)
from theodolite_api.settings import ApiSettings

METRIC_READS_AT_ONCE = 8


@dataclass(frozen=True)
class Point:
    values: dict[str, Any]  # grid values, and the seed when seeds are swept
    repeat: int


def grid_problems(request: SweepCreate, max_points: int) -> list[Problem]:
    """What is wrong with the grid itself, before any point is tried."""
    problems = shape_problems(
        grid=request.grid,
        seeds=request.seeds,
        seed_param=request.seed_param,
        params=request.params,
        repeats=request.repeats,
    )
    total = point_count(request)
    if total > max_points:
        problems.append(
            Problem(field="grid", message=f"{total} points; a sweep may have at most {max_points}")
        )
    return problems


def shape_problems(
    *,
    grid: dict[str, list[Any]],
    seeds: list[int],
    seed_param: str,
    params: dict[str, Any],
    repeats: int = 1,
    prefix: str = "",
) -> list[Problem]:
    """What is wrong with a grid, its seeds and repeats (a sweep's, or a pipeline stage's)."""
    problems: list[Problem] = []
    for name, values in grid.items():
        if not values:
            problems.append(
                Problem(field=f"{prefix}grid.{name}", message="give at least one value")
            )
        elif len(set(map(repr, values))) != len(values):
            problems.append(Problem(field=f"{prefix}grid.{name}", message="values repeat"))
        if name in params:
            problems.append(
                Problem(
                    field=f"{prefix}grid.{name}", message="also in params: fixed or swept, not both"
                )
            )
    if seeds:
        if seed_param in grid or seed_param in params:
            problems.append(
                Problem(
                    field=f"{prefix}seed_param",
                    message=f"{seed_param!r} is already in the grid or params",
                )
            )
        if len(set(seeds)) != len(seeds):
            problems.append(Problem(field=f"{prefix}seeds", message="seeds repeat"))
    if not grid and not seeds and repeats == 1:
        problems.append(
            Problem(
                field=f"{prefix}grid", message="nothing to sweep: give a grid, seeds or repeats"
            )
        )
    return problems


def point_count(request: SweepCreate) -> int:
    return (
        math.prod(len(v) for v in request.grid.values())
        * max(1, len(request.seeds))
        * (request.repeats)
    )


def expand(request: SweepCreate) -> list[Point]:
    """Every point of the sweep (see ``expand_points``)."""
    return expand_points(request.grid, request.seeds, request.seed_param, request.repeats)


def expand_points(
    grid: dict[str, list[Any]], seeds: list[int], seed_param: str, repeats: int = 1
) -> list[Point]:
    """Every point, in grid order (the last grid name varies fastest), then seed, then repeat."""
    names = list(grid)
    points: list[Point] = []
    for combination in itertools.product(*(grid[n] for n in names)):
        values = dict(zip(names, combination, strict=True))
        seed_values: list[int | None] = list(seeds) or [None]
        for seed in seed_values:
            with_seed = values if seed is None else {**values, seed_param: seed}
            for repeat in range(repeats):
                points.append(Point(values=with_seed, repeat=repeat))
    return points


def _point_problem(problem: Problem, request: SweepCreate, point: Point) -> Problem:
    """A child's problem, said where the sweep's author can fix it."""
    swept = swept_value_problem(
        problem,
        grid=request.grid,
        seeds=request.seeds,
        seed_param=request.seed_param,
        point=point.values,
    )
    return swept or problem


async def create_sweep(
    *,
    session: AsyncSession,
    request: SweepCreate,
    caller: Caller,
    settings: ApiSettings,
    registry: RegistryClient,
    mlflow: MlflowReader,
) -> tuple[Sweep, list[tuple[SweepJob, Job]]]:
    """Create the sweep and every child job, or raise InvalidSubmission naming every problem
    (then nothing is created: the caller does not commit). Does not commit."""
    problems = ChildProblems(grid_problems(request, settings.sweeps.max_points))
    if point_count(request) > settings.sweeps.max_points:
        raise InvalidSubmission(f"{len(problems.found)} problem(s) in the sweep", problems.found)
    sweep_id = uuid.uuid4()
    children: list[tuple[SweepJob, Job]] = []
    for position, point in enumerate(expand(request)):
        child = JobCreate(
            experiment_id=request.experiment_id,
            entrypoint_id=request.entrypoint_id,
            entry_point=request.entry_point,
            params={**request.params, **point.values},
            queue=request.queue,
            timeout_s=request.timeout_s,
            max_retries=request.max_retries,
            retry_on_failure=request.retry_on_failure,
        )

        job = await submit_child(
            session=session,
            request=child,
            caller=caller,
            settings=settings,
            registry=registry,
            mlflow=mlflow,
            problems=problems,
            locate=partial(_point_problem, request=request, point=point),
        )
        if job is not None and not problems:
            children.append(
                (
                    SweepJob(
                        sweep_id=sweep_id,
                        job_id=job.id,
                        position=position,
                        point=point.values,
                        repeat=point.repeat,
                    ),
                    job,
                )
            )
    if problems:
        raise InvalidSubmission(f"{len(problems.found)} problem(s) in the sweep", problems.found)
    sweep = Sweep(
        id=sweep_id,
        experiment_id=request.experiment_id,
        group_id=children[0][1].group_id,  # the experiment's, as every child's
        entrypoint_id=request.entrypoint_id,
        entry_point=request.entry_point,
        queue=request.queue,
        name=request.name,
        params=request.params,
        grid={name: list(values) for name, values in request.grid.items()},
        seeds=list(request.seeds),
        seed_param=request.seed_param,
        repeats=request.repeats,
        metrics=list(dict.fromkeys(request.metrics)),
        created_at=utcnow(),
    )
    await sweep_repo.add(session=session, sweep=sweep, children=[c for c, _ in children])
    return sweep, children


def sweep_status(statuses: list[str]) -> tuple[str, bool]:
    """The sweep's status from its children's, and whether it has finished."""
    if not all(is_terminal(JobStatus(s)) for s in statuses):
        started = any(s != JobStatus.QUEUED.value for s in statuses)
        return ("running" if started else "queued"), False
    if all(s == JobStatus.SUCCEEDED.value for s in statuses):
        return "succeeded", True
    if all(s == JobStatus.CANCELLED.value for s in statuses):
        return "cancelled", True
    return "failed", True


def summary(sweep: Sweep, statuses: list[str]) -> SweepSummary:
    status, finished = sweep_status(statuses)
    return SweepSummary(
        **sweep.model_dump(),
        status=status,
        finished=finished,
        counts=dict(Counter(statuses)),
    )


async def point_metrics(
    mlflow: MlflowReader, children: list[tuple[SweepJob, Job]]
) -> dict[uuid.UUID, dict[str, float]]:
    """The latest value of every metric of each child that has an MLflow run."""
    limit = asyncio.Semaphore(METRIC_READS_AT_ONCE)

    async def read(job: Job) -> tuple[uuid.UUID, dict[str, float]]:
        if job.mlflow_run_id is None:
            return job.id, {}
        async with limit:
            metrics = await mlflow.metrics(job.mlflow_run_id)
        return job.id, {m["key"]: float(m["latest"]["value"]) for m in metrics}

    return dict(await asyncio.gather(*(read(job) for _, job in children)))


def chosen_metrics(sweep: Sweep, found: dict[uuid.UUID, dict[str, float]]) -> list[str]:
    if sweep.metrics:
        return list(sweep.metrics)
    names = {name for metrics in found.values() for name in metrics}
    # Graph step durations are bookkeeping, not results.
    return sorted(name for name in names if not name.startswith("step."))


def _summarize(values: list[float]) -> MetricSummary:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return MetricSummary(mean=mean, std=std, min=min(values), max=max(values), n=len(values))


def points_and_table(
    sweep: Sweep,
    children: list[tuple[SweepJob, Job]],
    found: dict[uuid.UUID, dict[str, float]],
    metrics: list[str],
) -> tuple[list[SweepPointPublic], list[SweepRowPublic]]:
    points = [
        SweepPointPublic(
            position=child.position,
            values=child.point,
            repeat=child.repeat,
            job_id=job.id,
            status=job.status,
            metrics={m: found[job.id][m] for m in metrics if m in found.get(job.id, {})},
        )
        for child, job in sorted(children, key=lambda c: c[0].position)
    ]
    rows: dict[str, list[SweepPointPublic]] = {}
    grid_values: dict[str, dict[str, Any]] = {}
    for point in points:
        values = {name: point.values[name] for name in sweep.grid}
        key = repr(sorted(values.items()))
        rows.setdefault(key, []).append(point)
        grid_values[key] = values
    table = [
        SweepRowPublic(
            values=grid_values[key],
            jobs=len(members),
            statuses=dict(Counter(p.status for p in members)),
            metrics={
                metric: _summarize([p.metrics[metric] for p in members if metric in p.metrics])
                for metric in metrics
                if any(metric in p.metrics for p in members)
            },
        )
        for key, members in rows.items()
    ]
    return points, table
