"""The api's consumers on the typed adapter, fed through the in-memory broker: the job event
consumer (with its database), the webhook dispatcher and the live hub."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.fixtures.database import claimed_job, move, move_and_commit, new_job, sessions
from tests.fixtures.events import API_KEY, SIGNERS, FixedHolders, worker_key
from theodolite import topology
from theodolite.db.status_tables import WebhookDelivery, WebhookSubscription
from theodolite.db.tables import Job, JobDependency, JobLogChunk, JobTransition, utcnow
from theodolite.events import (
    Envelope,
    JobLog,
    JobProgress,
    JobStarted,
    JobStatusChanged,
    JobSucceeded,
    make_event,
)
from theodolite.memory_broker import InMemoryBroker
from theodolite.settings import MlflowSettings
from theodolite.signing import API_SIGNER, SigningKey, worker_signer
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.consumers.dependencies import DependencyConsumer
from theodolite_api.consumers.job_events import JobEventConsumer
from theodolite_api.jobs import transitions
from theodolite_api.jobs.claims import claim_attempt
from theodolite_api.settings import WebhookSettings
from theodolite_api.streams.live import LiveHub
from theodolite_api.webhooks.dispatcher import WebhookDispatcher

__all__ = ["sessions"]

EVENTS = topology.EVENTS_EXCHANGE.name


async def _broker(queue: str, bindings: tuple[str, ...], handler: object) -> InMemoryBroker:
    """Publishing signed as the worker ``w`` (set ``signing_key`` to publish as another)."""
    broker = await InMemoryBroker(job_delivery_limit=2, signing_key=worker_key()).__aenter__()
    declared = await broker.declare_quorum_queue(queue)
    for key in bindings:
        await declared.bind(EVENTS, key)
    await broker.consume(queue, handler, prefetch=1)  # type: ignore[arg-type]
    return broker


def _worker_event(job_id: uuid.UUID, seq: int, payload: object, attempt: int = 1) -> Envelope:
    return make_event(payload, producer="w", job_id=job_id, attempt=attempt, seq=seq)  # type: ignore[arg-type]


async def test_job_events_are_applied_once_in_order_and_own_announcements_left_alone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await claimed_job(sessions)
    woken: list[int] = []
    consumer = JobEventConsumer(
        sessions=sessions, signers=SIGNERS, on_transition=lambda: woken.append(1)
    )
    broker = await _broker(
        topology.API_EVENTS_QUEUE, topology.API_EVENTS_BINDINGS, consumer.consumer
    )
    events = [
        _worker_event(job_id, 1, JobStarted(worker_id="w", mlflow_run_id="run-1")),
        _worker_event(job_id, 2, JobLog(lines=["a", "b"])),
        _worker_event(job_id, 4, JobProgress(fraction=0.5)),
        _worker_event(job_id, 3, JobLog(lines=["late"])),  # after a later one: still recorded
        _worker_event(job_id, 2, JobLog(lines=["a", "b"])),  # a repeat: dropped
        _worker_event(job_id, 5, JobSucceeded(mlflow_run_id="run-1")),
    ]
    for event in events:
        await broker.publish(EVENTS, event.type.value, event)
    # Its own announcement comes back on job.#: acked, and nothing else happens.
    own = make_event(
        JobStatusChanged(
            experiment_id=uuid.uuid4(),
            transition_id=1,
            from_status=None,
            to_status="queued",
            at=utcnow(),
        ),
        producer="api",
        job_id=job_id,
        attempt=1,
    )
    broker.signing_key = API_KEY
    await broker.publish(EVENTS, topology.STATUS_CHANGED_ROUTING_KEY, own)
    await broker.drain()
    await broker.__aexit__(None, None, None)

    dead = broker.queues[topology.dead_letter_queue_name(topology.API_EVENTS_QUEUE)]
    assert dead.message_count == 0
    async with sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.mlflow_run_id, job.last_seq) == ("succeeded", "run-1", 5)
        history = list(
            await session.exec(
                select(JobTransition)
                .where(JobTransition.job_id == job_id)
                .order_by(col(JobTransition.id))
            )
        )
        chunks = list(
            await session.exec(
                select(JobLogChunk)
                .where(JobLogChunk.job_id == job_id)
                .order_by(col(JobLogChunk.seq))
            )
        )
    # job.started carries the run id only: the claim made the attempt running.
    assert [(t.status, t.seq) for t in history] == [("queued", 0), ("running", 0), ("succeeded", 5)]
    assert [(c.seq, c.lines) for c in chunks] == [(2, "a\nb"), (3, "late")]
    assert woken == [1]  # the relay is woken after the commit that changed the status


async def test_events_of_a_fenced_attempt_are_stale(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await claimed_job(sessions)
    async with sessions() as session:
        job = await session.get(Job, job_id, with_for_update=True)
        assert job is not None
        attempt, seq = transitions.api_key(job)
        await move(
            session, job, transitions.JobStatus.LOST, seq=seq, reason="lost", attempt=attempt
        )
        await session.commit()
    consumer = JobEventConsumer(sessions=sessions, signers=SIGNERS)
    broker = await _broker(topology.API_EVENTS_QUEUE, ("job.#",), consumer.consumer)
    for event in (
        _worker_event(job_id, 7, JobLog(lines=["from a worker thought lost"])),
        _worker_event(job_id, 8, JobSucceeded(mlflow_run_id="r")),
    ):
        await broker.publish(EVENTS, event.type.value, event)
    await broker.drain()
    await broker.__aexit__(None, None, None)
    async with sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None and job.status == "lost"
        assert list(await session.exec(select(JobLogChunk))) == []


async def test_webhook_deliveries_come_from_the_announcement_once_per_transition(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        job = await new_job(session, callback_url="http://example.com/cb", webhook_secret="whsec_x")
        subscription = WebhookSubscription(
            experiment_id=job.experiment_id,
            url="http://example.com/hook",
            secret="whsec_y",
            event_types=["job.queued", "job.log"],
            after_transition_id=0,
        )
        session.add(subscription)
        transition = await transitions.record_submission(session=session, job=job, at=utcnow())
        await session.commit()
        job_id, experiment_id = job.id, job.experiment_id
    woken: list[int] = []
    dispatcher = WebhookDispatcher(
        sessions=sessions,
        settings=WebhookSettings(),
        signers=SIGNERS,
        on_new_deliveries=lambda: woken.append(1),
    )
    broker = await _broker(
        topology.WEBHOOK_EVENTS_QUEUE, topology.WEBHOOK_EVENTS_BINDINGS, dispatcher.consumer
    )
    assert transition.id is not None
    announced = make_event(
        JobStatusChanged(
            experiment_id=experiment_id,
            transition_id=transition.id,
            from_status=None,
            to_status="queued",
            at=transition.at,
        ),
        producer="api",
        job_id=job_id,
        attempt=1,
    )
    broker.signing_key = API_KEY
    for _ in range(2):  # published twice (the relay crashed before marking it): one delivery
        await broker.publish(EVENTS, topology.STATUS_CHANGED_ROUTING_KEY, announced)
    # Forged by someone with broker access: a transition never recorded, and a recorded one
    # announced with another status. Neither reaches a receiver.
    payload = announced.typed_payload()
    assert isinstance(payload, JobStatusChanged)
    for forged in (
        payload.model_copy(
            update={"transition_id": transition.id + 1000, "to_status": "succeeded"}
        ),
        payload.model_copy(update={"to_status": "succeeded"}),
    ):
        forged_event = make_event(forged, producer="api", job_id=job_id, attempt=1, seq=5)
        await broker.publish(EVENTS, topology.STATUS_CHANGED_ROUTING_KEY, forged_event)
    broker.signing_key = worker_key()  # signed, but no worker holds this job's claim
    await broker.publish(EVENTS, topology.STATUS_CHANGED_ROUTING_KEY, announced)
    async with sessions() as session:
        await claim_attempt(session=session, job_id=job_id, attempt=1, worker_id="w")
        await session.commit()
    log_event = _worker_event(job_id, 2, JobLog(lines=["x"]))
    await broker.publish(EVENTS, "job.log", log_event)
    broker.signing_key = worker_key("other")  # a worker without the claim
    await broker.publish(EVENTS, "job.log", _worker_event(job_id, 3, JobLog(lines=["forged"])))
    started = _worker_event(job_id, 1, JobStarted(worker_id="w", mlflow_run_id="r"))
    await broker.publish(EVENTS, "job.started", started, mandatory=False)  # not bound
    await broker.drain()
    await broker.__aexit__(None, None, None)
    async with sessions() as session:
        deliveries = list(await session.exec(select(WebhookDelivery)))
    by_url = sorted((d.url, d.event_type) for d in deliveries)
    assert by_url == [
        ("http://example.com/cb", "job.queued"),
        ("http://example.com/hook", "job.log"),
        ("http://example.com/hook", "job.queued"),
    ]
    assert woken == [1, 1]
    assert [d.body for d in deliveries if d.event_type == "job.log" and "forged" in d.body] == []
    dead = broker.queues[topology.dead_letter_queue_name(topology.WEBHOOK_EVENTS_QUEUE)]
    assert dead.message_count == 0


async def test_the_live_hub_fans_out_and_keeps_recent_log_events() -> None:
    broker = await InMemoryBroker(signing_key=worker_key()).__aenter__()
    await broker.declare_quorum_queue("events.other")  # something else on the exchange
    job, other = uuid.uuid4(), uuid.uuid4()
    holders = FixedHolders({job: (1, "w"), other: (1, "w")})
    hub = LiveHub(broker, signers=SIGNERS, holders=holders, backlog=2)
    await hub.start()
    with hub.subscribe(job_id=job) as mine, hub.subscribe(job_id=None) as everything:
        for seq in (1, 2, 3):
            event = _worker_event(job, seq, JobLog(lines=[str(seq)]))
            await broker.publish(EVENTS, "job.log", event)
        await broker.publish(EVENTS, "job.progress", _worker_event(other, 1, JobProgress()))
        await broker.publish(
            EVENTS,
            "job.started",
            _worker_event(job, 4, JobStarted(worker_id="w", mlflow_run_id="r")),
        )
        # Never on a stream: unsigned, signed by a worker without the claim, a status change
        # that is not the api's, and a wrong signature.
        for key in (None, worker_key("other")):
            broker.signing_key = key
            await broker.publish(EVENTS, "job.log", _worker_event(job, 9, JobLog(lines=["no"])))
        broker.signing_key = worker_key()
        forged = JobStatusChanged(
            experiment_id=uuid.uuid4(),
            transition_id=1,
            from_status=None,
            to_status="x",
            at=utcnow(),
        )
        await broker.publish(EVENTS, "job.status_changed", _worker_event(job, 9, forged))
        broker.signing_key = SigningKey(worker_signer("w"), b"guessed")
        await broker.publish(EVENTS, "job.log", _worker_event(job, 9, JobLog(lines=["no"])))
        await broker.drain()
        assert mine.wake.is_set()
        assert [e.seq for e, _ in mine.take()] == [1, 2, 3]
        assert [(e.job_id, e.seq) for e, _ in everything.take()] == [(other, 1)]  # no logs
        assert not mine.wake.is_set() and hub.subscriptions == 2
    with hub.subscribe(job_id=job) as late:
        # A stream connecting now finds the last log events the api may not have recorded yet.
        assert [e.seq for e, _ in late.take()] == [2, 3]
    assert hub.subscriptions == 0
    await hub.close()


async def test_a_jobs_stored_log_is_cut_at_its_cap_and_says_so(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await claimed_job(sessions)
    consumer = JobEventConsumer(sessions=sessions, signers=SIGNERS, max_log_lines=5)
    broker = await _broker(
        topology.API_EVENTS_QUEUE, topology.API_EVENTS_BINDINGS, consumer.consumer
    )
    for seq, lines in enumerate((["1", "2", "3"], ["4", "5", "6"], ["7"]), start=1):
        event = _worker_event(job_id, seq, JobLog(lines=lines))
        await broker.publish(EVENTS, event.type.value, event)
    await broker.drain()
    await broker.__aexit__(None, None, None)
    async with sessions() as session:
        chunks = list(
            await session.exec(
                select(JobLogChunk)
                .where(JobLogChunk.job_id == job_id)
                .order_by(col(JobLogChunk.seq))
            )
        )
    stored = [line for chunk in chunks for line in chunk.lines.split("\n")]
    assert stored[:4] == ["1", "2", "3", "4"] and len(stored) == 5
    assert "log cut at 5 lines" in stored[4] and "logs/output.log" in stored[4]
    assert [c.seq for c in chunks] == [1, 2]  # the third event's line is dropped


async def test_only_the_claim_holder_speaks_for_a_job(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Forged as someone with broker access would: unsigned, signed with a guessed key, by a
    worker without the claim, by the api's key, for another attempt, and with a sequence number
    in the api's fenced range. None changes the job; the claim holder's own event then does."""
    job_id = await claimed_job(sessions)  # worker ``w`` holds attempt 1
    consumer = JobEventConsumer(sessions=sessions, signers=SIGNERS)
    broker = await _broker(topology.API_EVENTS_QUEUE, ("job.#",), consumer.consumer)
    forgeries = [
        (None, _worker_event(job_id, 1, JobSucceeded(mlflow_run_id="forged"))),
        (
            SigningKey(worker_signer("w"), b"guessed"),
            _worker_event(job_id, 1, JobSucceeded(mlflow_run_id="forged")),
        ),
        (worker_key("other"), _worker_event(job_id, 1, JobSucceeded(mlflow_run_id="forged"))),
        (API_KEY, _worker_event(job_id, 1, JobSucceeded(mlflow_run_id="forged"))),
        (worker_key(), _worker_event(job_id, 1, JobSucceeded(mlflow_run_id="x"), attempt=7)),
        (
            worker_key(),
            _worker_event(job_id, transitions.ATTEMPT_FENCE + 1, JobLog(lines=["fence"])),
        ),
    ]
    for key, event in forgeries:
        broker.signing_key = key
        await broker.publish(EVENTS, event.type.value, event)
    await broker.drain()
    async with sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.attempt, job.last_seq, job.mlflow_run_id) == ("running", 1, 0, None)
        assert list(await session.exec(select(JobLogChunk))) == []
    broker.signing_key = worker_key()
    await broker.publish(
        EVENTS, "job.succeeded", _worker_event(job_id, 1, JobSucceeded(mlflow_run_id="real"))
    )
    await broker.drain()
    await broker.__aexit__(None, None, None)
    async with sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None and (job.status, job.mlflow_run_id) == ("succeeded", "real")


