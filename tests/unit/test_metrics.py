"""What Prometheus scrapes: the api's /metrics (internal listener only) with the deployment's
state read from a real database and the broker, the histograms its job event consumer observes,
requests by route template, request ids; the registry's and the worker's /metrics."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from theodolite_registry.app import create_app as create_registry_app
from theodolite_registry.publishing import Principal, VersionConflict

from tests.fixtures.database import claimed_job, sessions, submitted_job
from tests.fixtures.events import (
    SIGNERS,
    WORKER_SECRET,
    job_submitted,
    job_submitted_event,
    worker_key,
)
from tests.fixtures.job_runs import echo_runner
from tests.unit.test_plugin_owners import GROUP_A, Registry, registry
from theodolite import topology
from theodolite.db.status_tables import Pipeline
from theodolite.db.tables import Job, Worker, utcnow
from theodolite.events import JobStarted, JobSucceeded, make_event
from theodolite.memory_broker import InMemoryBroker
from theodolite.web.observed import REQUEST_ID_HEADER
from theodolite_api.app import create_app, create_internal_app
from theodolite_api.consumers.job_events import JobEventConsumer
from theodolite_api.observability.metrics import read_snapshot, scrape_state
from theodolite_api.settings import ApiSettings
from theodolite_api.state import AppState
from theodolite_worker.observability.metrics import serving_metrics
from theodolite_worker.settings import WorkerSettings
from theodolite_worker.state import WorkerState

__all__ = ["registry", "sessions"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    """``{(name, sorted labels): value}`` of an exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _apps(state: Any) -> tuple[FastAPI, FastAPI]:
    public = create_app(ApiSettings(worker_secret=SecretStr(WORKER_SECRET)))
    public.state.core = state
    return public, create_internal_app(public)


async def _get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as http:
        return await http.get(path, headers=headers)


