"""Consumes the workers' job events (``events.api``): records every transition and log line, drops
stale and duplicate events by their per-job ``(attempt, seq)``.

Status changes go through ``jobs.transitions`` (which announces them as ``job.status_changed``);
this consumer hears its own announcements too (``job.#``) and leaves them alone. Heartbeats and
plugin announcements have their own queue and consumer (``consumers.worker_events``).

Only the worker holding an attempt's claim speaks for it: the consumer checks each message's
signature (``theodolite.signing``) and applies a job event only when its signer is the worker the
claim granted the job's current attempt to; its ``attempt`` must be that attempt, and its ``seq``
stays below the api's fence. Anything else changes nothing.

Events are applied one at a time, so none may jam the queue: text PostgreSQL cannot store (NUL)
is replaced before it is written, and a database error that would recur dead-letters the event at
once (``consumers.failures``); only transient ones are retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.consumers import Consumer, Delivery
from theodolite.db.tables import Job, utcnow
from theodolite.events import (
    Envelope,
    JobCancelled,
    JobFailed,
    JobLog,
    JobProgress,
    JobReleased,
    JobStarted,
    JobStatusChanged,
    JobSucceeded,
    JobTimedOut,
    WorkerHeartbeat,
    WorkerPlugins,
)
from theodolite.lifecycle import IllegalTransition, JobStatus
from theodolite.signing import KeyLookup
from theodolite_api.consumers.failures import database_failure_outcome
from theodolite_api.consumers.worker_events import WorkerEventConsumer
from theodolite_api.jobs import transitions
from theodolite_api.jobs.claims import from_claim_holder
from theodolite_api.jobs.retries import may_retry, requeue
from theodolite_api.observability import job_timing
from theodolite_api.repositories import jobs as job_repo

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0
# A job's stored log (what GET /jobs/{id}/logs and the streams replay) is cut at this many lines
# unless the api is told otherwise (THEODOLITE_API_MAX_LOG_LINES).
MAX_LOG_LINES = 100_000

TARGET_STATUS: dict[type[BaseModel], JobStatus] = {
    JobSucceeded: JobStatus.SUCCEEDED,
    JobFailed: JobStatus.FAILED,
    JobCancelled: JobStatus.CANCELLED,
    JobTimedOut: JobStatus.TIMED_OUT,
}
JOB_EVENTS: tuple[type[BaseModel], ...] = (
    JobStarted,
    JobLog,
    JobProgress,
    JobReleased,
    *TARGET_STATUS,
)


class JobEventConsumer:
    """The handlers; ``consumer`` is what the broker is given. ``on_transition`` is called after
    a commit that changed a job's status (its ``job.status_changed`` waits in the outbox)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        signers: KeyLookup,
        on_transition: Callable[[], None] = lambda: None,
        max_log_lines: int = MAX_LOG_LINES,
    ) -> None:
        self._sessions = sessions
        self._on_transition = on_transition
        self._max_log_lines = max_log_lines
        # A transient failure (the database restarting) is retried, and after the delivery limit
        # the message ends in events.api.dead; one that would recur goes there at once.
        self.consumer = Consumer(
            "api events",
            retry_delay_s=RETRY_DELAY_S,
            on_error=database_failure_outcome,
            signers=signers,
        )
        # Worker events still on this queue (sent before they had their own, or routed here by
        # an older replica's binding during a rolling upgrade) are applied as there: both are
        # idempotent, so a copy on each queue does no harm.
        left_over = WorkerEventConsumer(sessions=sessions, signers=signers)
        self.consumer.register(WorkerHeartbeat, left_over.on_heartbeat)
        self.consumer.register(WorkerPlugins, left_over.on_plugins)
        self.consumer.register(JobStatusChanged, self.on_own_status_changed)
        for payload_type in JOB_EVENTS:
            self.consumer.register(payload_type, self.on_job_event)

    async def on_own_status_changed(
        self, envelope: Envelope, payload: JobStatusChanged, delivery: Delivery
    ) -> None:
        """The api's own announcement (recorded already, when it was written): nothing to do."""

    async def on_job_event(
        self, envelope: Envelope, payload: BaseModel, delivery: Delivery
    ) -> None:
        if envelope.job_id is None:
            log.warning("%s %s without a job id dropped", envelope.type, envelope.id)
            return
        if _JSON_NUL in delivery.message.body:
            payload = _storable(payload)
            log.warning(
                "%s %s for job %s: NUL replaced", envelope.type, envelope.id, envelope.job_id
            )
        async with self._sessions() as session:
            job = await job_repo.get(session=session, job_id=envelope.job_id, for_update=True)
            if job is None:
                log.warning("event %s for unknown job %s dropped", envelope.type, envelope.job_id)
                return
            if not from_claim_holder(job, envelope, delivery.signer) or _fenced(envelope):
                log.warning(
                    "%s %s for job %s (attempt %s) from %s, who does not hold its claim: dropped",
                    envelope.type,
                    envelope.id,
                    job.id,
                    envelope.attempt,
                    delivery.signer,
                )
                return
            if (envelope.attempt, envelope.seq) <= (job.attempt, job.last_seq):
                if not await _late_log_line(session, job, envelope, payload, self._max_log_lines):
                    log.debug("stale %s for job %s dropped", envelope.type, job.id)
                    return
                await session.commit()
                return
            status_before = job.status
            await _apply_job_event(session, job, envelope, payload, self._max_log_lines)
            changed = job.status != status_before
            timing = (
                await job_timing.measure(session=session, job=job, payload=payload)
                if changed or isinstance(payload, JobStarted)
                else None
            )
            await session.commit()
        if timing is not None:
            timing.observe()
        if changed:
            self._on_transition()


