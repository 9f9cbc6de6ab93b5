"""Claims: a worker asks to run an attempt, and the api is the one arbiter of who runs what. The
claim is the one place an attempt becomes ``running``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job, utcnow
from theodolite.events import Envelope, JobSubmitted
from theodolite.lifecycle import JobStatus
from theodolite.signing import worker_signer
from theodolite_api.jobs import transitions
from theodolite_api.jobs.messages import differences, recorded_message
from theodolite_api.repositories import jobs as job_repo


def from_claim_holder(job: Job, envelope: Envelope, signer: str | None) -> bool:
    """An event about the job's current attempt, signed by the worker the claim granted it to:
    the only events about a job the api believes (``attempt`` is checked, not taken)."""
    return (
        job.worker_id is not None
        and signer == worker_signer(job.worker_id)
        and envelope.attempt == job.attempt
    )


@dataclass(frozen=True)
class ClaimAnswer:
    claimed: bool
    http_status: int = 200
    reason: str | None = None
    attempt: int | None = None


async def claim_attempt(
    *,
    session: AsyncSession,
    job_id: uuid.UUID,
    attempt: int,
    worker_id: str,
    submitted: JobSubmitted | None = None,
) -> ClaimAnswer:
    """Grant the attempt to ``worker_id`` (an attempt runs at most once at a time; a cancelled
    or stale one never starts). ``submitted`` is the job message the worker holds: it must be
    the api's, field for field (workers always send it; the api's own callers need not). Does
    not commit."""
    job = await job_repo.get(session=session, job_id=job_id, for_update=True)
    if job is None:
        return ClaimAnswer(claimed=False, http_status=404, reason="no such job")
    if submitted is not None:
        recorded = await recorded_message(session, job)
        if recorded is None:
            return ClaimAnswer(claimed=False, http_status=409, reason="the job's rows are gone")
        if differing := differences(submitted, recorded):
            reason = f"the job message is not the api's ({', '.join(differing)} differ)"
            return ClaimAnswer(claimed=False, http_status=409, reason=reason)
    if job.attempt != attempt or job.next_attempt_at is not None:
        reason = f"attempt {attempt} is stale (current attempt {job.attempt})"
        return ClaimAnswer(claimed=False, http_status=409, reason=reason)
    if job.status == JobStatus.RUNNING.value and job.worker_id == worker_id:
        return ClaimAnswer(claimed=True, attempt=job.attempt)  # asked again
    if job.status != JobStatus.QUEUED.value:
        where = f" on {job.worker_id}" if job.worker_id else ""
        return ClaimAnswer(claimed=False, http_status=409, reason=f"the job is {job.status}{where}")
    now = utcnow()
    # At (attempt, 0): before every event the worker sends for this attempt (they start at 1).
    await transitions.change_status(
        session=session,
        job=job,
        to=JobStatus.RUNNING,
        at=now,
        reason=f"worker {worker_id}",
        attempt=job.attempt,
        seq=0,
    )
    job.worker_id = worker_id
    job.last_heartbeat_at = now
    return ClaimAnswer(claimed=True, attempt=job.attempt)
