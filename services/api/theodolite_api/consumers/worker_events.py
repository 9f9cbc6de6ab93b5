"""Consumes the workers' own events (``events.api.workers``): heartbeats and plugin announcements.

They have a queue and a consumer of their own, apart from the job events (``events.api``, applied
one at a time and in order): a slow or stuck job event never delays a heartbeat, so the reaper
does not call a healthy worker's jobs lost. Both are idempotent (a heartbeat never moves a
``last_seen_at`` backwards), so they may be applied concurrently, and twice.

A worker speaks only for itself: an event whose ``worker_id`` is not its signer's is dropped.
"""

from __future__ import annotations

import logging

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.consumers import Consumer, Delivery
from theodolite.events import Envelope, WorkerHeartbeat, WorkerPlugins
from theodolite.signing import KeyLookup, worker_signer
from theodolite_api.consumers.failures import database_failure_outcome
from theodolite_api.repositories import jobs as job_repo
from theodolite_api.repositories import plugins as plugin_repo
from theodolite_api.repositories import queues as queue_repo

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0
# Longest a heartbeat waits for a job row that a job event being applied holds locked. The next
# heartbeat (seconds later) tries again; the reaper skips locked rows, so that job is not lost
# meanwhile.
JOB_ROW_LOCK_TIMEOUT_MS = 1000
LOCK_NOT_AVAILABLE = "55P03"


def _own(envelope: Envelope, worker_id: str, delivery: Delivery) -> bool:
    if delivery.signer == worker_signer(worker_id):
        return True
    log.warning(
        "%s %s about worker %s signed by %s: dropped",
        envelope.type,
        envelope.id,
        worker_id,
        delivery.signer,
    )
    return False


class WorkerEventConsumer:
    """The handlers; ``consumer`` is what the broker is given, with ``prefetch``."""

    # Worker events in hand at once: one worker's slow heartbeat does not hold up the others'.
    prefetch = 8

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], signers: KeyLookup) -> None:
        self._sessions = sessions
        self.consumer = Consumer(
            "api worker events",
            retry_delay_s=RETRY_DELAY_S,
            on_error=database_failure_outcome,
            signers=signers,
        )
        self.consumer.register(WorkerHeartbeat, self.on_heartbeat)
        self.consumer.register(WorkerPlugins, self.on_plugins)

    async def on_heartbeat(
        self, envelope: Envelope, payload: WorkerHeartbeat, delivery: Delivery
    ) -> None:
        if not _own(envelope, payload.worker_id, delivery):
            return
        # The worker's own row first, in its own transaction: the worker is alive even while a
        # job row it names is locked.
        async with self._sessions() as session:
            await queue_repo.record_heartbeat(
                session=session, heartbeat=payload, at=envelope.occurred_at
            )
            await session.commit()
        if not payload.running_jobs:
            return
        async with self._sessions() as session:
            connection = await session.connection()
            await connection.execute(text(f"SET LOCAL lock_timeout = {JOB_ROW_LOCK_TIMEOUT_MS}"))
            try:
                await job_repo.record_job_heartbeats(
                    session=session,
                    worker_id=payload.worker_id,
                    job_ids=payload.running_jobs,
                    at=envelope.occurred_at,
                )
            except sa_exc.DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                log.warning(
                    "heartbeat %s of worker %s: a job row is locked; its jobs wait for the next",
                    envelope.id,
                    payload.worker_id,
                )
                return
            await session.commit()

    async def on_plugins(
        self, envelope: Envelope, payload: WorkerPlugins, delivery: Delivery
    ) -> None:
        if not _own(envelope, payload.worker_id, delivery):
            return
        async with self._sessions() as session:
            await plugin_repo.record_announcement(
                session=session, announcement=payload, at=envelope.occurred_at
            )
            await session.commit()
