"""The worker process: consumes ``jobs.<queue>``, heartbeats, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from aio_pika.abc import AbstractIncomingMessage
from tenacity import AsyncRetrying, before_sleep_log, stop_after_delay, wait_exponential

from theodolite import topology
from theodolite.broker import Broker, Consumption
from theodolite.events import (
    JobCancel,
    JobSubmitted,
    PluginPublished,
    UndecodableEvent,
    WorkerHeartbeat,
    WorkerPlugins,
    decode_event,
    make_event,
)
from theodolite.storage import ObjectStore
from theodolite_worker.archive_cache import ArchiveCache
from theodolite_worker.claims import JobClaims
from theodolite_worker.job_events import JobEventPublisher
from theodolite_worker.jobs import JobControl, JobRunner
from theodolite_worker.plugin_cache import PluginCache
from theodolite_worker.plugins import installed_plugins
from theodolite_worker.settings import WorkerSettings
from theodolite_worker.tracking import JobRunTracker
from theodolite_worker.warm_pool import WarmPool

log = logging.getLogger(__name__)

STARTUP_RETRY_S = 300.0


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._broker = Broker(
            settings.broker.url,
            client_name=f"theodolite-worker-{settings.worker_id}",
            job_delivery_limit=settings.broker.job_delivery_limit,
        )
        store = ObjectStore(settings.storage)
        self._warm_pool = WarmPool(settings.warm_pool_preload) if settings.warm_pool else None
        self._warm_pool_start: asyncio.Future[bool] | None = None
        self._plugin_cache = PluginCache(
            store=store,
            bucket=settings.storage.plugin_bucket,
            directory=settings.work_dir / "plugins",
        )
        self._runner = JobRunner(
            settings=settings,
            plugins=self._plugin_cache,
            cache=ArchiveCache(
                store=store,
                bucket=settings.storage.entrypoint_bucket,
                directory=settings.work_dir / "archives",
            ),
            tracker=JobRunTracker(settings.mlflow.tracking_uri),
            warm_pool=self._warm_pool,
        )
        self._started_at = datetime.now(UTC)
        self._busy = 0
        self._stopping = False
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._plugins_task: asyncio.Task[None] | None = None
        self._plugins: WorkerPlugins | None = None
        self._prefetches: set[asyncio.Task[object]] = set()
        self._controls: dict[uuid.UUID, JobControl] = {}  # running attempts, by job
        self._consumption: Consumption | None = None
        self._claims = JobClaims(settings.api_url, settings.worker_id)
        # Messages are acked once claimed, which frees the broker's prefetch window: the slots
        # themselves bound how many jobs run here at once.
        self._slots = asyncio.Semaphore(settings.slots)
        self._running: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        if self._warm_pool is not None:
            # In the background: jobs that come before it is warm run cold. It takes the
            # environment as it is now (Prefect reads its settings at import).
            self._warm_pool_start = asyncio.ensure_future(asyncio.to_thread(self._warm_pool.start))
        try:
            await self._broker.__aenter__()
            # Before the first heartbeat: a worker counted live has said what its jobs can use.
            await self._announce_plugins()
            async for attempt in AsyncRetrying(  # the broker may restart while we start
                wait=wait_exponential(multiplier=0.5, max=5),
                stop=stop_after_delay(STARTUP_RETRY_S),
                before_sleep=before_sleep_log(log, logging.WARNING),
                reraise=True,
            ):
                with attempt:
                    await self._subscribe()
        except BaseException:
            await self._stop_warm_pool()
            raise
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        self._plugins_task = asyncio.create_task(self._announce_plugins_loop(), name="plugins")
        log.info(
            "worker %s serving queue %s with %d slot(s)",
            self.settings.worker_id,
            self.settings.queue,
            self.settings.slots,
        )
        return self

    async def _subscribe(self) -> None:
        await self._broker.consume_broadcasts(
            topology.CONTROL_EXCHANGE.name, ["plugin.*", "job.cancel"], self._on_control
        )
        queue = await self._broker.declare_job_queue(self.settings.queue)
        self._consumption = await self._broker.consume(
            queue, self._on_message, prefetch=self.settings.slots
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        if self._consumption is not None:
            await self._consumption.stop()  # takes no new job; unclaimed ones go back
        if self._running:
            log.info(
                "letting %d job(s) finish (up to %.0f s)",
                len(self._running),
                self.settings.shutdown_grace_s,
            )
            _, unfinished = await asyncio.wait(
                self._running, timeout=self.settings.shutdown_grace_s
            )
            if unfinished:
                log.warning("handing back %d unfinished job(s)", len(unfinished))
                for control in self._controls.values():
                    control.request("shutdown")
                await asyncio.wait(unfinished)
        await self._claims.close()
        for task in (self._heartbeat_task, self._plugins_task):
            if task is not None:
                task.cancel()
        try:
            await self._send_heartbeat()
        except Exception:
            log.warning("could not announce shutdown", exc_info=True)
        try:
            await self._broker.__aexit__(exc_type, exc, tb)
        finally:
            await self._stop_warm_pool()

    async def _stop_warm_pool(self) -> None:
        if self._warm_pool is None or self._warm_pool_start is None:
            return
        await asyncio.to_thread(self._warm_pool.shutdown)
        try:
            await self._warm_pool_start
        except Exception:
            log.warning("the warm pool failed to start", exc_info=True)

    async def _send_heartbeat(self) -> None:
        heartbeat = WorkerHeartbeat(
            worker_id=self.settings.worker_id,
            queue=self.settings.queue,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            slots=self.settings.slots,
            busy=self._busy,
            started_at=self._started_at,
            stopping=self._stopping,
            running_jobs=list(self._controls),
        )
        event = make_event(heartbeat, producer=self.settings.worker_id)
        await self._broker.publish(topology.EVENTS_EXCHANGE.name, event.type.value, event)

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self._send_heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("heartbeat failed", exc_info=True)
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def _announce_plugins(self) -> None:
        """Tell the api which plugins jobs here can use, so it validates graphs against them.

        Found once, in a subprocess (no plugin is imported into the worker), then repeated now
        and then so an api that lost it learns it again."""
        try:
            if self._plugins is None:
                found = await installed_plugins()
                self._plugins = WorkerPlugins(
                    worker_id=self.settings.worker_id, queue=self.settings.queue, **found
                )
                log.info(
                    "plugins for jobs: %s%s",
                    ", ".join(f"{p.name}=={p.version}" for p in self._plugins.plugins) or "none",
                    f" (not loadable: {self._plugins.errors})" if self._plugins.errors else "",
                )
            event = make_event(self._plugins, producer=self.settings.worker_id)
            await self._broker.publish(topology.EVENTS_EXCHANGE.name, event.type.value, event)
        except Exception:
            log.warning("plugin announcement failed", exc_info=True)

    async def _announce_plugins_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.plugin_announce_interval_s)
            await self._announce_plugins()

    async def _on_control(self, message: AbstractIncomingMessage) -> None:
        """Prefetch each published plugin version, so jobs that pin it start at once."""
        async with message.process(ignore_processed=True):
            try:
                envelope, payload = decode_event(message.body)
            except UndecodableEvent as exc:
                log.warning("ignoring control message: %s", exc)
                return
            if isinstance(payload, JobCancel):
                control = self._controls.get(envelope.job_id) if envelope.job_id else None
                if control is not None:
                    log.info("job %s: cancel requested", envelope.job_id)
                    control.request("cancel")
                return
            if isinstance(payload, PluginPublished):
                task = asyncio.create_task(
                    self._plugin_cache.ensure(payload.wheel_key, payload.wheel_sha256)
                )
                self._prefetches.add(task)
                task.add_done_callback(self._prefetched)

    def _prefetched(self, task: asyncio.Task[object]) -> None:
        self._prefetches.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("plugin prefetch failed: %s", task.exception())

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        self._busy += 1
        try:
            await self._handle(message)
        finally:
            self._busy -= 1
            self._running.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope, payload = decode_event(message.body)
            if not isinstance(payload, JobSubmitted) or envelope.job_id is None:
                raise UndecodableEvent(f"expected job.submitted with a job id, got {envelope.type}")
        except UndecodableEvent as exc:
            log.error("dead-lettering job message %s: %s", message.message_id, exc)
            await message.reject(requeue=False)
            return
        job_id, attempt = envelope.job_id, envelope.attempt
        if job_id in self._controls:  # redelivered while it runs here: never twice at once
            log.warning("job %s attempt %s runs here already: duplicate dropped", job_id, attempt)
            await message.ack()
            return
        async with self._slots:
            await self._claim_and_run(message, payload, job_id, attempt)

    async def _claim_and_run(
        self,
        message: AbstractIncomingMessage,
        payload: JobSubmitted,
        job_id: uuid.UUID,
        attempt: int,
    ) -> None:
        if self._stopping:
            await message.nack(requeue=True)  # not claimed: another worker takes it
            return
        claim = await self._claims.claim(job_id, attempt, lambda: self._stopping)
        if claim is None:  # shutting down before the api answered: leave it to others
            await message.nack(requeue=True)
            return
        # Claimed or refused, the message has done its work: the api owns the job from here
        # (a job that outlives RabbitMQ's consumer_timeout is never redelivered; a worker that
        # dies is found by its missing heartbeats and the job re-queued by the api).
        await message.ack()
        if not claim.claimed:
            log.info("job %s attempt %s not run: %s", job_id, attempt, claim.reason)
            return
        log.info("job %s attempt %s: starting", job_id, attempt)
        control = JobControl()
        self._controls[job_id] = control
        events = JobEventPublisher(
            broker=self._broker,
            job_id=job_id,
            attempt=attempt,
            producer=self.settings.worker_id,
        )
        try:
            await self._runner.run(job_id, attempt, payload, events, control)
        finally:
            del self._controls[job_id]
        log.info("job %s attempt %s: done", job_id, attempt)
