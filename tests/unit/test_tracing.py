"""One trace follows a job: the submitting request, the outbox relay's publish, the worker's
consume, claim (and the api's side of it) and run, and the api recording its events and
announcing its end, all linked parent to child through the envelope's ``trace``. The real api
apps, relay, job event consumer, worker consumer, claims client and job runner, on the
in-memory broker and a real database."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.fixtures.database import new_job, sessions
from tests.fixtures.events import SIGNERS, WORKER_SECRET, worker_key
from tests.fixtures.job_runs import echo_runner
from tests.fixtures.tracing import FinishedSpans, finished_spans
from theodolite import topology
from theodolite.db.tables import EntryPointArchive, Experiment, Job, utcnow
from theodolite.events import Envelope, JobSucceeded, make_event
from theodolite.lifecycle import JobStatus
from theodolite.memory_broker import InMemoryBroker
from theodolite.observability.tracing import span_from
from theodolite_api.app import create_app, create_internal_app
from theodolite_api.auth.worker_keys import worker_token
from theodolite_api.consumers.job_events import JobEventConsumer
from theodolite_api.jobs import transitions
from theodolite_api.jobs.messages import enqueue_attempt
from theodolite_api.loops.outbox_relay import OutboxRelay
from theodolite_api.settings import ApiSettings
from theodolite_worker.claims import JobClaims
from theodolite_worker.consumers import JobConsumer
from theodolite_worker.state import WorkerState

__all__ = ["finished_spans", "sessions"]


def _apps(sessions: async_sessionmaker[AsyncSession]) -> tuple[FastAPI, FastAPI]:
    """The api's public app with one submission route of the test's (the real submission's
    writes, without its validation), and its internal listener, on the test's database."""
    public = create_app(ApiSettings(worker_secret=SecretStr(WORKER_SECRET)))
    public.state.core = SimpleNamespace(
        settings=public.state.settings, sessions=sessions, relay=SimpleNamespace(wake=lambda: None)
    )

    async def submit() -> dict[str, str]:
        async with sessions() as session:
            job = await new_job(session, status="")
            experiment = await session.get(Experiment, job.experiment_id)
            archive = await session.get(EntryPointArchive, job.entrypoint_id)
            assert experiment is not None and archive is not None
            await transitions.record_submission(session=session, job=job, at=utcnow())
            enqueue_attempt(session=session, job=job, experiment=experiment, archive=archive)
            await session.commit()
            return {"id": str(job.id)}

    public.add_api_route("/test/submit", submit, methods=["POST"])
    return public, create_internal_app(public)


def _by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_one_trace_covers_submit_outbox_worker_and_terminal_event(
    sessions: async_sessionmaker[AsyncSession], finished_spans: FinishedSpans, tmp_path: Path
) -> None:
    public, internal = _apps(sessions)
    async with InMemoryBroker(signing_key=worker_key()) as broker:
        await broker.declare_job_queue("cpu")
        api_events = JobEventConsumer(sessions=sessions, signers=SIGNERS)
        await broker.declare_event_queue(topology.API_EVENTS_QUEUE, topology.API_EVENTS_BINDINGS)
        await broker.consume(topology.API_EVENTS_QUEUE, api_events.consumer, prefetch=1)
        # The relay names the real broker's type; the in-memory one is its interface.
        relay = OutboxRelay(sessions=sessions, broker=broker, interval_s=60)  # type: ignore[arg-type]
        runner = echo_runner(tmp_path)
        async with JobClaims(
            "http://api-internal",
            "w",
            token=worker_token(WORKER_SECRET, "w"),
            transport=httpx.ASGITransport(app=internal),
        ) as claims:
            worker = JobConsumer(
                broker=broker,
                queue="cpu",
                slots=1,
                worker_id="w",
                state=WorkerState(),
                claims=claims,
                runner=runner,
            )
            await worker.subscribe()
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=public), base_url="http://api"
            ) as http:
                answer = await http.post("/test/submit")
            assert answer.status_code == 200
            job_id = uuid.UUID(answer.json()["id"])
            await relay.publish_pending()  # job.status_changed (queued) and job.submitted
            await broker.drain(timeout_s=60)  # the worker claims and runs; the api records
            await relay.publish_pending()  # the claim's and the end's announcements
            await broker.drain()
            await worker.stop(grace_s=5)
    async with sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.SUCCEEDED.value

    spans = finished_spans()
    by_name = _by_name(spans)
    # One trace, from the request on.
    (request,) = by_name["POST /test/submit"]
    assert request.kind is SpanKind.SERVER and request.parent is None
    assert {span.context.trace_id for span in spans if span.context} == {
        request.context.trace_id if request.context else 0
    }
    assert (
        request.attributes
        and request.attributes["theodolite.request_id"] == answer.headers["X-Request-ID"]
    )
    # The request's outbox rows go out in publish spans, children of the route's own span.
    (endpoint,) = [s for s in by_name["fastapi.endpoint"] if _parent(s) == _id(request)]
    (published,) = by_name["publish job.submitted"]
    assert published.kind is SpanKind.PRODUCER and _parent(published) == _id(endpoint)
    # The worker consumes the message the relay sent, claims and runs it in that span.
    (consumed,) = by_name["consume job.submitted"]
    assert consumed.kind is SpanKind.CONSUMER and _parent(consumed) == _id(published)
    (claim,) = by_name["claim job"]
    (run,) = by_name["run job"]
    assert _parent(claim) == _id(consumed) and _parent(run) == _id(consumed)
    # The api's side of the claim answers in the worker's claim span.
    (claimed,) = by_name["POST /internal/jobs/{job_id}/claim"]
    assert claimed.kind is SpanKind.SERVER and _parent(claimed) == _id(claim)
    # Its running transition is announced in that trace too.
    (arbiter,) = [s for s in by_name["fastapi.endpoint"] if _parent(s) == _id(claimed)]
    assert [s for s in by_name["publish job.status_changed"] if _parent(s) == _id(arbiter)]
    # Every event the run published is recorded by the api in a child of the run.
    recorded = by_name["consume job.started"] + by_name["consume job.succeeded"]
    assert len(recorded) == 2 and {_parent(span) for span in recorded} == {_id(run)}
    assert all(
        span.attributes and span.attributes["messaging.consumer"] == "api events"
        for span in recorded
    )
    # And the api's announcement of the end goes out in that trace, from the recording.
    (succeeded,) = by_name["consume job.succeeded"]
    announced = [s for s in by_name["publish job.status_changed"] if _parent(s) == _id(succeeded)]
    assert len(announced) == 1


def test_the_trace_rides_in_the_signed_envelope_and_old_envelopes_decode(
    finished_spans: FinishedSpans,
) -> None:
    old = Envelope.model_validate_json(
        b'{"type": "job.succeeded", "producer": "w", "payload": {"mlflow_run_id": "r"}}'
    )
    assert old.trace == {}
    # Outside any span: nothing to carry, nothing made up.
    assert make_event(JobSucceeded(mlflow_run_id="r"), producer="w").trace == {}
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    with span_from("parent", carrier):
        event = make_event(JobSucceeded(mlflow_run_id="r"), producer="w")
    assert event.trace["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    # The body a signature covers is the whole envelope, its trace included.
    key = worker_key()
    signed = key.headers(event.to_bytes())
    grafted = event.model_copy(update={"trace": carrier}).to_bytes()
    assert key.headers(grafted) != signed
