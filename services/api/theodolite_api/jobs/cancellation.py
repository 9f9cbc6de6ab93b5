"""Cancelling a job: at once when it is not running; a running one through its worker. The jobs
waiting on it (``depends_on``) are cancelled with it, and theirs in turn."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite import topology
from theodolite.db.tables import Job, utcnow
from theodolite.events import JobCancel, make_event
from theodolite.lifecycle import JobStatus, is_terminal
from theodolite.web.errors import Conflict
from theodolite_api.jobs import transitions
from theodolite_api.jobs.dependencies import waiting_dependants
from theodolite_api.repositories import outbox as outbox_repo

PRODUCER = "api"


async def request_cancel(
    *, session: AsyncSession, job: Job, reason: str = "cancelled by request before it ran"
) -> None:
    """Record the request; end the job now unless a worker runs it; cancel what waits on it.
    Does not commit."""
    status = JobStatus(job.status)
    if is_terminal(status):
        raise Conflict(f"job {job.id} has ended already ({job.status})")
    now = utcnow()
    job.cancel_requested_at = now
    job.updated_at = now
    # Every worker hears it: the one running the job stops it, and a queued job's message is
    # refused at claim time anyway (its status is cancelled from now on).
    outbox_repo.add(
        session=session,
        envelope=make_event(JobCancel(), producer=PRODUCER, job_id=job.id, attempt=job.attempt),
        exchange=topology.CONTROL_EXCHANGE.name,
        routing_key=topology.JOB_CANCEL_ROUTING_KEY,
    )
    for dependant in await waiting_dependants(session=session, job_id=job.id):
        await request_cancel(
            session=session, job=dependant, reason=f"its dependency {job.id} was cancelled"
        )
    if status is JobStatus.RUNNING:
        return
    # At a fenced key: late events of this attempt are stale from now on.
    await transitions.api_change(
        session=session, job=job, to=JobStatus.CANCELLED, at=now, reason=reason
    )
    job.next_attempt_at = None
    job.error = "cancelled by request"
