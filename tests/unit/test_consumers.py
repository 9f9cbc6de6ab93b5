"""The typed consumer adapter over the in-memory broker: dispatch by payload type, explicit
outcomes, dead letters after the delivery limit."""

from __future__ import annotations

import uuid

import pytest

from theodolite import topology
from theodolite.consumers import Consumer, Delivery, Outcome, Reject, Requeue, RetryLater
from theodolite.events import Envelope, JobLog, JobProgress, JobStarted, make_event
from theodolite.memory_broker import InMemoryBroker, Unroutable, topic_matches

QUEUE = "events.test"


def _event(payload: object) -> Envelope:
    return make_event(payload, producer="test", job_id=uuid.uuid4(), attempt=1, seq=1)  # type: ignore[arg-type]


async def _broker_with(consumer: Consumer, delivery_limit: int = 2) -> InMemoryBroker:
    broker = await InMemoryBroker(job_delivery_limit=delivery_limit).__aenter__()
    queue = await broker.declare_quorum_queue(QUEUE)
    await queue.bind(topology.EVENTS_EXCHANGE.name, "job.#")
    await broker.consume(QUEUE, consumer, prefetch=1)
    return broker


async def test_dispatches_by_payload_type_and_acks() -> None:
    consumer = Consumer("test")
    seen: list[tuple[str, object]] = []

    @consumer.on(JobLog)
    async def on_log(envelope: Envelope, payload: JobLog, delivery: Delivery) -> None:
        seen.append(("log", payload.lines))

    @consumer.on(JobProgress)
    async def on_progress(envelope: Envelope, payload: JobProgress, delivery: Delivery) -> None:
        seen.append(("progress", payload.fraction))

    broker = await _broker_with(consumer)
    await broker.publish(topology.EVENTS_EXCHANGE.name, "job.log", _event(JobLog(lines=["a"])))
    await broker.publish(
        topology.EVENTS_EXCHANGE.name, "job.progress", _event(JobProgress(fraction=0.5))
    )
    await broker.drain()
    assert seen == [("log", ["a"]), ("progress", 0.5)]
    assert broker.queues[QUEUE].message_count == 0
    assert broker.queues[topology.dead_letter_queue_name(QUEUE)].message_count == 0


async def test_unknown_payload_and_garbage_go_to_the_dead_letter_queue() -> None:
    consumer = Consumer("test")
    consumer.register(JobLog, _noop)
    broker = await _broker_with(consumer)
    started = _event(JobStarted(worker_id="w", mlflow_run_id="r"))
    await broker.publish(topology.EVENTS_EXCHANGE.name, "job.started", started)
    await broker.publish_raw(
        topology.EVENTS_EXCHANGE.name, "job.log", b"not json", message_id="x", message_type="?"
    )
    await broker.drain()
    dead = broker.queues[topology.dead_letter_queue_name(QUEUE)]
    assert [m.message_id for m in dead.ready] == [str(started.id), "x"]


async def _noop(envelope: Envelope, payload: object, delivery: Delivery) -> None:
    return None


@pytest.mark.parametrize(
    ("signal", "dead_after"),
    [(RetryLater("db away", delay_s=0), True), (Reject("never"), True), (Requeue(), True)],
)
async def test_explicit_outcomes_end_in_the_dead_letter_queue_past_the_limit(
    signal: Exception, dead_after: bool
) -> None:
    consumer = Consumer("test")
    calls = 0

    @consumer.on(JobLog)
    async def failing(envelope: Envelope, payload: JobLog, delivery: Delivery) -> None:
        nonlocal calls
        calls += 1
        raise signal

    broker = await _broker_with(consumer, delivery_limit=2)
    await broker.publish(topology.EVENTS_EXCHANGE.name, "job.log", _event(JobLog(lines=[])))
    await broker.drain()
    dead = broker.queues[topology.dead_letter_queue_name(QUEUE)]
    assert dead.message_count == 1
    # Reject settles at once; a requeue or retry is delivered again up to the limit.
    assert calls == (1 if isinstance(signal, Reject) else 3)


async def test_unexpected_errors_retry_later_and_early_ack_is_kept() -> None:
    consumer = Consumer("test", retry_delay_s=0)
    attempts: list[int] = []

    @consumer.on(JobLog)
    async def flaky(envelope: Envelope, payload: JobLog, delivery: Delivery) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database restarting")

    @consumer.on(JobProgress)
    async def acks_early(envelope: Envelope, payload: JobProgress, delivery: Delivery) -> None:
        await delivery.ack()
        assert delivery.settled

    broker = await _broker_with(consumer)
    await broker.publish(topology.EVENTS_EXCHANGE.name, "job.log", _event(JobLog(lines=[])))
    await broker.publish(topology.EVENTS_EXCHANGE.name, "job.progress", _event(JobProgress()))
    await broker.drain()
    assert len(attempts) == 2
    assert broker.queues[topology.dead_letter_queue_name(QUEUE)].message_count == 0


async def test_an_on_error_function_rejects_lasting_failures_at_once_retries_the_rest() -> None:
    def outcome_of(exc: Exception) -> Outcome:
        return Outcome.REJECT if isinstance(exc, ValueError) else Outcome.RETRY_LATER

    consumer = Consumer("test", retry_delay_s=0, on_error=outcome_of)
    calls: list[str] = []

    @consumer.on(JobLog)
    async def failing(envelope: Envelope, payload: JobLog, delivery: Delivery) -> None:
        calls.append(payload.lines[0])
        raise ValueError("refused") if payload.lines[0] == "lasting" else ConnectionError("away")

    broker = await _broker_with(consumer, delivery_limit=2)
    for line in ("lasting", "passing"):
        await broker.publish(topology.EVENTS_EXCHANGE.name, "job.log", _event(JobLog(lines=[line])))
    await broker.drain()
    # The lasting failure is tried once; the passing one up to the delivery limit.
    assert calls == ["lasting", "passing", "passing", "passing"]
    assert broker.queues[topology.dead_letter_queue_name(QUEUE)].message_count == 2


async def test_mandatory_publish_without_a_queue_fails_and_topics_match() -> None:
    broker = await InMemoryBroker().__aenter__()
    with pytest.raises(Unroutable):
        await broker.publish(topology.JOBS_EXCHANGE.name, "cpu", _event(JobLog(lines=[])))
    assert topic_matches("job.#", "job.log") and topic_matches("job.#", "job")
    assert topic_matches("plugin.*", "plugin.published")
    assert not topic_matches("plugin.*", "plugin.a.b") and not topic_matches("job.*", "worker.x")


def test_one_handler_per_payload_type() -> None:
    consumer = Consumer("test")
    consumer.register(JobLog, _noop)
    with pytest.raises(ValueError, match="exists already"):
        consumer.register(JobLog, _noop)
