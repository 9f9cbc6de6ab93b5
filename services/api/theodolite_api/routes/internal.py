"""Service-to-service routes (not in the public API docs)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from theodolite.db.tables import utcnow
from theodolite.lifecycle import JobStatus
from theodolite_api.deps import SessionDep
from theodolite_api.repositories import jobs as job_repo

router = APIRouter(prefix="/internal", include_in_schema=False)


class ClaimRequest(BaseModel):
    attempt: int
    worker_id: str


@router.post("/jobs/{job_id}/claim")
async def claim_job(job_id: uuid.UUID, body: ClaimRequest, session: SessionDep) -> JSONResponse:
    """A worker asks to run an attempt. The one arbiter of who runs what: an attempt runs at
    most once at a time, a cancelled or stale one never starts."""
    job = await job_repo.get(session=session, job_id=job_id, for_update=True)
    if job is None:
        return JSONResponse({"claimed": False, "reason": "no such job"}, status_code=404)
    if job.attempt != body.attempt or job.next_attempt_at is not None:
        reason = f"attempt {body.attempt} is stale (current attempt {job.attempt})"
        return JSONResponse({"claimed": False, "reason": reason}, status_code=409)
    if job.status == JobStatus.RUNNING.value and job.worker_id == body.worker_id:
        return JSONResponse({"claimed": True, "attempt": job.attempt})  # asked again
    if job.status != JobStatus.QUEUED.value:
        where = f" on {job.worker_id}" if job.worker_id else ""
        return JSONResponse(
            {"claimed": False, "reason": f"the job is {job.status}{where}"}, status_code=409
        )
    now = utcnow()
    job_repo.add_transition(
        session=session,
        job_id=job.id,
        status=JobStatus.RUNNING.value,
        at=now,
        detail=f"worker {body.worker_id}",
        attempt=job.attempt,
        seq=0,
    )
    job.status = JobStatus.RUNNING.value
    job.worker_id = body.worker_id
    job.last_heartbeat_at = now
    job.updated_at = now
    await session.commit()
    return JSONResponse({"claimed": True, "attempt": job.attempt})
