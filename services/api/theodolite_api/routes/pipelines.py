"""Pipelines: named DAGs of stages whose parameters reference earlier stages' results."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.ownership import PageDep, PipelineDep
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.pipelines import operations as pipeline_service
from theodolite_api.repositories import pipelines as pipeline_repo
from theodolite_api.schemas.common import Page
from theodolite_api.schemas.pipelines import PipelineCreate, PipelinePublic, PipelineSummary

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        422: {
            "description": "Every problem of the stages, their edges and parameters; "
            "nothing created"
        }
    },
)
async def create_pipeline(
    body: PipelineCreate, session: SessionDep, state: StateDep, caller: CallerDep
) -> PipelinePublic:
    """Create every stage's jobs, each waiting for its upstream stages, all or none."""
    pipeline = await pipeline_service.create_pipeline(
        session=session,
        request=body,
        caller=caller,
        settings=state.settings,
        registry=state.registry,
        mlflow=state.mlflow,
    )
    await session.commit()
    state.relay.wake()
    return await pipeline_service.public(session=session, pipeline=pipeline, mlflow=state.mlflow)


@router.get("")
async def list_pipelines(
    session: SessionDep, page: PageDep, experiment_id: uuid.UUID | None = None
) -> Page[PipelineSummary]:
    """The pipelines of the caller's groups, newest first, optionally of one experiment."""
    rows, total = await pipeline_repo.page(session=session, page=page, experiment_id=experiment_id)
    return Page(data=[pipeline_service.summary(p) for p in rows], count=total)


@router.get("/{pipeline_id}", responses={404: {"description": "No such pipeline"}})
async def get_pipeline(
    pipeline: PipelineDep, session: SessionDep, state: StateDep
) -> PipelinePublic:
    """The pipeline's status and each stage's status and jobs, upstream first."""
    return await pipeline_service.public(session=session, pipeline=pipeline, mlflow=state.mlflow)


@router.post(
    "/{pipeline_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "No such pipeline"}, 409: {"description": "It has ended"}},
)
async def cancel_pipeline(
    pipeline: PipelineDep, session: SessionDep, state: StateDep, caller: CallerDep
) -> PipelinePublic:
    """Cancel every stage job that has not ended; the pipeline ends cancelled once all have."""
    caller.check_writes(pipeline.group_id, f"pipeline {pipeline.id}")
    cancelled = await pipeline_service.cancel_pipeline(session=session, pipeline_id=pipeline.id)
    await session.commit()
    state.relay.wake()
    return await pipeline_service.public(session=session, pipeline=cancelled, mlflow=state.mlflow)
