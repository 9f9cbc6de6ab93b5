"""Events that cannot jam the api's consumers (in-memory broker, throwaway database): a NUL in a
job event is stored as U+FFFD, a database error that would recur dead-letters the event at once
while a passing one is retried, and heartbeats have a queue of their own that a blocked job event
does not hold up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.fixtures.database import claimed_job, sessions
from tests.fixtures.events import SIGNERS, worker_key
from tests.unit.waiting import eventually
from theodolite import topology
from theodolite.consumers import Outcome
from theodolite.db.tables import Job, JobLogChunk, Worker, utcnow
from theodolite.events import (
    Envelope,
    JobLog,
    JobSucceeded,
    WorkerHeartbeat,
    make_event,
)
from theodolite.memory_broker import InMemoryBroker
from theodolite_api.consumers.failures import database_failure_outcome
from theodolite_api.consumers.job_events import JobEventConsumer
from theodolite_api.consumers.worker_events import WorkerEventConsumer

__all__ = ["sessions"]

EVENTS = topology.EVENTS_EXCHANGE.name
JOBS_DEAD = topology.dead_letter_queue_name(topology.API_EVENTS_QUEUE)
WORKERS_DEAD = topology.dead_letter_queue_name(topology.API_WORKER_EVENTS_QUEUE)


class CountedSessions:
    """The session factory, counting how often an event was tried (one session per try)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.opened = 0

    def __call__(self) -> AbstractAsyncContextManager[AsyncSession]:
        self.opened += 1
        return self._sessions()


async def _api_broker(
    sessions: async_sessionmaker[AsyncSession] | CountedSessions,
) -> InMemoryBroker:
    """Both of the api's event queues as its lifespan declares and consumes them, on a broker
    where an earlier version had bound worker events onto the job events' queue."""
    broker = await InMemoryBroker(job_delivery_limit=2, signing_key=worker_key()).__aenter__()
    old = await broker.declare_quorum_queue(topology.API_EVENTS_QUEUE)
    await old.bind(EVENTS, "worker.#")
    await broker.declare_event_queue(
        topology.API_WORKER_EVENTS_QUEUE, topology.API_WORKER_EVENTS_BINDINGS
    )
    await broker.declare_event_queue(
        topology.API_EVENTS_QUEUE,
        topology.API_EVENTS_BINDINGS,
        retired_bindings=topology.API_EVENTS_RETIRED_BINDINGS,
    )
    jobs = JobEventConsumer(sessions=sessions, signers=SIGNERS)  # type: ignore[arg-type]
    workers = WorkerEventConsumer(sessions=sessions, signers=SIGNERS)  # type: ignore[arg-type]
    await broker.consume(topology.API_EVENTS_QUEUE, jobs.consumer, prefetch=1)
    await broker.consume(
        topology.API_WORKER_EVENTS_QUEUE, workers.consumer, prefetch=workers.prefetch
    )
    return broker


def _job_event(job_id: uuid.UUID, seq: int, payload: object) -> Envelope:
    return make_event(payload, producer="w", job_id=job_id, attempt=1, seq=seq)  # type: ignore[arg-type]


def _heartbeat(worker_id: str, *jobs: uuid.UUID, hostname: str = "host") -> Envelope:
    beat = WorkerHeartbeat(
        worker_id=worker_id,
        queue="cpu",
        hostname=hostname,
        pid=1,
        slots=1,
        busy=len(jobs),
        started_at=utcnow(),
        running_jobs=list(jobs),
    )
    return make_event(beat, producer=worker_id)


async def _publish(broker: InMemoryBroker, *events: Envelope) -> None:
    """Each signed by the worker that produced it, as workers sign."""
    for event in events:
        broker.signing_key = worker_key(event.producer)
        await broker.publish(EVENTS, event.type.value, event)


# Real failures from PostgreSQL (through SQLAlchemy and asyncpg, as the consumers meet them).
LASTING: dict[str, tuple[str, dict[str, object]]] = {
    "NUL in text": ("SELECT CAST(:v AS text)", {"v": "a\x00b"}),
    "NUL in jsonb": ("SELECT CAST(:v AS jsonb)", {"v": '{"m": "\\u0000"}'}),
    "out of int4 range": ("SELECT CAST(:v AS int4)", {"v": 2**40}),
    "division by zero": ("SELECT 1 / 0", {}),
    "no such table": ("SELECT * FROM no_such_table", {}),
}
PASSING = {
    "statement timeout": "SET LOCAL statement_timeout = 10; SELECT pg_sleep(1)",
    "connection terminated": "SELECT pg_terminate_backend(pg_backend_pid())",
}


@pytest.mark.parametrize("name", sorted(LASTING))
async def test_database_errors_that_would_recur_are_rejected(
    sessions: async_sessionmaker[AsyncSession], name: str
) -> None:
    statement, values = LASTING[name]
    async with sessions() as session:
        connection = await session.connection()
        with pytest.raises(sa_exc.DBAPIError) as raised:
            await connection.execute(text(statement), values)
    assert database_failure_outcome(raised.value) is Outcome.REJECT


@pytest.mark.parametrize("name", sorted(PASSING))
async def test_database_errors_that_may_pass_are_retried(
    sessions: async_sessionmaker[AsyncSession], name: str
) -> None:
    async with sessions() as session:
        connection = await session.connection()
        with pytest.raises(sa_exc.DBAPIError) as raised:
            for statement in PASSING[name].split("; "):
                await connection.execute(text(statement))
    assert database_failure_outcome(raised.value) is Outcome.RETRY_LATER