def _fenced(envelope: Envelope) -> bool:
    """A sequence number in the api's own range: a worker cannot fence the api out."""
    return envelope.seq >= transitions.ATTEMPT_FENCE


# PostgreSQL text and jsonb cannot hold NUL. Workers escape it in job output; an event that still
# carries one (an older worker, another producer) has it replaced by U+FFFD, the replacement
# character, rather than refused by the database. (A lone surrogate never gets here: the JSON
# decoder refuses it, and the event is dead-lettered as undecodable.)
_JSON_NUL = b"\\u0000"


def _storable(payload: BaseModel) -> BaseModel:
    return type(payload).model_validate(_without_nul(payload.model_dump()))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    return value


async def _store_lines(
    session: AsyncSession, job: Job, envelope: Envelope, logged: JobLog, max_log_lines: int
) -> None:
    await job_repo.add_log_chunk(
        session=session,
        job_id=job.id,
        attempt=envelope.attempt,
        seq=envelope.seq,
        lines=logged.lines,
        max_lines=max_log_lines,
    )


async def _late_log_line(
    session: AsyncSession, job: Job, envelope: Envelope, payload: BaseModel, max_log_lines: int
) -> bool:
    """Record a log chunk that comes after a later event of its own attempt (competing
    replicas may apply one job's events out of order). Only while that attempt is the job's
    and the api has not taken it over (fenced), and only once per ``(attempt, seq)``."""
    if not isinstance(payload, JobLog) or not payload.lines:
        return False
    if envelope.attempt != job.attempt or job.last_seq >= transitions.ATTEMPT_FENCE:
        return False
    if await job_repo.has_log_chunk(
        session=session, job_id=job.id, attempt=envelope.attempt, seq=envelope.seq
    ):
        return False
    await _store_lines(session, job, envelope, payload, max_log_lines)
    return True


async def _apply_job_event(
    session: AsyncSession, job: Job, envelope: Envelope, payload: BaseModel, max_log_lines: int
) -> None:
    job.attempt, job.last_seq = envelope.attempt, envelope.seq
    job.updated_at = utcnow()
    if isinstance(payload, JobProgress):
        job.progress = {**payload.model_dump(mode="json"), "at": envelope.occurred_at.isoformat()}
        return
    if isinstance(payload, JobLog):
        if payload.lines:
            await _store_lines(session, job, envelope, payload, max_log_lines)
        return
    if isinstance(payload, JobStarted):
        # The claim made the attempt running (before the worker sent anything) and named its
        # worker: only the run is new.
        job.mlflow_run_id = payload.mlflow_run_id
        return
    if await _retried(session, job, envelope, payload):
        return
    target = TARGET_STATUS.get(type(payload))
    if target is None:
        return
    detail = _outcome_detail(job, payload)
    try:
        await transitions.change_status(
            session=session,
            job=job,
            to=target,
            at=envelope.occurred_at,
            reason=detail,
            attempt=envelope.attempt,
            seq=envelope.seq,
        )
    except IllegalTransition as exc:
        log.warning("job %s: %s (event %s dropped)", job.id, exc, envelope.id)


def _outcome_detail(job: Job, payload: BaseModel) -> str | None:
    """Copy what the event says onto the job; the transition's detail."""
    run_id = getattr(payload, "mlflow_run_id", None)
    job.mlflow_run_id = run_id or job.mlflow_run_id
    if isinstance(payload, JobSucceeded):
        job.exit_code = payload.exit_code
        return None
    if isinstance(payload, JobFailed):
        job.exit_code = payload.exit_code
        job.error = payload.reason
        return payload.reason
    if isinstance(payload, JobCancelled):
        job.error = "cancelled by request"
        return "stopped by its worker after a cancel request"
    if isinstance(payload, JobTimedOut):
        job.error = f"timed out after {payload.timeout_s} s"
        return job.error
    return None


async def _retried(session: AsyncSession, job: Job, envelope: Envelope, payload: BaseModel) -> bool:
    """Back to queued instead of ending: a handed-back job, or a failure with retries left."""
    if job.status != JobStatus.RUNNING.value:
        return False
    if isinstance(payload, JobReleased):
        reason, counts = payload.reason, False
    elif isinstance(payload, JobFailed) and (payload.infrastructure or job.retry_on_failure):
        if job.cancel_requested_at is not None or not await may_retry(session=session, job=job):
            return False
        reason, counts = payload.reason, True
    else:
        return False
    job.mlflow_run_id = getattr(payload, "mlflow_run_id", None) or job.mlflow_run_id
    await requeue(
        session=session,
        job=job,
        now=envelope.occurred_at,
        reason=reason,
        counts_as_retry=counts,
        attempt=envelope.attempt,
        seq=envelope.seq,
    )
    return True
