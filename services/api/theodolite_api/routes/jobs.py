from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.background import BackgroundTask

from theodolite.db.tables import Job
from theodolite.lifecycle import JobStatus
from theodolite.problems import Problem
from theodolite.web.errors import InvalidSubmission, NotFound
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.ownership import JobDep, PageDep, visible
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.jobs.cancellation import request_cancel
from theodolite_api.jobs.submission import submit_job
from theodolite_api.repositories import jobs as job_repo
from theodolite_api.schemas.common import Page
from theodolite_api.schemas.jobs import (
    ArtifactPublic,
    JobCreate,
    JobCreated,
    JobPublic,
    MetricPublic,
)
from theodolite_api.views import job_public

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={422: {"description": "Every problem of the submission; nothing was enqueued"}},
)
async def create_job(
    body: JobCreate,
    session: SessionDep,
    state: StateDep,
    caller: CallerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="The same key and body give the same job; the same key with another "
            "body is refused (422).",
        ),
    ] = None,
) -> JobCreated:
    """Submit a job: validated completely, then queued for a worker of its queue."""
    request_sha256 = hashlib.sha256(
        json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()
    # Keys are the caller's own: another user's key names none of their jobs.
    idempotency_key = None if idempotency_key is None else f"{caller.user_id}:{idempotency_key}"
    job = await _replayed(session, idempotency_key, request_sha256)
    replayed = job is not None
    if job is None:
        job = await submit_job(
            session=session,
            request=body,
            caller=caller,
            settings=state.settings,
            registry=state.registry,
            mlflow=state.mlflow,
        )
        job.idempotency_key, job.request_sha256 = idempotency_key, request_sha256
        try:
            await session.commit()
        except IntegrityError:  # the same key, submitted concurrently: the first one wins
            await session.rollback()
            job = await _replayed(session, idempotency_key, request_sha256)
            if job is None:
                raise
            replayed = True
        state.relay.wake()
    public = await job_public(job, session=session, mlflow=state.mlflow, settings=state.settings)
    # The secret is shown once: a replay of the request does not show it again.
    return JobCreated(
        **public.model_dump(), webhook_secret=None if replayed else job.webhook_secret
    )


async def _replayed(session: AsyncSession, key: str | None, request_sha256: str) -> Job | None:
    """The job an earlier request with this Idempotency-Key created, if any."""
    if key is None:
        return None
    job = await job_repo.get_by_idempotency_key(session=session, key=key)
    if job is not None and job.request_sha256 != request_sha256:
        raise InvalidSubmission(
            "this Idempotency-Key was used with another request body",
            [Problem(field="Idempotency-Key", message="used before with another request body")],
        )
    return job


@router.get("")
async def list_jobs(
    session: SessionDep,
    state: StateDep,
    page: PageDep,
    experiment_id: uuid.UUID | None = None,
    status: JobStatus | None = None,
) -> Page[JobPublic]:
    """The jobs of the caller's groups, newest first, optionally of one experiment and in one
    status."""
    rows, total = await job_repo.page(
        session=session,
        page=page,
        experiment_id=experiment_id,
        status=status.value if status is not None else None,
    )
    data = [
        await job_public(job, session=session, mlflow=state.mlflow, settings=state.settings)
        for job in rows
    ]
    return Page(data=data, count=total)


@router.get("/{job_id}", responses={404: {"description": "No such job"}})
async def get_job(job: JobDep, session: SessionDep, state: StateDep) -> JobPublic:
    """A job: status, every transition, MLflow run and log tail."""
    return await job_public(job, session=session, mlflow=state.mlflow, settings=state.settings)


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "The job has ended already"}, 404: {}},
)
async def cancel_job(
    job_id: uuid.UUID, session: SessionDep, state: StateDep, caller: CallerDep
) -> JobPublic:
    """Cancel a job in any state before its end: a queued job never starts; a running one is
    stopped (its processes terminated, then killed) and ends cancelled within seconds."""
    found = await job_repo.get(session=session, job_id=job_id, for_update=True)
    job = visible(found, caller, f"job {job_id}")
    caller.check_writes(job.group_id, f"job {job_id}")
    await request_cancel(session=session, job=job)
    await session.commit()
    state.relay.wake()
    return await job_public(job, session=session, mlflow=state.mlflow, settings=state.settings)


@router.get("/{job_id}/logs", response_class=PlainTextResponse)
async def get_job_logs(
    job: JobDep,
    session: SessionDep,
    tail: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="Only the last N lines.")
    ] = None,
) -> PlainTextResponse:
    """The job's output (stdout and stderr, interleaved as written)."""
    if tail is not None:
        lines = await job_repo.log_tail(session=session, job_id=job.id, lines=tail)
    else:
        lines = await job_repo.log_lines(session=session, job_id=job.id)
    return PlainTextResponse("".join(f"{line}\n" for line in lines))


@router.get("/{job_id}/metrics")
async def get_job_metrics(job: JobDep, state: StateDep) -> Page[MetricPublic]:
    """Every metric of the job's MLflow run: latest value and full history."""
    if job.mlflow_run_id is None:
        return Page(data=[], count=0)
    metrics = await state.mlflow.metrics(job.mlflow_run_id)
    return Page(data=[MetricPublic.model_validate(m) for m in metrics], count=len(metrics))


@router.get("/{job_id}/artifacts")
async def list_job_artifacts(
    job: JobDep, state: StateDep, request: Request
) -> Page[ArtifactPublic]:
    """Every artifact file of the job's MLflow run, then each model it logged
    (``models/<name>``, with its ``models:/`` URI)."""
    if job.mlflow_run_id is None:
        return Page(data=[], count=0)
    run_id = job.mlflow_run_id
    files = await state.mlflow.artifacts(run_id)
    models = await state.mlflow.logged_models(run_id)
    base = str(request.url_for("download_job_artifact", job_id=job.id, path="")).rstrip("/")
    data = [
        ArtifactPublic(
            path=f["path"],
            size_bytes=f["size_bytes"],
            download_url=f"{base}/{quote(f['path'])}",
            uri=f"runs:/{run_id}/{f['path']}",
        )
        for f in files
    ] + [
        ArtifactPublic(
            path=f"models/{m['name']}", size_bytes=0, download_url=None, kind="model", uri=m["uri"]
        )
        for m in models
    ]
    return Page(data=data, count=len(data))


@router.get(
    "/{job_id}/artifacts/{path:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {}},
)
async def download_job_artifact(job: JobDep, path: str, state: StateDep) -> StreamingResponse:
    """Download one artifact, streamed from MLflow."""
    if not path or ".." in PurePosixPath(path).parts or path.startswith("/"):
        raise InvalidSubmission(
            "bad artifact path", [Problem(field="path", message="must be relative, without '..'")]
        )
    if job.mlflow_run_id is None:
        raise NotFound(f"job {job.id} has no MLflow run yet")
    response, chunks = await state.mlflow.open_artifact(job.mlflow_run_id, path)
    filename = PurePosixPath(path).name
    return StreamingResponse(
        chunks,
        media_type=response.headers.get("content-type", "application/octet-stream"),
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        # Also when the client goes away mid-download: the MLflow connection goes back.
        background=BackgroundTask(response.aclose),
    )
