"""Jobs submitted on behalf of a sweep or a pipeline, all or none: each child is checked as any
job is, and its problems are said once each, where the parent's author can fix them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job
from theodolite.problems import Problem
from theodolite.web.errors import InvalidSubmission
from theodolite_api.auth.callers import Caller
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.clients.registry import RegistryClient
from theodolite_api.jobs.submission import submit_job
from theodolite_api.schemas.jobs import JobCreate
from theodolite_api.settings import ApiSettings


class ChildProblems:
    """The problems of a parent and its children, each (field, message) once, in order found."""

    def __init__(self, problems: Iterable[Problem] = ()) -> None:
        self.found: list[Problem] = []
        self._seen: set[tuple[str, str]] = set()
        for problem in problems:
            self.add(problem)

    def add(self, problem: Problem) -> None:
        if (problem.field, problem.message) not in self._seen:
            self._seen.add((problem.field, problem.message))
            self.found.append(problem)

    def __bool__(self) -> bool:
        return bool(self.found)


def swept_value_problem(
    problem: Problem,
    *,
    grid: dict[str, list[Any]],
    seeds: Sequence[int],
    seed_param: str,
    point: dict[str, Any],
    prefix: str = "",
) -> Problem | None:
    """A child's parameter problem said at the swept value that caused it (``grid.lr.2``,
    ``seeds.0``), or None when no swept value did."""
    if not problem.field.startswith("params."):
        return None
    name = problem.field.removeprefix("params.")
    if name in grid:
        index = grid[name].index(point[name])
        return Problem(field=f"{prefix}grid.{name}.{index}", message=problem.message)
    if seeds and name == seed_param:
        index = list(seeds).index(point[name])
        return Problem(field=f"{prefix}seeds.{index}", message=problem.message)
    return None


async def submit_child(
    *,
    session: AsyncSession,
    request: JobCreate,
    caller: Caller,
    settings: ApiSettings,
    registry: RegistryClient,
    mlflow: MlflowReader,
    problems: ChildProblems,
    locate: Callable[[Problem], Problem],
    deferred: frozenset[str] = frozenset(),
    run_tags: dict[str, str] | None = None,
) -> Job | None:
    """The child job, or None with its problems (``locate``-d) added. Does not commit."""
    try:
        return await submit_job(
            session=session,
            request=request,
            caller=caller,
            settings=settings,
            registry=registry,
            mlflow=mlflow,
            deferred=deferred,
            run_tags=run_tags,
        )
    except InvalidSubmission as exc:
        for problem in exc.problems:
            problems.add(locate(problem))
        return None
