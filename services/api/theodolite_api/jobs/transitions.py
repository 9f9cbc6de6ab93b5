"""The one place that changes a job's status.

Every change is checked against ``theodolite.lifecycle``, written as a row of the job's history
(``job_transitions``), set on the job, and announced as ``job.status_changed`` in the outbox, all
in the caller's transaction: the notifications (webhooks, event streams) hear of exactly the
transitions that committed, and of each one once per publish. The caller holds the job's row lock
(``FOR UPDATE``) or created the job, so one job's transitions commit one after the other and their
ids grow in that order. Nothing here commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite import topology
from theodolite.db.tables import Job, JobTransition
from theodolite.events import JobStatusChanged, make_event
from theodolite.lifecycle import JobStatus, check_transition
from theodolite_api.repositories import outbox as outbox_repo
from theodolite_api.repositories import rows

PRODUCER = "api"

# The api takes an attempt over (lost, cancelled while queued...): it records its own
# transitions at seq numbers no worker reaches, so late events of that attempt are stale.
ATTEMPT_FENCE = 1_000_000_000


def api_key(job: Job) -> tuple[int, int]:
    """The ``(attempt, seq)`` of a transition the api itself decides, fencing the attempt: every
    event its worker may still send is older from now on, and each call gives a later key."""
    job.last_seq = max(job.last_seq, ATTEMPT_FENCE - 1) + 1
    return job.attempt, job.last_seq


async def record_submission(
    *,
    session: AsyncSession,
    job: Job,
    at: datetime,
    reason: str | None = None,
    status: JobStatus = JobStatus.QUEUED,
) -> JobTransition:
    """A new job enters the machine: its row is added ``queued`` (or ``waiting``, for its
    dependencies) at attempt 1, with its first transition at ``(1, 0)`` and no status before it."""
    if status not in (JobStatus.QUEUED, JobStatus.WAITING):
        raise ValueError(f"a job enters as queued or waiting, not {status.value}")
    job.status = status.value
    job.attempt = 1
    job.last_seq = 0
    await rows.insert(session=session, row=job)  # flushed: the transition refers to its row
    row = JobTransition(
        job_id=job.id,
        status=job.status,
        at=at,
        detail=reason,
        attempt=job.attempt,
        seq=0,
    )
    return await _record(session=session, job=job, from_status=None, transition=row)


async def change_status(
    *,
    session: AsyncSession,
    job: Job,
    to: JobStatus,
    at: datetime,
    reason: str | None,
    attempt: int,
    seq: int,
) -> JobTransition:
    """Move ``job`` to ``to`` (IllegalTransition if lifecycle forbids it), recorded at the
    ``(attempt, seq)`` of what caused it."""
    current = JobStatus(job.status)
    check_transition(current, to)
    row = JobTransition(
        job_id=job.id, status=to.value, at=at, detail=reason, attempt=attempt, seq=seq
    )
    return await _record(session=session, job=job, from_status=current, transition=row)


async def api_change(
    *, session: AsyncSession, job: Job, to: JobStatus, at: datetime, reason: str
) -> JobTransition:
    """``change_status`` for a transition the api itself decides, at a fresh ``api_key``."""
    attempt, seq = api_key(job)
    return await change_status(
        session=session, job=job, to=to, at=at, reason=reason, attempt=attempt, seq=seq
    )


async def _record(
    *, session: AsyncSession, job: Job, from_status: JobStatus | None, transition: JobTransition
) -> JobTransition:
    session.add(transition)
    await session.flush()  # the event names the row: its id is needed now
    assert transition.id is not None
    job.status = transition.status
    job.updated_at = transition.at
    event = make_event(
        JobStatusChanged(
            experiment_id=job.experiment_id,
            transition_id=transition.id,
            from_status=None if from_status is None else from_status.value,
            to_status=transition.status,
            at=transition.at,
            reason=transition.detail,
        ),
        producer=PRODUCER,
        job_id=job.id,
        attempt=transition.attempt,
        seq=transition.seq,
    )
    outbox_repo.add(
        session=session,
        envelope=event,
        exchange=topology.EVENTS_EXCHANGE.name,
        routing_key=topology.STATUS_CHANGED_ROUTING_KEY,
    )
    return transition
