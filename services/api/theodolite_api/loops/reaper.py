"""The api's periodic duties for jobs: find lost jobs (their worker stopped heartbeating them)
and publish attempts whose backoff is over. Every replica runs it; row locks with SKIP LOCKED
keep them from doing the same job twice."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.broker import Broker
from theodolite.db.tables import EntryPointArchive, Experiment, Job, utcnow
from theodolite.lifecycle import JobStatus
from theodolite_api.jobs import transitions
from theodolite_api.jobs.messages import enqueue_attempt
from theodolite_api.jobs.retries import may_retry, requeue
from theodolite_api.loops.base import BATCH, DatabaseLoop
from theodolite_api.loops.outbox_relay import OutboxRelay

log = logging.getLogger(__name__)


async def _lock_batch(session: AsyncSession, *where: ColumnElement[bool]) -> list[Job]:
    """Up to ``BATCH`` jobs matching ``where``, locked; rows another replica holds are skipped."""
    rows = await session.exec(
        select(Job).where(*where).limit(BATCH).with_for_update(skip_locked=True)
    )
    return list(rows)


class JobReaper(DatabaseLoop):
    name = "job reaper"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        relay: OutboxRelay,
        broker: Broker,
        lost_after_s: float,
        interval_s: float,
    ) -> None:
        super().__init__(sessions=sessions, broker=broker, interval_s=interval_s)
        self._relay = relay
        self._lost_after = timedelta(seconds=lost_after_s)

    async def run_once(self) -> None:
        lost = await self.find_lost_jobs()
        if await self.publish_due_attempts() or lost:
            self._relay.wake()

    async def find_lost_jobs(self) -> int:
        # Missing heartbeats only mean a lost worker if they could have reached us: not while
        # the broker is away, nor until heartbeats had time to arrive after it came back.
        if self._broker.connected_for() < self._lost_after.total_seconds():
            return 0
        now = utcnow()
        async with self._sessions() as session:
            lost = await _lock_batch(
                session,
                col(Job.status) == JobStatus.RUNNING.value,
                col(Job.last_heartbeat_at) < now - self._lost_after,
            )
            for job in lost:
                await self._give_up_attempt(session, job, now)
            await session.commit()
            return len(lost)

    async def _give_up_attempt(self, session: AsyncSession, job: Job, now: datetime) -> None:
        """``lost``, then ``queued`` again while retries remain, else ``failed``. The keys fence
        the attempt: events its worker may still send (it was only slow, or cut off) are older
        than anything recorded from now on, so they are dropped."""
        reason = (
            f"worker {job.worker_id} stopped heartbeating it "
            f"(last heard {job.last_heartbeat_at:%H:%M:%S})"
        )
        await transitions.api_change(
            session=session, job=job, to=JobStatus.LOST, at=now, reason=reason
        )
        if await may_retry(session=session, job=job):
            attempt, seq = transitions.api_key(job)
            await requeue(
                session=session,
                job=job,
                now=now,
                reason=reason,
                counts_as_retry=True,
                attempt=attempt,
                seq=seq,
            )
        else:
            await transitions.api_change(
                session=session,
                job=job,
                to=JobStatus.FAILED,
                at=now,
                reason=f"lost, no retries left: {reason}",
            )
            job.error = f"lost: {reason}; no retries left (max_retries={job.max_retries})"
        log.warning("job %s lost: %s", job.id, reason)

    async def publish_due_attempts(self) -> int:
        now = utcnow()
        async with self._sessions() as session:
            due = await _lock_batch(
                session,
                col(Job.status) == JobStatus.QUEUED.value,
                col(Job.next_attempt_at) <= now,
            )
            for job in due:
                experiment = await session.get(Experiment, job.experiment_id)
                archive = await session.get(EntryPointArchive, job.entrypoint_id)
                assert experiment is not None and archive is not None
                job.attempt += 1
                job.last_seq = 0
                job.next_attempt_at = None
                job.updated_at = now
                enqueue_attempt(session=session, job=job, experiment=experiment, archive=archive)
            await session.commit()
            return len(due)
