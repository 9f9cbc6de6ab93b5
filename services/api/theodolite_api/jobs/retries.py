"""Retries: a job that failed for an infrastructure reason (or, when asked, by its own exit)
goes back to ``queued`` and its next attempt is published after an exponential backoff with
jitter, by the reaper. Handing back by a worker shutting down costs no retry."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job, JobTransition
from theodolite.lifecycle import JobStatus
from theodolite_api.jobs import transitions

RETRY_DETAIL = "retry"
HANDBACK_DETAIL = "handed back"


async def retries_used(*, session: AsyncSession, job: Job) -> int:
    count = await session.exec(
        select(func.count())
        .select_from(JobTransition)
        .where(
            JobTransition.job_id == job.id,
            JobTransition.status == JobStatus.QUEUED.value,
            col(JobTransition.detail).startswith(RETRY_DETAIL),
        )
    )
    return int(count.one())


def backoff_s(job: Job, retry_number: int) -> float:
    """Exponential in the number of retries so far, with full jitter on half of it."""
    base = job.retry_backoff_s * 2 ** max(0, retry_number - 1)
    return base * (0.5 + random.random() / 2)


async def requeue(
    *,
    session: AsyncSession,
    job: Job,
    now: datetime,
    reason: str,
    counts_as_retry: bool,
    attempt: int,
    seq: int,
) -> None:
    """Move the job back to queued; the reaper publishes its next attempt when it is due."""
    retry_number = await retries_used(session=session, job=job) + 1
    delay = backoff_s(job, retry_number) if counts_as_retry else 0.0
    prefix = (
        f"{RETRY_DETAIL} {retry_number}/{job.max_retries}" if counts_as_retry else HANDBACK_DETAIL
    )
    await transitions.change_status(
        session=session,
        job=job,
        to=JobStatus.QUEUED,
        at=now,
        reason=f"{prefix} in {delay:.1f} s: {reason}",
        attempt=attempt,
        seq=seq,
    )
    job.worker_id = None
    job.next_attempt_at = now + timedelta(seconds=delay)


async def may_retry(*, session: AsyncSession, job: Job) -> bool:
    return await retries_used(session=session, job=job) < job.max_retries
