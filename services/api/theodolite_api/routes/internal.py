"""Service-to-service routes, served only by the internal listener (``create_internal_app``) and
only to authenticated workers."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from theodolite.events import JobSubmitted
from theodolite_api.auth.workers import WorkerDep
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.jobs.claims import claim_attempt

router = APIRouter(prefix="/internal", include_in_schema=False)


class ClaimRequest(BaseModel):
    attempt: int
    worker_id: str
    # The job message the worker received: a claim runs only the api's own (a message forged
    # on the broker for a real job is refused).
    submitted: JobSubmitted


@router.post("/jobs/{job_id}/claim")
async def claim_job(
    job_id: uuid.UUID, body: ClaimRequest, worker: WorkerDep, session: SessionDep, state: StateDep
) -> JSONResponse:
    """A worker asks to run an attempt. The one arbiter of who runs what: an attempt runs at
    most once at a time, a cancelled or stale one never starts."""
    if body.worker_id != worker:  # a worker claims only for itself
        return JSONResponse(
            {"claimed": False, "reason": f"the token is {worker!r}'s, not {body.worker_id!r}'s"},
            status_code=403,
        )
    answer = await claim_attempt(
        session=session,
        job_id=job_id,
        attempt=body.attempt,
        worker_id=body.worker_id,
        submitted=body.submitted,
    )
    if not answer.claimed:
        return JSONResponse(
            {"claimed": False, "reason": answer.reason}, status_code=answer.http_status
        )
    await session.commit()
    state.relay.wake()  # the job.status_changed of ``running`` goes out now
    return JSONResponse({"claimed": True, "attempt": answer.attempt})