async def test_only_the_apis_announcement_of_an_end_settles_the_jobs_waiting_on_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await claimed_job(sessions)
    async with sessions() as session:
        waiting = await new_job(session, status="waiting")
        session.add(JobDependency(job_id=waiting.id, depends_on_id=first))
        await session.commit()
        waiting_id = waiting.id
    # No pipeline job here: MLflow is never asked (the address is no server).
    http = httpx.AsyncClient()
    mlflow = MlflowReader(MlflowSettings(tracking_uri="http://127.0.0.1:9"), http)
    consumer = DependencyConsumer(sessions=sessions, signers=SIGNERS, mlflow=mlflow)
    broker = await _broker(
        topology.API_DEPENDENCIES_QUEUE, topology.API_DEPENDENCIES_BINDINGS, consumer.consumer
    )
    ended = make_event(
        JobStatusChanged(
            experiment_id=uuid.uuid4(),
            transition_id=1,
            from_status="running",
            to_status="succeeded",
            at=utcnow(),
        ),
        producer="api",
        job_id=first,
        attempt=1,
    )

    async def status_after(key: SigningKey | None) -> str:
        broker.signing_key = key
        await broker.publish(EVENTS, topology.STATUS_CHANGED_ROUTING_KEY, ended)
        await broker.drain()
        async with sessions() as session:
            job = await session.get(Job, waiting_id)
            assert job is not None
            return job.status

    # Announced by the api, but not so in the database: nothing to settle.
    assert await status_after(API_KEY) == "waiting"
    await move_and_commit(sessions, first, transitions.JobStatus.SUCCEEDED, seq=1)
    # Ended now, but announced by a worker, unsigned, or with a guessed key: not believed.
    for key in (worker_key(), None, SigningKey(API_SIGNER, b"guessed")):
        assert await status_after(key) == "waiting"
    assert await status_after(API_KEY) == "queued"
    await broker.__aexit__(None, None, None)
    await http.aclose()
