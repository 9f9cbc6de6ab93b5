from __future__ import annotations

import uuid
from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.background import BackgroundTask

from theodolite.db.tables import Job
from theodolite.lifecycle import JobStatus
from theodolite.problems import Problem
from theodolite.web.errors import InvalidSubmission, NotFound
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import jobs as job_repo
from theodolite_api.schemas.common import Limit, Offset, Page
from theodolite_api.schemas.jobs import (
    ArtifactPublic,
    JobCreate,
    JobCreated,
    JobPublic,
    MetricPublic,
)
from theodolite_api.submission import submit_job
from theodolite_api.views import job_public

router = APIRouter(prefix="/jobs", tags=["jobs"])


async def _job_or_404(session: AsyncSession, job_id: uuid.UUID) -> Job:
    job = await job_repo.get(session=session, job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={422: {"description": "Every problem of the submission; nothing was enqueued"}},
)
async def create_job(body: JobCreate, session: SessionDep, state: StateDep) -> JobCreated:
    """Submit a job: validated completely, then queued for a worker of its queue."""
    job = await submit_job(
        session=session, request=body, settings=state.settings, registry=state.registry
    )
    await session.commit()
    state.relay.notify()
    public = await job_public(
        job, session=session, mlflow=state.mlflow, log_tail_lines=state.settings.log_tail_lines
    )
    return JobCreated(**public.model_dump(), webhook_secret=job.webhook_secret)


@router.get("")
async def list_jobs(
    session: SessionDep,
    state: StateDep,
    experiment_id: uuid.UUID | None = None,
    status: JobStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[JobPublic]:
    """Jobs, newest first, optionally of one experiment and in one status."""
    rows, total = await job_repo.page(
        session=session,
        limit=limit,
        offset=offset,
        experiment_id=experiment_id,
        status=status.value if status is not None else None,
    )
    data = [
        await job_public(
            job, session=session, mlflow=state.mlflow, log_tail_lines=state.settings.log_tail_lines
        )
        for job in rows
    ]
    return Page(data=data, count=total)


@router.get("/{job_id}", responses={404: {"description": "No such job"}})
async def get_job(job_id: uuid.UUID, session: SessionDep, state: StateDep) -> JobPublic:
    """A job: status, every transition, MLflow run and log tail."""
    job = await _job_or_404(session, job_id)
    return await job_public(
        job, session=session, mlflow=state.mlflow, log_tail_lines=state.settings.log_tail_lines
    )


@router.get("/{job_id}/logs", response_class=PlainTextResponse)
async def get_job_logs(
    job_id: uuid.UUID,
    session: SessionDep,
    tail: Annotated[int | None, Query(ge=1, description="Only the last N lines.")] = None,
) -> PlainTextResponse:
    """The job's output (stdout and stderr, interleaved as written)."""
    await _job_or_404(session, job_id)
    if tail is not None:
        lines = await job_repo.log_tail(session=session, job_id=job_id, lines=tail)
    else:
        lines = await job_repo.log_lines(session=session, job_id=job_id)
    return PlainTextResponse("".join(f"{line}\n" for line in lines))


@router.get("/{job_id}/metrics")
async def get_job_metrics(
    job_id: uuid.UUID, session: SessionDep, state: StateDep
) -> Page[MetricPublic]:
    """Every metric of the job's MLflow run: latest value and full history."""
    job = await _job_or_404(session, job_id)
    if job.mlflow_run_id is None:
        return Page(data=[], count=0)
    metrics = await state.mlflow.metrics(job.mlflow_run_id)
    return Page(data=[MetricPublic.model_validate(m) for m in metrics], count=len(metrics))


@router.get("/{job_id}/artifacts")
async def list_job_artifacts(
    job_id: uuid.UUID, session: SessionDep, state: StateDep, request: Request
) -> Page[ArtifactPublic]:
    """Every artifact file of the job's MLflow run."""
    job = await _job_or_404(session, job_id)
    if job.mlflow_run_id is None:
        return Page(data=[], count=0)
    files = await state.mlflow.artifacts(job.mlflow_run_id)
    base = str(request.url_for("download_job_artifact", job_id=job_id, path="")).rstrip("/")
    data = [
        ArtifactPublic(
            path=f["path"], size_bytes=f["size_bytes"], download_url=f"{base}/{quote(f['path'])}"
        )
        for f in files
    ]
    return Page(data=data, count=len(data))


@router.get(
    "/{job_id}/artifacts/{path:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {}},
)
async def download_job_artifact(
    job_id: uuid.UUID, path: str, session: SessionDep, state: StateDep
) -> StreamingResponse:
    """Download one artifact, streamed from MLflow."""
    if not path or ".." in PurePosixPath(path).parts or path.startswith("/"):
        raise InvalidSubmission(
            "bad artifact path", [Problem(field="path", message="must be relative, without '..'")]
        )
    job = await _job_or_404(session, job_id)
    if job.mlflow_run_id is None:
        raise NotFound(f"job {job_id} has no MLflow run yet")
    response, chunks = await state.mlflow.open_artifact(job.mlflow_run_id, path)
    filename = PurePosixPath(path).name
    return StreamingResponse(
        chunks,
        media_type=response.headers.get("content-type", "application/octet-stream"),
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        # Also when the client goes away mid-download: the MLflow connection goes back.
        background=BackgroundTask(response.aclose),
    )
