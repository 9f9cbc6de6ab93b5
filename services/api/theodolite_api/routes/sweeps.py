"""Parameter sweeps: one child job per point of a grid, their status and metrics as a table and
a figure."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from theodolite.db.status_tables import Sweep
from theodolite.problems import Problem
from theodolite.web.errors import Conflict, InvalidSubmission
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.ownership import PageDep, SweepDep
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import sweeps as sweep_repo
from theodolite_api.schemas.common import Page
from theodolite_api.schemas.sweeps import SweepCreate, SweepPublic, SweepSummary
from theodolite_api.state import AppState
from theodolite_api.sweeps import figure as sweep_figure
from theodolite_api.sweeps import operations as sweep_service

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

SVG = "image/svg+xml"


async def _public(
    sweep: Sweep, session: SessionDep, state: AppState, request: Request, *, with_metrics: bool
) -> SweepPublic:
    children = await sweep_repo.children(session=session, sweep_id=sweep.id)
    found = await sweep_service.point_metrics(state.mlflow, children) if with_metrics else {}
    metrics = sweep_service.chosen_metrics(sweep, found)
    points, table = sweep_service.points_and_table(sweep, children, found, metrics)
    summary = sweep_service.summary(sweep, [job.status for _, job in children])
    figure_url = (
        str(request.url_for("sweep_figure", sweep_id=sweep.id)) if summary.finished else None
    )
    return SweepPublic(
        **summary.model_dump(exclude={"metrics"}),
        metrics=metrics,
        points=points,
        table=table,
        figure_url=figure_url,
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={422: {"description": "Every problem of the grid and its points; nothing created"}},
)
async def create_sweep(
    body: SweepCreate, session: SessionDep, state: StateDep, request: Request, caller: CallerDep
) -> SweepPublic:
    """Submit one job per point of the grid (x seeds x repeats), all or none."""
    sweep, _ = await sweep_service.create_sweep(
        session=session,
        request=body,
        caller=caller,
        settings=state.settings,
        registry=state.registry,
        mlflow=state.mlflow,
    )
    await session.commit()
    state.relay.wake()
    return await _public(sweep, session, state, request, with_metrics=False)


@router.get("")
async def list_sweeps(
    session: SessionDep,
    page: PageDep,
    experiment_id: uuid.UUID | None = None,
) -> Page[SweepSummary]:
    """The sweeps of the caller's groups, newest first, optionally of one experiment."""
    rows, total = await sweep_repo.page(
        session=session,
        page=page,
        experiment_id=experiment_id,
    )
    statuses = await sweep_repo.child_statuses(session=session, sweep_ids=[s.id for s in rows])
    return Page(data=[sweep_service.summary(s, statuses[s.id]) for s in rows], count=total)


@router.get("/{sweep_id}", responses={404: {"description": "No such sweep"}})
async def get_sweep(
    sweep: SweepDep,
    session: SessionDep,
    state: StateDep,
    request: Request,
    metrics: Annotated[
        bool, Query(description="false: statuses only, no metrics read from MLflow (cheap).")
    ] = True,
) -> SweepPublic:
    """The sweep's status, each child's point, status and metrics, and the table: one row per
    combination of grid values with each metric's mean, spread and count over its runs."""
    return await _public(sweep, session, state, request, with_metrics=metrics)


@router.get(
    "/{sweep_id}/figure.svg",
    name="sweep_figure",
    response_class=Response,
    responses={
        200: {"content": {SVG: {}}},
        404: {"description": "No such sweep"},
        409: {"description": "The sweep has not finished"},
    },
)
async def get_sweep_figure(
    sweep: SweepDep,
    session: SessionDep,
    state: StateDep,
    request: Request,
    metric: Annotated[str | None, Query(description="Default: the first chosen metric.")] = None,
    x: Annotated[str | None, Query(description="Default: the first numeric grid name.")] = None,
) -> Response:
    """The finished sweep's figure (SVG): a metric against a swept parameter."""
    public = await _public(sweep, session, state, request, with_metrics=True)
    if not public.finished:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(public.counts.items()))
        raise Conflict(f"sweep {sweep.id} has not finished ({counts})")
    if not public.metrics:
        raise Conflict(f"the jobs of sweep {sweep.id} logged no metric")
    metric = metric or public.metrics[0]
    if metric not in public.metrics:
        raise InvalidSubmission(
            "bad figure metric",
            [Problem(field="metric", message=f"not logged (logged: {', '.join(public.metrics)})")],
        )
    svg = sweep_figure.render(sweep, public.points, metric, x)
    return Response(svg, media_type=SVG)
