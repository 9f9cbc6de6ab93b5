"""Queue-wait and run-time histograms, measured from a job's own history (``job_transitions``)
where the api records what its worker said: read in the transaction that applies the event,
observed once that transaction has committed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job, JobTransition
from theodolite.events import JobStarted
from theodolite.lifecycle import TERMINAL_STATUSES, JobStatus
from theodolite_api.observability.metrics import JOB_DURATION, JOB_QUEUE_WAIT

# A job's latest transitions: enough to find its attempt's running and queued ones.
_RECENT = 8


@dataclass(frozen=True)
class Timing:
    """One observation, waiting for its commit."""

    queue: str
    status: str | None  # the terminal status (run time), None for a start (queue wait)
    seconds: float

    def observe(self) -> None:
        if self.status is None:
            JOB_QUEUE_WAIT.labels(self.queue).observe(self.seconds)
        else:
            JOB_DURATION.labels(self.queue, self.status).observe(self.seconds)


def _latest(history: list[JobTransition], status: JobStatus, before: int) -> datetime | None:
    return next((t.at for t in history[before:] if t.status == status.value), None)


async def measure(*, session: AsyncSession, job: Job, payload: BaseModel) -> Timing | None:
    """What this event shows (a start: how long the attempt was queued; an end: how long it
    ran), or None. Called after the event was applied, so its transition is in the history."""
    started = isinstance(payload, JobStarted)
    if not started and JobStatus(job.status) not in TERMINAL_STATUSES:
        return None
    rows = await session.exec(
        select(JobTransition)
        .where(col(JobTransition.job_id) == job.id)
        .order_by(col(JobTransition.id).desc())
        .limit(_RECENT)
    )
    history = list(rows)  # newest first
    running = next((i for i, t in enumerate(history) if t.status == JobStatus.RUNNING.value), None)
    if running is None:
        return None  # ended without running (cancelled while queued)
    if started:
        queued = _latest(history, JobStatus.QUEUED, running + 1)
        if queued is None:
            return None
        return Timing(job.queue, None, (history[running].at - queued).total_seconds())
    if history[0].status != job.status:
        return None
    return Timing(job.queue, job.status, (history[0].at - history[running].at).total_seconds())
