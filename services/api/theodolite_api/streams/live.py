"""This replica's live view of job events: its own exclusive queue on ``theodolite.events`` (every
replica gets every event), fanned out in memory to the event streams open here.

A stream hears the api's ``job.status_changed`` (what the api recorded) and the workers'
``job.log`` and ``job.progress`` (what a job printed and reported). The hub keeps each job's last
log events for a while: the api records a log event moments after this queue hears it, so a
stream that connects in between finds it here rather than in the database.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from theodolite import topology
from theodolite.consumers import Consumer, Delivery
from theodolite.events import Envelope, JobLog, JobProgress, JobStatusChanged, PipelineStatusChanged
from theodolite.signing import API_SIGNER, KeyLookup
from theodolite_api.streams.senders import ClaimHolders

log = logging.getLogger(__name__)

LivePayload = JobStatusChanged | JobLog | JobProgress | PipelineStatusChanged
LiveEvent = tuple[Envelope, LivePayload]

DEFAULT_BACKLOG = 64
BACKLOG_JOBS = 512
# A stream further behind than this lost events: it reads the record again (``resync``).
INBOX_LIMIT = 10_000


class Subscription:
    """One open stream's inbox: the live events not taken yet, and a wake-up flag."""

    def __init__(self, job_id: uuid.UUID | None) -> None:
        self.job_id = job_id
        self.wake = asyncio.Event()
        self._events: deque[LiveEvent] = deque()
        # Events may have been missed (the live queue reconnected, or the inbox overflowed):
        # the stream reads what was recorded again before it goes on.
        self.resync = False

    def offer(self, event: LiveEvent) -> None:
        if len(self._events) >= INBOX_LIMIT:
            self._events.clear()
            self.resync = True
        self._events.append(event)
        self.wake.set()

    def take(self) -> list[LiveEvent]:
        self.wake.clear()
        taken = list(self._events)
        self._events.clear()
        return taken

    def take_resync(self) -> bool:
        resync, self.resync = self.resync, False
        return resync


class LiveHub:
    def __init__(
        self,
        broker: Any,
        *,
        signers: KeyLookup,
        holders: ClaimHolders,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self._broker = broker
        self._holders = holders
        self._backlog_size = backlog
        self._consumption: Any = None
        self._by_job: dict[uuid.UUID, set[Subscription]] = {}
        self._all_jobs: set[Subscription] = set()
        self._backlogs: OrderedDict[uuid.UUID, deque[LiveEvent]] = OrderedDict()
        # Nothing to retry or dead-letter on a replica's own live queue: a handler cannot fail.
        # Unsigned and forged messages are dropped before they reach a stream.
        self.consumer = Consumer("live events", ignore_unhandled=True, signers=signers)
        self.consumer.register(JobStatusChanged, self._on_event)
        self.consumer.register(JobLog, self._on_event)
        self.consumer.register(JobProgress, self._on_event)
        self.consumer.register(PipelineStatusChanged, self._on_pipeline_event)

    async def start(self) -> None:
        self._consumption = await self._broker.consume_broadcasts(
            topology.EVENTS_EXCHANGE.name, list(topology.LIVE_EVENTS_BINDINGS), self.consumer
        )
        connection = getattr(self._broker, "connection", None)
        if connection is not None:
            # Events published while the queue was gone never reach it: streams read again.
            connection.reconnect_callbacks.add(self._on_reconnect)

    async def close(self) -> None:
        if self._consumption is not None and not self._consumption.is_closed:
            await self._consumption.close()
        self._consumption = None

    def _on_reconnect(self, *_: object) -> None:
        log.info("live queue reconnected: %d streams read their records again", self.subscriptions)
        for subscription in (*self._all_jobs, *(s for g in self._by_job.values() for s in g)):
            subscription.resync = True
            subscription.wake.set()

    @contextmanager
    def subscribe(self, *, job_id: uuid.UUID | None) -> Iterator[Subscription]:
        """Live events of one job (starting with its recent log events), or the status changes
        and progress of every job (``job_id=None``), while in the block."""
        subscription = Subscription(job_id)
        if job_id is not None:
            for event in self._backlogs.get(job_id, ()):
                subscription.offer(event)
        group = self._all_jobs if job_id is None else self._by_job.setdefault(job_id, set())
        group.add(subscription)
        try:
            yield subscription
        finally:
            group.discard(subscription)
            if job_id is not None and not group:
                self._by_job.pop(job_id, None)

    @property
    def subscriptions(self) -> int:
        return len(self._all_jobs) + sum(len(group) for group in self._by_job.values())

    async def _on_event(
        self,
        envelope: Envelope,
        payload: JobStatusChanged | JobLog | JobProgress,
        delivery: Delivery,
    ) -> None:
        if not await self._holders.admits(envelope, payload, delivery.signer):
            log.warning("live %s %s from %s: dropped", envelope.type, envelope.id, delivery.signer)
            return
        self.publish(envelope, payload)

    async def _on_pipeline_event(
        self, envelope: Envelope, payload: PipelineStatusChanged, delivery: Delivery
    ) -> None:
        if delivery.signer != API_SIGNER:  # only the api decides a pipeline's status
            log.warning("live %s %s from %s: dropped", envelope.type, envelope.id, delivery.signer)
            return
        self.publish(envelope, payload)

    def publish(self, envelope: Envelope, payload: LivePayload) -> None:
        """Hand one event to the streams that care."""
        if isinstance(payload, PipelineStatusChanged):
            for subscription in self._all_jobs:  # experiment streams pick their own
                subscription.offer((envelope, payload))
            return
        if envelope.job_id is None:
            return
        event: LiveEvent = (envelope, payload)
        for subscription in self._by_job.get(envelope.job_id, ()):
            subscription.offer(event)
        if isinstance(payload, JobLog):
            self._remember(envelope.job_id, event)
            return  # log lines are on each job's own stream, not an experiment's
        for subscription in self._all_jobs:
            subscription.offer(event)

    def _remember(self, job_id: uuid.UUID, event: LiveEvent) -> None:
        backlog = self._backlogs.get(job_id)
        if backlog is None:
            backlog = self._backlogs[job_id] = deque(maxlen=self._backlog_size)
            while len(self._backlogs) > BACKLOG_JOBS:
                self._backlogs.popitem(last=False)
        else:
            self._backlogs.move_to_end(job_id)
        backlog.append(event)
