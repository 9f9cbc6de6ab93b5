"""Consumes job and worker events: records every transition and log line, drops stale and
duplicate events by their per-job ``(attempt, seq)``."""

from __future__ import annotations

import asyncio
import logging

from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job, utcnow
from theodolite.events import (
    Envelope,
    JobCancelled,
    JobFailed,
    JobLog,
    JobProgress,
    JobReleased,
    JobStarted,
    JobSucceeded,
    JobTimedOut,
    UndecodableEvent,
    WorkerHeartbeat,
    WorkerPlugins,
    decode_event,
)
from theodolite.lifecycle import IllegalTransition, JobStatus, transition_path
from theodolite_api.repositories import jobs as job_repo
from theodolite_api.repositories import plugins as plugin_repo
from theodolite_api.repositories import queues as queue_repo
from theodolite_api.jobs.retries import may_retry, requeue

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


class JobEventConsumer:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope, payload = decode_event(message.body)
        except UndecodableEvent as exc:
            log.error("dead-lettering undecodable event %s: %s", message.message_id, exc)
            await message.reject(requeue=False)
            return
        try:
            await self.apply(envelope, payload)
        except Exception:
            log.exception("could not apply %s %s; will retry", envelope.type, envelope.id)
            await asyncio.sleep(RETRY_DELAY_S)
            # Requeue counts a delivery: a message that always fails ends in the dead-letter
            # queue after the delivery limit instead of looping.
            await message.nack(requeue=True)
            return
        await message.ack()

    async def apply(self, envelope: Envelope, payload: BaseModel) -> None:
        async with self._sessions() as session:
            if isinstance(payload, WorkerHeartbeat):
                await queue_repo.record_heartbeat(
                    session=session, heartbeat=payload, at=envelope.occurred_at
                )
                await job_repo.record_job_heartbeats(
                    session=session,
                    worker_id=payload.worker_id,
                    job_ids=payload.running_jobs,
                    at=envelope.occurred_at,
                )
            elif isinstance(payload, WorkerPlugins):
                await plugin_repo.record_announcement(
                    session=session, announcement=payload, at=envelope.occurred_at
                )
            elif envelope.job_id is not None:
                job = await job_repo.get(session=session, job_id=envelope.job_id, for_update=True)
                if job is None:
                    log.warning(
                        "event %s for unknown job %s dropped", envelope.type, envelope.job_id
                    )
                    return
                if (envelope.attempt, envelope.seq) <= (job.attempt, job.last_seq):
                    log.debug("stale %s for job %s dropped", envelope.type, job.id)
                    return
                await _apply_job_event(session, job, envelope, payload)
            await session.commit()


TARGET_STATUS: dict[type[BaseModel], JobStatus] = {
    JobStarted: JobStatus.RUNNING,
    JobSucceeded: JobStatus.SUCCEEDED,
    JobFailed: JobStatus.FAILED,
    JobCancelled: JobStatus.CANCELLED,
    JobTimedOut: JobStatus.TIMED_OUT,
}


async def _apply_job_event(
    session: AsyncSession, job: Job, envelope: Envelope, payload: BaseModel
) -> None:
    job.attempt, job.last_seq = envelope.attempt, envelope.seq
    job.updated_at = utcnow()
    if isinstance(payload, JobProgress):
        job.progress = {**payload.model_dump(mode="json"), "at": envelope.occurred_at.isoformat()}
        return
    if isinstance(payload, JobLog):
        if payload.lines:
            job_repo.add_log_chunk(
                session=session,
                job_id=job.id,
                attempt=envelope.attempt,
                seq=envelope.seq,
                lines=payload.lines,
            )
        return
    if isinstance(payload, JobStarted) and job.status == JobStatus.RUNNING.value:
        # Claimed already (the claim recorded the transition): only the run is new.
        job.worker_id = payload.worker_id
        job.mlflow_run_id = payload.mlflow_run_id
        return
    if await _retried(session, job, envelope, payload):
        return
    target = TARGET_STATUS.get(type(payload))
    if target is None:
        return
    try:
        path = transition_path(JobStatus(job.status), target)
    except IllegalTransition as exc:
        log.warning("job %s: %s (event %s dropped)", job.id, exc, envelope.id)
        return
    detail = _record_outcome(job, payload)
    for status in path:
        job_repo.add_transition(
            session=session,
            job_id=job.id,
            status=status.value,
            at=envelope.occurred_at,
            detail=detail if status is target else None,
            attempt=envelope.attempt,
            seq=envelope.seq,
        )
    job.status = target.value


def _record_outcome(job: Job, payload: BaseModel) -> str | None:
    """Copy what the event says onto the job; the transition's detail."""
    run_id = getattr(payload, "mlflow_run_id", None)
    job.mlflow_run_id = run_id or job.mlflow_run_id
    if isinstance(payload, JobStarted):
        job.worker_id = payload.worker_id
        return f"worker {payload.worker_id}"
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
