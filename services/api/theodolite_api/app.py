"""App factories: ``create_app(settings)``, the public api, whose lifespan owns engine, broker,
store and clients; ``create_internal_app(public)``, the workers' listener, on the same state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from tenacity import AsyncRetrying, before_sleep_log, wait_exponential

from theodolite import topology
from theodolite.archives import ArchiveLimits
from theodolite.storage import ObjectStore
from theodolite.web.errors import install_error_handlers
from theodolite.web.lifespan import open_broker, open_database
from theodolite.web.observed import TELEMETRY, ObservedRequests
from theodolite.web.openapi import declare_problem_responses
from theodolite_api.auth.authenticate import authorized, install_auth_error_handler
from theodolite_api.auth.callers import Scope
from theodolite_api.auth.oidc import OidcVerifier
from theodolite_api.auth.worker_keys import api_event_key, event_signers, worker_secret
from theodolite_api.auth.workers import install_worker_auth_error_handler
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.clients.registry import RegistryClient
from theodolite_api.consumers.dependencies import DependencyConsumer
from theodolite_api.consumers.job_events import JobEventConsumer
from theodolite_api.consumers.worker_events import WorkerEventConsumer
from theodolite_api.loops.outbox_relay import OutboxRelay
from theodolite_api.loops.reaper import JobReaper
from theodolite_api.notifications import notifications
from theodolite_api.repositories import queues as queue_repo
from theodolite_api.routes import (
    admin,
    entrypoints,
    events,
    experiments,
    health,
    internal,
    jobs,
    metrics,
    models,
    pipelines,
    plugins,
    queues,
    sweeps,
    tasks,
    webhooks,
)
from theodolite_api.settings import ApiSettings
from theodolite_api.state import AppState

log = logging.getLogger(__name__)


async def _declare_topology(state: AppState) -> None:
    await asyncio.to_thread(state.store.ensure_bucket, state.settings.storage.entrypoint_bucket)
    # The workers' queue first: heartbeats always have a queue while the old binding goes.
    await state.broker.declare_event_queue(
        topology.API_WORKER_EVENTS_QUEUE, topology.API_WORKER_EVENTS_BINDINGS
    )
    await state.broker.declare_event_queue(
        topology.API_EVENTS_QUEUE,
        topology.API_EVENTS_BINDINGS,
        retired_bindings=topology.API_EVENTS_RETIRED_BINDINGS,
    )
    await state.broker.declare_event_queue(
        topology.API_DEPENDENCIES_QUEUE, topology.API_DEPENDENCIES_BINDINGS
    )


async def _declare_job_queues(state: AppState) -> None:
    """Every job queue the database names, declared again (after a broker lost them). In the
    background: a broker slow with many quorum queues must not hold the api's readiness, and
    nothing is lost meanwhile, since a job whose queue is not back yet stays in the outbox (its
    publish is mandatory) and the relay sends it once the queue exists."""
    async with state.sessions() as session:
        names = [queue.name for queue in await queue_repo.all_queues(session=session)]
    started = time.monotonic()
    for name in names:
        # Until it works (the broker may be restarting): the api is up meanwhile.
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.5, max=30),
            before_sleep=before_sleep_log(log, logging.WARNING),
        ):
            with attempt:
                await state.broker.declare_job_queue(name)
    log.info("%d job queues declared in %.1f s", len(names), time.monotonic() - started)


@asynccontextmanager
async def _declaring_job_queues(state: AppState) -> AsyncIterator[None]:
    task = asyncio.create_task(_declare_job_queues(state), name="declare job queues")
    task.add_done_callback(_log_failure)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("declaring the job queues failed", exc_info=task.exception())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ApiSettings = app.state.settings
    async with AsyncExitStack() as stack:
        engine, sessions = await open_database(
            stack, settings.db, migrate=settings.migrate_on_start
        )
        secret = worker_secret(settings)
        broker = await open_broker(
            stack, settings.broker, client_name="theodolite-api", signing_key=api_event_key(secret)
        )
        http = await stack.enter_async_context(
            httpx.AsyncClient(timeout=settings.mlflow.request_timeout_s)
        )
        # Uploads are validated synchronously by the registry: allow it its time limit.
        registry_http = await stack.enter_async_context(httpx.AsyncClient(timeout=300))
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            broker=broker,
            store=ObjectStore(settings.storage),
            mlflow=MlflowReader(settings.mlflow, http),
            registry=RegistryClient(settings.registry_url, registry_http),
            relay=OutboxRelay(
                sessions=sessions,
                broker=broker,
                interval_s=settings.outbox_poll_interval_s,
            ),
            archive_limits=ArchiveLimits(**settings.archive_limits.model_dump()),
            oidc=OidcVerifier(settings.auth.oidc) if settings.auth.oidc.issuer else None,
        )
        await _declare_topology(state)
        await stack.enter_async_context(_declaring_job_queues(state))
        # Loops first, consumers after: a consumer's commit wakes the relay.
        await stack.enter_async_context(state.relay)
        await stack.enter_async_context(
            JobReaper(
                sessions=sessions,
                relay=state.relay,
                broker=broker,
                lost_after_s=settings.lost_after_s,
                interval_s=settings.reaper_interval_s,
            )
        )
        signers = event_signers(secret)
        job_events = JobEventConsumer(
            sessions=sessions,
            signers=signers,
            on_transition=state.relay.wake,
            max_log_lines=settings.max_log_lines,
        )
        # One at a time: a job's events must be applied in order (a later one makes earlier
        # ones look stale). Competing replicas each take their share.
        consumption = await broker.consume(
            topology.API_EVENTS_QUEUE, job_events.consumer, prefetch=1
        )
        stack.push_async_callback(consumption.close)
        # Heartbeats and plugin announcements on their own queue: never behind a job event.
        worker_events = WorkerEventConsumer(sessions=sessions, signers=signers)
        worker_consumption = await broker.consume(
            topology.API_WORKER_EVENTS_QUEUE,
            worker_events.consumer,
            prefetch=worker_events.prefetch,
        )
        stack.push_async_callback(worker_consumption.close)
        # Jobs waiting on others: queued or skipped when one ends.
        dependencies = DependencyConsumer(
            sessions=sessions, signers=signers, mlflow=state.mlflow, on_transition=state.relay.wake
        )
        dependency_consumption = await broker.consume(
            topology.API_DEPENDENCIES_QUEUE, dependencies.consumer, prefetch=dependencies.prefetch
        )
        stack.push_async_callback(dependency_consumption.close)
        # Server-sent event fan-out and webhook delivery (stopped before the broker closes).
        app.state.notifications = await stack.enter_async_context(notifications(state))
        app.state.core = state
        yield


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    app = FastAPI(
        title="Theodolite",
        summary="An open testbed for machine-learning security experiments.",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=TELEMETRY,
    )
    app.state.settings = settings or ApiSettings()
    app.add_middleware(ObservedRequests, service="api")
    install_error_handlers(app)
    install_auth_error_handler(app)
    app.include_router(health.router)
    # Every /api/v1 route has a caller; reading needs the read scope, writing the router's.
    submitting = [authorized(Scope.SUBMIT)]
    for module in (experiments, entrypoints, jobs, tasks, models):
        app.include_router(module.router, prefix="/api/v1", dependencies=submitting)
    # Notifications (event streams, webhooks), sweeps and pipelines.
    for module in (events, webhooks, sweeps, pipelines):
        app.include_router(module.router, prefix="/api/v1", dependencies=submitting)
    publishing = [authorized(Scope.PUBLISH_PLUGINS)]
    app.include_router(plugins.router, prefix="/api/v1", dependencies=publishing)
    app.include_router(queues.router, prefix="/api/v1", dependencies=[authorized(Scope.ADMIN)])
    administering = [authorized(Scope.ADMIN, read_scope=Scope.ADMIN)]
    app.include_router(admin.router, prefix="/api/v1", dependencies=administering)
    app.include_router(admin.me_router, prefix="/api/v1", dependencies=submitting)
    declare_problem_responses(app)
    return app


def create_internal_app(public: FastAPI) -> FastAPI:
    """The internal listener's app (worker claims, Prometheus' ``/metrics``): never the public
    port's, with no lifespan of its own but the public app's state (its settings, engine, relay)."""
    worker_secret(public.state.settings)  # production without a worker secret does not start
    app = FastAPI(
        title="Theodolite internal",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=TELEMETRY,
    )
    app.state = public.state
    app.add_middleware(ObservedRequests, service="api-internal")
    install_error_handlers(app)
    install_worker_auth_error_handler(app)
    app.include_router(internal.router)
    app.include_router(metrics.router)  # Prometheus scrapes here (no API key to hold)
    return app
