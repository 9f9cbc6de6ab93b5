"""Consumes the api's own status changes (``events.api.dependencies``): when a job ends, the jobs
waiting on it are queued or skipped (``jobs.dependencies``), a pipeline stage's with its references
resolved, and a pipeline whose last job this was ends (``pipelines.progress``). Only the api's
signed announcements count, and only for transitions the database holds; settling twice changes
nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.consumers import Consumer, Delivery
from theodolite.events import Envelope, JobStatusChanged
from theodolite.lifecycle import TERMINAL_STATUSES
from theodolite.signing import API_SIGNER, KeyLookup
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.consumers.failures import database_failure_outcome
from theodolite_api.jobs.dependencies import settle_dependants
from theodolite_api.pipelines import progress
from theodolite_api.pipelines.resolution import StageParameters

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0
ENDS = frozenset(status.value for status in TERMINAL_STATUSES)


class DependencyConsumer:
    """``on_transition`` is called after a commit that queued or skipped a waiting job."""

    prefetch = 4

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        signers: KeyLookup,
        mlflow: MlflowReader,
        on_transition: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._mlflow = mlflow
        self._resolve = StageParameters(mlflow)
        self._on_transition = on_transition
        self.consumer = Consumer(
            "api dependencies",
            retry_delay_s=RETRY_DELAY_S,
            on_error=database_failure_outcome,
            ignore_unhandled=True,
            signers=signers,
        )
        self.consumer.register(JobStatusChanged, self.on_status_changed)

    async def on_status_changed(
        self, envelope: Envelope, payload: JobStatusChanged, delivery: Delivery
    ) -> None:
        if delivery.signer != API_SIGNER or envelope.job_id is None:
            return
        if payload.to_status not in ENDS:
            return
        async with self._sessions() as session:
            changed = await settle_dependants(
                session=session, job_id=envelope.job_id, resolve=self._resolve
            )
            ended = await progress.job_ended(session=session, job_id=envelope.job_id)
            await session.commit()
        if ended is not None:
            log.info("pipeline %s ended %s", ended.id, ended.status)
            await progress.end_parent_run(self._mlflow, ended)
            self._on_transition()
        if changed:
            log.info(
                "job %s ended %s: %d waiting job(s) settled",
                envelope.job_id,
                payload.to_status,
                changed,
            )
            self._on_transition()
