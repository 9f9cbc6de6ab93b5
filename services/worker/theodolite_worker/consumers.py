"""The worker's message handling: ``jobs.<queue>`` (claim, ack, run) and control broadcasts
(cancel a running attempt, prefetch a published plugin), on the core's typed consumer adapter."""

from __future__ import annotations

import asyncio
import logging
import uuid

from theodolite import topology
from theodolite.broker import ConsumptionHandle, IncomingMessage, MessageBroker
from theodolite.consumers import Consumer, Delivery, Outcome, Reject, Requeue
from theodolite.events import Envelope, JobCancel, JobSubmitted, PluginPublished
from theodolite.observability.context import bound
from theodolite.observability.tracing import tracer
from theodolite_worker.claims import JobClaims
from theodolite_worker.job_events import JobEventPublisher
from theodolite_worker.jobs import JobControl, JobRunner
from theodolite_worker.plugin_cache import PluginCache
from theodolite_worker.state import WorkerState

log = logging.getLogger(__name__)


class JobConsumer:
    """``jobs.<queue>``: each submitted attempt is claimed from the api, acked, then run."""

    def __init__(
        self,
        *,
        broker: MessageBroker,
        queue: str,
        slots: int,
        worker_id: str,
        state: WorkerState,
        claims: JobClaims,
        runner: JobRunner,
    ) -> None:
        self._broker = broker
        self._queue = queue
        self._prefetch = slots
        self._worker_id = worker_id
        self._state = state
        self._claims = claims
        self._runner = runner
        # Messages are acked once claimed, which frees the broker's prefetch window: the slots
        # themselves bound how many jobs run here at once.
        self._slots = asyncio.Semaphore(slots)
        self._running: set[asyncio.Task[object]] = set()  # handlers of messages in hand
        self._consumption: ConsumptionHandle | None = None
        # A failure before the claim was answered is the api's or the network's: retry later.
        self._consumer = Consumer(topology.job_queue_name(queue), on_error=Outcome.RETRY_LATER)
        self._consumer.register(JobSubmitted, self._on_job_submitted)

    async def subscribe(self) -> None:
        """Declare the queue and consume it, a prefetch of one message per slot."""
        if self._consumption is None:
            declared = await self._broker.declare_job_queue(self._queue)
            self._consumption = await self._broker.consume(
                declared, self._on_message, prefetch=self._prefetch
            )

    async def stop(self, grace_s: float) -> None:
        """Take no new job; let running ones finish for ``grace_s``, then hand them back."""
        self._state.stopping = True
        if self._consumption is not None:
            await self._consumption.stop()  # unclaimed messages go back to the queue
        if not self._running:
            return
        log.info("letting %d job(s) finish (up to %.0f s)", len(self._running), grace_s)
        _, unfinished = await asyncio.wait(self._running, timeout=grace_s)
        if unfinished:
            log.warning("handing back %d unfinished job(s)", len(unfinished))
            for control in self._state.controls.values():
                control.request("shutdown")
            await asyncio.wait(unfinished)

    async def _on_message(self, message: IncomingMessage) -> None:
        # Counted from delivery on, so that ``stop`` waits for every message in hand.
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        self._state.busy += 1
        try:
            await self._consumer.consume(message)
        finally:
            self._state.busy -= 1
            self._running.discard(task)

    async def _on_job_submitted(
        self, envelope: Envelope, job: JobSubmitted, delivery: Delivery
    ) -> None:
        job_id, attempt = envelope.job_id, envelope.attempt
        if job_id is None:
            raise Reject("job.submitted without a job id")
        with bound(job_id=job_id, attempt=attempt, worker_id=self._worker_id):
            await self._handle_job(job_id, attempt, job, delivery)

    async def _handle_job(
        self, job_id: uuid.UUID, attempt: int, job: JobSubmitted, delivery: Delivery
    ) -> None:
        if job_id in self._state.controls:  # redelivered while it runs here: never twice at once
            log.warning("job %s attempt %s runs here already: duplicate dropped", job_id, attempt)
            return
        async with self._slots:
            if self._state.stopping:
                raise Requeue("not claimed while stopping: another worker takes it")
            with tracer().start_as_current_span("claim job"):
                claim = await self._claims.claim(
                    job_id, attempt, lambda: self._state.stopping, submitted=job
                )
            if claim is None:
                raise Requeue("stopping before the api answered the claim")
            # Claimed or refused, the message has done its work: the api owns the job from here
            # (a job that outlives RabbitMQ's consumer_timeout is never redelivered; a worker
            # that dies is found by its missing heartbeats and the job re-queued by the api).
            await delivery.ack()
            if not claim.claimed:
                log.info("job %s attempt %s not run: %s", job_id, attempt, claim.reason)
                return
            log.info("job %s attempt %s: starting", job_id, attempt)
            self._state.controls[job_id] = JobControl()
            events = JobEventPublisher(
                broker=self._broker, job_id=job_id, attempt=attempt, producer=self._worker_id
            )
            try:
                with tracer().start_as_current_span(
                    "run job",
                    attributes={"theodolite.job_id": str(job_id), "theodolite.attempt": attempt},
                ):
                    await self._runner.run(
                        job_id, attempt, job, events, self._state.controls[job_id]
                    )
            except Exception:
                # Acked already, so nothing is left to settle: the attempt's heartbeats stop with
                # it, and the api finds it lost.
                log.exception("job %s attempt %s: the worker could not finish it", job_id, attempt)
                return
            finally:
                del self._state.controls[job_id]
            log.info("job %s attempt %s: done", job_id, attempt)


class ControlConsumer:
    """Control broadcasts: cancel an attempt running here; prefetch each published plugin."""

    def __init__(self, *, broker: MessageBroker, state: WorkerState, plugins: PluginCache) -> None:
        self._broker = broker
        self._state = state
        self._plugins = plugins
        self._prefetches: set[asyncio.Task[object]] = set()
        self._subscribed = False
        # A broadcast queue has no dead-letter queue and a retry cannot mend a bad broadcast;
        # plugin events other than plugin.published are of no use here, not an error.
        self._consumer = Consumer("worker control", on_error=Outcome.REJECT, ignore_unhandled=True)
        self._consumer.register(JobCancel, self._on_job_cancel)
        self._consumer.register(PluginPublished, self._on_plugin_published)

    async def subscribe(self) -> None:
        """This worker's own queue on the control exchange (once, however often retried)."""
        if not self._subscribed:
            await self._broker.consume_broadcasts(
                topology.CONTROL_EXCHANGE.name,
                list(topology.WORKER_CONTROL_BINDINGS),
                self._consumer,
            )
            self._subscribed = True

    async def _on_job_cancel(self, envelope: Envelope, _: JobCancel, delivery: Delivery) -> None:
        control = self._state.controls.get(envelope.job_id) if envelope.job_id else None
        if control is not None:
            log.info("job %s: cancel requested", envelope.job_id)
            control.request("cancel")

    async def _on_plugin_published(
        self, envelope: Envelope, plugin: PluginPublished, delivery: Delivery
    ) -> None:
        # In the background, so that jobs that pin it start at once; the broadcast is done.
        task = asyncio.create_task(self._plugins.ensure(plugin.wheel_key, plugin.wheel_sha256))
        self._prefetches.add(task)
        task.add_done_callback(self._prefetched)

    def _prefetched(self, task: asyncio.Task[object]) -> None:
        self._prefetches.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("plugin prefetch failed: %s", task.exception())