async def test_the_api_shows_jobs_queues_workers_pipelines_and_outbox_lag(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await submitted_job(sessions)  # queued on cpu; its events wait in the outbox
    async with sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        now = utcnow()
        session.add(
            Worker(
                id="w1",
                queue="cpu",
                hostname="h",
                pid=1,
                slots=2,
                busy=0,
                started_at=now,
                last_seen_at=now,
            )
        )
        session.add(
            Pipeline(
                experiment_id=job.experiment_id,
                group_id=job.group_id,
                name="p",
                stages={},
                depends_on={},
                status="running",
            )
        )
        await session.commit()
    async with InMemoryBroker() as broker:
        await broker.declare_job_queue("cpu")
        for _ in range(2):
            await broker.publish(topology.JOBS_EXCHANGE.name, "cpu", job_submitted_event())
        state = SimpleNamespace(settings=ApiSettings(), sessions=sessions, broker=broker)
        public, internal = _apps(state)
        await _get(public, "/healthz")
        answer = await _get(internal, "/metrics")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        samples = _samples(answer.text)
        # Scrapers hold no API key: the public port has no /metrics, the OpenAPI document none.
        assert (await _get(public, "/metrics")).status_code == 404
        assert "/metrics" not in public.openapi()["paths"]

    assert _value(samples, "theodolite_api_state_up") == 1
    assert _value(samples, "theodolite_jobs", queue="cpu", status="queued") == 1
    assert _value(samples, "theodolite_pipelines", status="running") == 1
    assert _value(samples, "theodolite_queue_depth", queue="cpu") == 2
    assert _value(samples, "theodolite_queue_live_workers", queue="cpu") == 1
    assert _value(samples, "theodolite_outbox_unpublished") == 1  # its job.status_changed
    lag = _value(samples, "theodolite_outbox_lag_seconds")
    assert lag is not None and lag >= 0
    healthz = {"service": "api", "method": "GET", "route": "/healthz", "status": "200"}
    assert (_value(samples, "theodolite_http_requests_total", **healthz) or 0) >= 1


async def test_a_scrape_answers_while_the_broker_or_the_database_does_not(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await submitted_job(sessions)  # a queue to ask the broker about

    class StuckBroker:
        async def queue_message_count(self, name: str) -> int:
            await asyncio.sleep(3600)
            return 0

    def away() -> Any:
        raise ConnectionError("the database is away")

    for state in (
        SimpleNamespace(settings=ApiSettings(), sessions=sessions, broker=StuckBroker()),
        SimpleNamespace(settings=ApiSettings(), sessions=away, broker=StuckBroker()),
    ):
        snapshot = await read_snapshot(cast(AppState, state), timeout_s=0.2)
        assert not snapshot.up and snapshot.jobs == {}
        text = scrape_state(snapshot).decode()
        assert "theodolite_api_state_up 0.0" in text and "theodolite_jobs" not in text


async def test_requests_are_counted_by_route_template_and_carry_a_request_id(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    public, _ = _apps(SimpleNamespace(settings=ApiSettings(), sessions=sessions))
    job_path = f"/api/v1/jobs/{uuid.uuid4()}"
    refused = await _get(public, job_path, **{REQUEST_ID_HEADER: "req-42"})
    assert refused.status_code == 401  # no key: the route matched, its caller did not
    assert refused.headers[REQUEST_ID_HEADER] == "req-42"
    made = (await _get(public, "/healthz", **{REQUEST_ID_HEADER: "no spaces\tor tabs"})).headers
    assert re.fullmatch(r"[0-9a-f]{32}", made[REQUEST_ID_HEADER])
    labels = {"service": "api", "method": "GET", "route": "/api/v1/jobs/{job_id}", "status": "401"}
    assert (REGISTRY.get_sample_value("theodolite_http_requests_total", labels) or 0) >= 1
    raw = [s for s in REGISTRY.collect() for x in s.samples if x.labels.get("route") == job_path]
    assert raw == []  # never by raw path


async def test_queue_wait_and_run_time_are_observed_when_the_api_records_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(f"{name}_count", labels) or 0.0

    waited = count("theodolite_job_queue_wait_seconds", queue="cpu")
    ran = count("theodolite_job_duration_seconds", queue="cpu", status="succeeded")
    job_id = await claimed_job(sessions)  # queued, then running at the worker w's claim
    consumer = JobEventConsumer(sessions=sessions, signers=SIGNERS)
    async with InMemoryBroker(signing_key=worker_key()) as broker:
        await broker.declare_event_queue(topology.API_EVENTS_QUEUE, topology.API_EVENTS_BINDINGS)
        await broker.consume(topology.API_EVENTS_QUEUE, consumer.consumer, prefetch=1)
        for seq, payload in enumerate(
            [JobStarted(worker_id="w", mlflow_run_id="r"), JobSucceeded(mlflow_run_id="r")], 1
        ):
            event = make_event(payload, producer="w", job_id=job_id, attempt=1, seq=seq)
            await broker.publish(topology.EVENTS_EXCHANGE.name, event.type.value, event)
        await broker.drain()
    assert count("theodolite_job_queue_wait_seconds", queue="cpu") == waited + 1
    assert count("theodolite_job_duration_seconds", queue="cpu", status="succeeded") == ran + 1


async def test_the_registry_counts_publishes_by_outcome(registry: Registry) -> None:
    def published(outcome: str) -> float:
        labels = {"source": "upload", "outcome": outcome}
        return REGISTRY.get_sample_value("theodolite_plugin_publishes_total", labels) or 0.0

    before = {o: published(o) for o in ("published", "existing", "conflict")}
    name = f"n{uuid.uuid4().hex[:8]}"
    async with registry.sessions() as session:
        for data in (f"{name}==1.0", f"{name}==1.0", f"{name}==1.0 other"):
            try:
                await registry.publisher.publish(
                    session, data.encode(), "p.tar.gz", "upload", Principal(GROUP_A)
                )
            except VersionConflict:
                pass
    assert {o: published(o) - before[o] for o in before} == {
        "published": 1,
        "existing": 1,
        "conflict": 1,
    }
    answer = await _get(create_registry_app(), "/metrics")
    samples = _samples(answer.text)
    assert _value(samples, "theodolite_plugin_publishes_total", source="upload", outcome="existing")
    assert "/metrics" not in create_registry_app().openapi()["paths"]


async def test_the_worker_serves_slots_running_jobs_warm_pool_and_start_times(
    tmp_path: Path,
) -> None:
    settings = WorkerSettings(
        work_dir=tmp_path, slots=3, worker_id="wm", queue="cpu", metrics_port=0, warm_pool=False
    )
    state = WorkerState()
    cold = {"queue": "cpu", "start": "cold"}
    before = REGISTRY.get_sample_value("theodolite_worker_job_start_seconds_count", cold) or 0.0
    await echo_runner(tmp_path).run(
        uuid.uuid4(),
        1,
        job_submitted(),
        _Events(),  # type: ignore[arg-type]
    )
    with serving_metrics(settings, state, None) as port:
        assert port is not None
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{port}/metrics")
    samples = _samples(answer.text)
    mine = {"queue": "cpu", "worker_id": "wm"}
    assert _value(samples, "theodolite_worker_slots", **mine) == 3
    assert _value(samples, "theodolite_worker_jobs_running", **mine) == 0
    assert _value(samples, "theodolite_worker_warm_pool_ready", **mine) == 0
    assert _value(samples, "theodolite_worker_job_start_seconds_count", **cold) == before + 1
    # Off unless a port is set.
    with serving_metrics(settings.model_copy(update={"metrics_port": None}), state, None) as off:
        assert off is None


class _Events:
    """The job's events, kept (the broker is not this test's)."""

    def __init__(self) -> None:
        self.published: list[object] = []

    async def publish(self, payload: object) -> None:
        self.published.append(payload)
