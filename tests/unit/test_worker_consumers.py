"""The worker's consumers on the in-memory broker: a claimed job is acked before it runs, a job
not claimed while stopping goes back to the queue, garbage goes to the dead-letter queue, and
control broadcasts cancel running attempts and prefetch plugins."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tests.fixtures.events import job_submitted_event
from theodolite import topology
from theodolite.events import (
    Envelope,
    JobCancel,
    JobLog,
    JobSubmitted,
    PluginPublished,
    PluginYanked,
    make_event,
)
from theodolite.memory_broker import InMemoryBroker, MemoryMessage
from theodolite_worker.claims import Claim, JobClaims
from theodolite_worker.consumers import ControlConsumer, JobConsumer
from theodolite_worker.jobs import JobControl, JobRunner
from theodolite_worker.plugin_cache import PluginCache
from theodolite_worker.state import WorkerState

QUEUE = "cpu"
JOB_QUEUE = topology.job_queue_name(QUEUE)
DEAD_QUEUE = topology.dead_letter_queue_name(JOB_QUEUE)


class RecordingBroker(InMemoryBroker):
    """Keeps every delivered message, so a test can see how and when each was settled."""

    def __init__(self) -> None:
        super().__init__(job_delivery_limit=5)
        self.delivered: list[MemoryMessage] = []

    async def consume(self, queue: Any, handler: Any, *, prefetch: int) -> Any:
        async def recording(message: MemoryMessage) -> None:
            self.delivered.append(message)
            await handler(message)

        return await super().consume(queue, recording, prefetch=prefetch)


@dataclass
class FakeClaims:
    """The api's answer; with ``answer=None`` the api never answers, so it asks until stopping."""

    answer: Claim | None = field(default_factory=lambda: Claim(claimed=True))
    asked: list[uuid.UUID] = field(default_factory=list)

    async def claim(
        self,
        job_id: uuid.UUID,
        attempt: int,
        stopping: Callable[[], bool],
        submitted: JobSubmitted,
    ) -> Claim | None:
        self.asked.append(job_id)
        while self.answer is None and not stopping():  # noqa: ASYNC110 - as JobClaims polls
            await asyncio.sleep(0.01)
        return self.answer


@dataclass
class FakeRunner:
    """Runs nothing; holds each job until ``release`` is set, and notes what it saw."""

    broker: RecordingBroker
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    ran: list[uuid.UUID] = field(default_factory=list)
    settled_at_start: list[str | None] = field(default_factory=list)
    controls: list[JobControl] = field(default_factory=list)

    async def run(self, *args: Any, **kwargs: Any) -> None:
        """Called as ``JobRunner.run`` is: the arguments are bound by that method's signature."""
        call = inspect.signature(JobRunner.run).bind(self, *args, **kwargs).arguments
        self.ran.append(call["job_id"])
        self.settled_at_start.append(self.broker.delivered[-1].settled)
        control = call.get("control")
        assert isinstance(control, JobControl)
        self.controls.append(control)
        self.started.set()
        await self.release.wait()


@dataclass
class Rig:
    broker: RecordingBroker
    state: WorkerState
    claims: FakeClaims
    runner: FakeRunner
    jobs: JobConsumer


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with RecordingBroker() as broker:
        state, claims, runner = WorkerState(), FakeClaims(), FakeRunner(broker)
        jobs = JobConsumer(
            broker=broker,
            queue=QUEUE,
            slots=1,
            worker_id="worker-1",
            state=state,
            claims=cast(JobClaims, claims),
            runner=cast(JobRunner, runner),
        )
        await jobs.subscribe()
        yield Rig(broker, state, claims, runner, jobs)
        runner.release.set()
        await jobs.stop(grace_s=5)


def _job(job_id: uuid.UUID | None = None) -> Envelope:
    """A job.submitted envelope for the queue the rig's consumer reads."""
    return job_submitted_event(job_id, queue=QUEUE)


async def _until(condition: Callable[[], bool]) -> None:
    """Until another task made ``condition`` true (state with no event of its own)."""
    while not condition():  # noqa: ASYNC110 - nothing to wait on but the state itself
        await asyncio.sleep(0)


async def _submit(broker: InMemoryBroker, envelope: Envelope) -> None:
    await broker.publish(topology.JOBS_EXCHANGE.name, QUEUE, envelope)


async def test_a_claimed_job_is_acked_before_it_runs(rig: Rig) -> None:
    job = _job()
    await _submit(rig.broker, job)
    await rig.runner.started.wait()
    assert rig.runner.settled_at_start == ["ack"]
    assert rig.state.busy == 1 and list(rig.state.controls) == [job.job_id]
    rig.runner.release.set()
    await rig.broker.drain()
    assert rig.claims.asked == [job.job_id] and rig.runner.ran == [job.job_id]
    assert rig.state.busy == 0 and rig.state.controls == {}
    assert rig.broker.queues[JOB_QUEUE].message_count == 0
    assert rig.broker.queues[DEAD_QUEUE].message_count == 0


