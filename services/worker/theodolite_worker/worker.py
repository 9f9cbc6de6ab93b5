"""The worker process: consumes ``jobs.<queue>``, heartbeats, stops on SIGTERM.

``Worker`` is where the parts meet: it builds them on entry, each resource on one
``AsyncExitStack``, and on exit drains the running jobs before it closes them in reverse order.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

from tenacity import AsyncRetrying, before_sleep_log, stop_after_delay, wait_exponential

from theodolite.broker import Broker
from theodolite.storage import ObjectStore
from theodolite_worker.archive_cache import ArchiveCache
from theodolite_worker.claims import JobClaims, event_signing_key
from theodolite_worker.consumers import ControlConsumer, JobConsumer
from theodolite_worker.environments import EnvironmentBuilder, detect_capabilities
from theodolite_worker.jobs import JobRunner
from theodolite_worker.loops import Heartbeat, PluginAnnouncer
from theodolite_worker.observability.metrics import serving_metrics
from theodolite_worker.plugin_cache import PluginCache
from theodolite_worker.sandboxing import Sandboxes, isolation_at_start, isolation_report
from theodolite_worker.settings import WorkerSettings
from theodolite_worker.state import WorkerState
from theodolite_worker.tracking import JobRunTracker
from theodolite_worker.warm_pool import WarmPool, running_warm_pool

log = logging.getLogger(__name__)

STARTUP_RETRY_S = 300.0


class Worker:
    """Serves one queue for as long as it is entered; builds nothing until then."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.state = WorkerState()
        self._stack: AsyncExitStack | None = None
        self._jobs: JobConsumer | None = None

    async def __aenter__(self) -> Self:
        settings = self.settings
        token = settings.token.get_secret_value() if settings.token else None
        # First, before any thread or the warm pool: the probe forks, and a host that allows no
        # sandbox stops the worker here (unless weaker isolation is accepted).
        isolation = isolation_at_start(settings)
        sandboxes = Sandboxes(settings, isolation)  # sets the jobs' PREFECT_API_URL first
        self.state.isolation = isolation_report(settings, isolation)
        # What declared environments it can build (uv, its Pythons, conda): a second at most.
        capabilities = detect_capabilities(settings)
        self.state.environments = capabilities.support()
        async with AsyncExitStack() as stack:
            warm_pool: WarmPool | None = None
            if settings.warm_pool:
                # First, as it takes seconds to warm up (jobs before that run cold).
                warm_pool = await stack.enter_async_context(
                    running_warm_pool(settings.warm_pool_preload)
                )
            metrics_port = stack.enter_context(serving_metrics(settings, self.state, warm_pool))
            if metrics_port is not None:
                log.info("metrics on http://%s:%d/metrics", settings.metrics_host, metrics_port)
            broker = await stack.enter_async_context(
                Broker(
                    settings.broker.url,
                    client_name=f"theodolite-worker-{settings.worker_id}",
                    job_delivery_limit=settings.broker.job_delivery_limit,
                    signing_key=event_signing_key(settings.worker_id, token),
                )
            )
            claims = await stack.enter_async_context(
                JobClaims(
                    settings.api_url,
                    settings.worker_id,
                    token=token,
                )
            )
            store = ObjectStore(settings.storage)
            plugins = PluginCache(
                store=store,
                bucket=settings.storage.plugin_bucket,
                directory=settings.work_dir / "plugins",
            )
            runner = JobRunner(
                settings=settings,
                plugins=plugins,
                cache=ArchiveCache(
                    store=store,
                    bucket=settings.storage.entrypoint_bucket,
                    directory=settings.work_dir / "archives",
                ),
                tracker=JobRunTracker(settings.mlflow.tracking_uri),
                warm_pool=warm_pool,
                sandboxes=sandboxes,
                environments=EnvironmentBuilder(settings, capabilities),
            )
            # Before the first heartbeat: a worker counted live has said what its jobs can use.
            await stack.enter_async_context(PluginAnnouncer(broker=broker, settings=settings))
            jobs = JobConsumer(
                broker=broker,
                queue=settings.queue,
                slots=settings.slots,
                worker_id=settings.worker_id,
                state=self.state,
                claims=claims,
                runner=runner,
            )
            control = ControlConsumer(broker=broker, state=self.state, plugins=plugins)
            async for attempt in AsyncRetrying(  # the broker may restart while we start
                wait=wait_exponential(multiplier=0.5, max=5),
                stop=stop_after_delay(STARTUP_RETRY_S),
                before_sleep=before_sleep_log(log, logging.WARNING),
                reraise=True,
            ):
                with attempt:
                    await control.subscribe()
                    await jobs.subscribe()
            await stack.enter_async_context(
                Heartbeat(broker=broker, settings=settings, state=self.state)
            )
            self._jobs, self._stack = jobs, stack.pop_all()
        log.info(
            "worker %s serving queue %s with %d slot(s)",
            settings.worker_id,
            settings.queue,
            settings.slots,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None and self._jobs is not None, "entered first"
        try:
            # While heartbeats go on saying "stopping": the api must not think it lost.
            await self._jobs.stop(self.settings.shutdown_grace_s)
        finally:
            stack, self._stack, self._jobs = self._stack, None, None
            await stack.__aexit__(exc_type, exc, tb)
