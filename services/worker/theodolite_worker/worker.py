"""The worker process: consumes ``jobs.<queue>``, heartbeats, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from aio_pika.abc import AbstractIncomingMessage
from theodolite import topology
from theodolite.broker import Broker
from theodolite.events import (
    JobSubmitted,
    UndecodableEvent,
    WorkerHeartbeat,
    decode_event,
    make_event,
)
from theodolite.storage import ObjectStore

from theodolite_worker.archive_cache import ArchiveCache
from theodolite_worker.job_events import JobEventPublisher
from theodolite_worker.jobs import JobRunner
from theodolite_worker.settings import WorkerSettings
from theodolite_worker.tracking import JobRunTracker

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._broker = Broker(
            settings.broker.url,
            client_name=f"theodolite-worker-{settings.worker_id}",
            job_delivery_limit=settings.broker.job_delivery_limit,
        )
        store = ObjectStore(settings.storage)
        self._runner = JobRunner(
            settings=settings,
            cache=ArchiveCache(
                store=store,
                bucket=settings.storage.entrypoint_bucket,
                directory=settings.work_dir / "archives",
            ),
            tracker=JobRunTracker(settings.mlflow.tracking_uri),
        )
        self._started_at = datetime.now(UTC)
        self._busy = 0
        self._stopping = False
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        await self._broker.__aenter__()
        queue = await self._broker.declare_job_queue(self.settings.queue)
        await self._broker.consume(queue, self._on_message, prefetch=self.settings.slots)
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        log.info(
            "worker %s serving queue %s with %d slot(s)",
            self.settings.worker_id,
            self.settings.queue,
            self.settings.slots,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        if self._running:
            await asyncio.wait(self._running)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        try:
            await self._send_heartbeat()
        except Exception:
            log.warning("could not announce shutdown", exc_info=True)
        await self._broker.__aexit__(exc_type, exc, tb)

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
        log.info("job %s attempt %s: starting", envelope.job_id, envelope.attempt)
        events = JobEventPublisher(
            broker=self._broker,
            job_id=envelope.job_id,
            attempt=envelope.attempt,
            producer=self.settings.worker_id,
        )
        await self._runner.run(envelope.job_id, envelope.attempt, payload, events)
        # Only now is the terminal event confirmed by the broker: the job message may go.
        await message.ack()
        log.info("job %s attempt %s: done", envelope.job_id, envelope.attempt)