async def test_a_refused_claim_is_acked_and_not_run(rig: Rig) -> None:
    rig.claims.answer = Claim(claimed=False, reason="cancelled")
    await _submit(rig.broker, _job())
    await rig.broker.drain()
    assert [m.settled for m in rig.broker.delivered] == ["ack"]
    assert rig.runner.ran == []


async def test_a_copy_of_a_job_running_here_is_dropped_unclaimed(rig: Rig) -> None:
    job_id = uuid.uuid4()
    rig.state.controls[job_id] = JobControl()
    await _submit(rig.broker, _job(job_id))
    await rig.broker.drain()
    assert [m.settled for m in rig.broker.delivered] == ["ack"]
    assert rig.claims.asked == [] and rig.runner.ran == []


async def test_a_job_not_claimed_while_stopping_goes_back_to_the_queue(rig: Rig) -> None:
    first, second = _job(), _job()
    await _submit(rig.broker, first)
    await rig.runner.started.wait()
    await _submit(rig.broker, second)  # delivered (the first was acked), waits for the slot
    await _until(lambda: rig.state.busy == 2)
    stopping = asyncio.create_task(rig.jobs.stop(grace_s=30))
    await _until(lambda: rig.state.stopping)
    rig.runner.release.set()
    await stopping
    assert rig.claims.asked == [first.job_id] and rig.runner.ran == [first.job_id]
    # Acked at its claim; back in the queue unclaimed, once delivered, no dead letter.
    acked, requeued = rig.broker.delivered
    assert acked.settled == "ack"
    assert list(rig.broker.queues[JOB_QUEUE].ready) == [requeued]
    assert (requeued.message_id, requeued.delivery_count) == (str(second.id), 1)
    assert rig.broker.queues[DEAD_QUEUE].message_count == 0


async def test_a_claim_the_api_left_unanswered_at_stop_goes_back_to_the_queue(rig: Rig) -> None:
    rig.claims.answer = None
    job = _job()
    await _submit(rig.broker, job)
    await _until(lambda: rig.claims.asked != [])
    await rig.jobs.stop(grace_s=30)
    assert rig.runner.ran == []
    assert list(rig.broker.queues[JOB_QUEUE].ready) == rig.broker.delivered
    assert [m.message_id for m in rig.broker.delivered] == [str(job.id)]
    assert rig.broker.queues[DEAD_QUEUE].message_count == 0


async def test_garbage_and_other_events_go_to_the_dead_letter_queue(rig: Rig) -> None:
    stray = make_event(JobLog(lines=["?"]), producer="x", job_id=uuid.uuid4(), attempt=1)
    await _submit(rig.broker, stray)
    await rig.broker.publish_raw(
        topology.JOBS_EXCHANGE.name, QUEUE, b"{not json", message_id="junk", message_type="?"
    )
    anonymous = _job().model_copy(update={"job_id": None})
    await _submit(rig.broker, anonymous)
    await rig.broker.drain()
    dead = rig.broker.queues[DEAD_QUEUE]
    assert [m.message_id for m in dead.ready] == [str(stray.id), "junk", str(anonymous.id)]
    assert rig.claims.asked == [] and rig.runner.ran == []


@dataclass
class FakePlugins:
    fetched: list[tuple[str, str]] = field(default_factory=list)

    async def ensure(self, wheel_key: str, wheel_sha256: str) -> Path:
        self.fetched.append((wheel_key, wheel_sha256))
        return Path("/nowhere")


async def test_control_broadcasts_cancel_running_jobs_and_prefetch_plugins() -> None:
    async with InMemoryBroker() as broker:
        state, plugins = WorkerState(), FakePlugins()
        control = ControlConsumer(broker=broker, state=state, plugins=cast(PluginCache, plugins))
        await control.subscribe()
        await control.subscribe()  # a retried start-up subscribes once
        own = [q for q in broker.queues.values() if q.bindings]
        assert len(own) == 1
        assert {key for _, key in own[0].bindings} == set(topology.WORKER_CONTROL_BINDINGS)

        running, elsewhere = uuid.uuid4(), uuid.uuid4()
        state.controls[running] = JobControl()
        exchange = topology.CONTROL_EXCHANGE.name
        for job_id in (running, elsewhere):
            await broker.publish(
                exchange,
                topology.JOB_CANCEL_ROUTING_KEY,
                make_event(JobCancel(), producer="api", job_id=job_id),
            )
        published = PluginPublished(
            name="p", version="1", sha256="a" * 64, wheel_key="p-1.whl", wheel_sha256="b" * 64
        )
        await broker.publish(exchange, "plugin.published", make_event(published, producer="r"))
        await broker.publish(
            exchange, "plugin.yanked", make_event(PluginYanked(name="p", version="0"), producer="r")
        )
        await broker.publish_raw(
            exchange,
            topology.JOB_CANCEL_ROUTING_KEY,
            b"garbage",
            message_id="junk",
            message_type="?",
        )
        await broker.drain()
        await _until(lambda: plugins.fetched != [])  # the prefetch runs in a task of its own

        assert state.controls[running].reason == "cancel"
        assert plugins.fetched == [("p-1.whl", "b" * 64)]
        assert own[0].message_count == 0  # every broadcast settled, garbage included