async def test_an_unreachable_database_and_other_failures_are_retried() -> None:
    engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises(Exception) as raised:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert database_failure_outcome(raised.value) is Outcome.RETRY_LATER
    assert database_failure_outcome(ConnectionError("reset")) is Outcome.RETRY_LATER
    assert database_failure_outcome(TimeoutError()) is Outcome.RETRY_LATER


async def test_a_nul_in_a_job_log_is_stored_as_a_replacement_and_holds_nothing_up(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id, other_id = await claimed_job(sessions), await claimed_job(sessions)
    broker = await _api_broker(sessions)
    # From a worker that does not escape its jobs' output.
    await _publish(
        broker,
        _job_event(job_id, 1, JobLog(lines=["a\x00b", "fine"])),
        _job_event(job_id, 2, JobSucceeded(mlflow_run_id="r", log_tail=["a\x00b"])),
        _job_event(other_id, 1, JobLog(lines=["other"])),
    )
    await broker.drain()
    await broker.__aexit__(None, None, None)
    assert broker.queues[JOBS_DEAD].message_count == 0
    async with sessions() as session:
        chunks = list(await session.exec(select(JobLogChunk).order_by(col(JobLogChunk.id))))
        job = await session.get(Job, job_id)
    assert [(c.job_id, c.lines) for c in chunks] == [
        (job_id, "a\ufffdb\nfine"),
        (other_id, "other"),
    ]
    assert job is not None and job.status == "succeeded"


async def test_an_event_the_database_refuses_is_dead_lettered_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id, other_id = await claimed_job(sessions), await claimed_job(sessions)
    counted = CountedSessions(sessions)
    broker = await _api_broker(counted)
    # An exit code PostgreSQL's integer column cannot hold: refused however often it is tried.
    await _publish(broker, _job_event(job_id, 1, JobSucceeded(mlflow_run_id="r", exit_code=2**40)))
    await broker.drain()
    assert counted.opened == 1  # tried once, not up to the delivery limit
    assert broker.queues[JOBS_DEAD].message_count == 1
    await _publish(broker, _job_event(other_id, 1, JobSucceeded(mlflow_run_id="r2")))
    await broker.drain()
    await broker.__aexit__(None, None, None)
    async with sessions() as session:
        refused, other = await session.get(Job, job_id), await session.get(Job, other_id)
    assert refused is not None and refused.status == "running"
    assert other is not None and other.status == "succeeded"


async def test_a_heartbeat_is_applied_while_the_job_events_queue_is_blocked(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await claimed_job(sessions)  # claimed by worker "w"
    broker = await _api_broker(sessions)
    assert (EVENTS, "worker.#") not in broker.queues[topology.API_EVENTS_QUEUE].bindings

    async def seen(worker_id: str) -> Worker | None:
        async with sessions() as session:
            return await session.get(Worker, worker_id)

    async with sessions() as blocker:
        # Another transaction holds the job's row: its next event waits, and so would every
        # event behind it on events.api (applied one at a time).
        await blocker.get(Job, job_id, with_for_update=True)
        await _publish(broker, _job_event(job_id, 1, JobLog(lines=["held"])))
        # A heartbeat of another worker, and one of "w" naming the locked job: both recorded.
        await _publish(broker, _heartbeat("w2"), _heartbeat("w", job_id))
        found: dict[str, Worker | None] = {}

        async def both_seen() -> bool:
            found.update({w: await seen(w) for w in ("w", "w2")})
            return all(found.values())

        await _eventually_async(both_seen)
        # The heartbeat naming the locked job gave up on its row (after the lock wait) and was
        # settled; the job event still waits.
        (workers,) = broker.queues[topology.API_WORKER_EVENTS_QUEUE].subscribers
        await eventually(lambda: workers.in_flight == 0)
        assert broker.queues[topology.API_EVENTS_QUEUE].subscribers[0].in_flight == 1
        await blocker.rollback()
    await broker.drain()
    await _publish(broker, _heartbeat("w", job_id))  # the next one reaches the job row
    await broker.drain()
    await broker.__aexit__(None, None, None)
    assert broker.queues[WORKERS_DEAD].message_count == 0
    async with sessions() as session:
        job = await session.get(Job, job_id)
        chunks = list(await session.exec(select(JobLogChunk)))
    assert job is not None and job.last_heartbeat_at is not None
    assert [c.lines for c in chunks] == ["held"]


async def test_a_heartbeat_the_database_refuses_is_dead_lettered_and_the_next_applied(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    counted = CountedSessions(sessions)
    broker = await _api_broker(counted)
    await _publish(broker, _heartbeat("w", hostname="bad\x00host"))
    await broker.drain()
    assert (counted.opened, broker.queues[WORKERS_DEAD].message_count) == (1, 1)
    await _publish(broker, _heartbeat("w"))
    await broker.drain()
    await broker.__aexit__(None, None, None)
    async with sessions() as session:
        worker = await session.get(Worker, "w")
    assert worker is not None and worker.hostname == "host"


async def _eventually_async(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Like ``tests.unit.waiting.eventually``, for a check that asks the database."""
    async with asyncio.timeout(timeout_s):
        # The database has no event to wait on: ask again.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
