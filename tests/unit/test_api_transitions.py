"""The api's one state machine (``jobs.transitions``): legal and illegal moves, the
``job.status_changed`` outbox row written with each transition, and the attempt fence."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.fixtures.database import announcements, move, new_job, sessions, submitted_job
from theodolite import topology
from theodolite.db.tables import JobTransition, OutboxMessage, utcnow
from theodolite.events import decode_event
from theodolite.lifecycle import IllegalTransition, JobStatus
from theodolite_api.jobs import transitions
from theodolite_api.jobs.cancellation import request_cancel
from theodolite_api.jobs.claims import claim_attempt
from theodolite_api.repositories import jobs as job_repo

__all__ = ["sessions"]


async def test_each_transition_is_recorded_set_and_announced_in_one_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        job = await new_job(session)
        submitted = await transitions.record_submission(session=session, job=job, at=utcnow())
        running = await move(session, job, JobStatus.RUNNING, seq=0, reason="worker w")
        assert job.status == "running"
        await session.commit()
    async with sessions() as session:
        history = list(await session.exec(select(JobTransition).order_by(col(JobTransition.id))))
        assert [(t.status, t.attempt, t.seq) for t in history] == [
            ("queued", 1, 0),
            ("running", 1, 0),
        ]
        announced = await announcements(session)
    assert [(p.from_status, p.to_status, p.transition_id) for _, p in announced] == [
        (None, "queued", submitted.id),
        ("queued", "running", running.id),
    ]
    row, payload = announced[1]
    assert row.exchange == topology.EVENTS_EXCHANGE.name
    assert row.routing_key == topology.STATUS_CHANGED_ROUTING_KEY == "job.status_changed"
    envelope, _ = decode_event(row.body)
    assert (envelope.job_id, envelope.attempt, envelope.seq) == (job.id, 1, 0)
    assert payload.experiment_id == job.experiment_id and payload.reason == "worker w"


async def test_an_illegal_move_changes_and_announces_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        job = await new_job(session)
        with pytest.raises(IllegalTransition, match="from queued to succeeded"):
            await move(session, job, JobStatus.SUCCEEDED, seq=3)
        assert job.status == "queued"
        assert await announcements(session) == []
        assert list(await session.exec(select(JobTransition))) == []


async def test_the_api_fences_an_attempt_it_takes_over(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        job = await new_job(session, last_seq=7)
        first = transitions.api_key(job)
        second = transitions.api_key(job)
    # Past anything a worker sends, and later each time: late events of the attempt are stale.
    assert first == (1, transitions.ATTEMPT_FENCE)
    assert second == (1, transitions.ATTEMPT_FENCE + 1)
    assert job.last_seq == transitions.ATTEMPT_FENCE + 1


async def test_cancel_before_start_then_the_claim_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await submitted_job(sessions)
    async with sessions() as session:
        locked = await job_repo.get(session=session, job_id=job_id, for_update=True)
        assert locked is not None
        await request_cancel(session=session, job=locked)
        await session.commit()
    async with sessions() as session:
        answer = await claim_attempt(session=session, job_id=job_id, attempt=1, worker_id="w")
        assert not answer.claimed and answer.http_status == 409
        assert answer.reason == "the job is cancelled"
        announced = await announcements(session)
        controls = list(
            await session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.routing_key == topology.JOB_CANCEL_ROUTING_KEY
                )
            )
        )
    assert [(p.from_status, p.to_status) for _, p in announced] == [
        (None, "queued"),
        ("queued", "cancelled"),
    ]
    assert len(controls) == 1 and controls[0].exchange == topology.CONTROL_EXCHANGE.name


async def test_the_claim_is_the_one_place_an_attempt_becomes_running(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await submitted_job(sessions)
    async with sessions() as session:
        answer = await claim_attempt(session=session, job_id=job_id, attempt=1, worker_id="w1")
        assert answer.claimed and answer.attempt == 1
        await session.commit()
    async with sessions() as session:
        again = await claim_attempt(session=session, job_id=job_id, attempt=1, worker_id="w1")
        other = await claim_attempt(session=session, job_id=job_id, attempt=1, worker_id="w2")
        stale = await claim_attempt(session=session, job_id=job_id, attempt=2, worker_id="w2")
        announced = await announcements(session)
    assert again.claimed  # asked again by the same worker: no second transition
    assert not other.claimed and other.reason == "the job is running on w1"
    assert not stale.claimed and stale.http_status == 409
    assert [p.to_status for _, p in announced] == ["queued", "running"]
