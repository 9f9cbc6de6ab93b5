"""This replica's live view of job events: its own exclusive queue on ``theodolite.events``
(every replica gets every event), fanned out in memory to the event streams open here.

A live event wakes the streams that care; they read what was recorded from the database, so the
live queue decides when a stream looks, never what it shows. Progress is the exception: the job
row keeps only the latest, so progress events travel from here to the streams as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from theodolite import topology
from theodolite.broker import Broker
from theodolite.events import Envelope, JobProgress, UndecodableEvent, decode_event

log = logging.getLogger(__name__)

PROGRESS_BACKLOG = 256
# How long a stream keeps looking again soon for a live event the database does not show yet.
RECORD_PATIENCE_S = 5.0


@dataclass(frozen=True)
class LiveProgress:
    envelope: Envelope
    payload: JobProgress
    received: float  # time.monotonic()


class Subscription:
    """One open stream's inbox: a wake-up flag and the progress events not shown yet."""

    def __init__(self, job_id: uuid.UUID | None) -> None:
        self.job_id = job_id
        self.wake = asyncio.Event()
        self.progress: deque[LiveProgress] = deque(maxlen=PROGRESS_BACKLOG)
        # Jobs known to be of no interest (another experiment's): they wake nobody here.
        self.ignored_jobs: set[uuid.UUID] = set()
        # The newest (attempt, seq) heard live per job, and when: the event reaches this replica
        # about when the api records it, so a read may come a moment too early.
        self.live_keys: dict[uuid.UUID, tuple[tuple[int, int], float]] = {}

    def offer(self, envelope: Envelope, payload: object) -> None:
        if envelope.job_id is None or envelope.job_id in self.ignored_jobs:
            return
        now = time.monotonic()
        if isinstance(payload, JobProgress):
            self.progress.append(LiveProgress(envelope, payload, now))
        key = (envelope.attempt, envelope.seq)
        known = self.live_keys.get(envelope.job_id)
        if known is None or key > known[0]:
            self.live_keys[envelope.job_id] = (key, now)
        self.wake.set()

    def unrecorded(self, recorded: dict[uuid.UUID, tuple[int, int]]) -> bool:
        """Whether an event heard live is not in the database yet (``recorded``: how far each
        job's events are recorded; a job missing from it is forgotten)."""
        now = time.monotonic()
        waiting = False
        for job_id, (key, heard) in list(self.live_keys.items()):
            upto = recorded.get(job_id)
            if upto is None or upto >= key or now - heard > RECORD_PATIENCE_S:
                del self.live_keys[job_id]
            else:
                waiting = True
        return waiting

    def take_progress(self) -> list[LiveProgress]:
        taken = list(self.progress)
        self.progress.clear()
        return taken


class LiveHub:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._channel: AbstractChannel | None = None
        self._by_job: dict[uuid.UUID, set[Subscription]] = {}
        self._all_jobs: set[Subscription] = set()

    async def start(self) -> None:
        self._channel = await self._broker.consume_broadcasts(
            topology.EVENTS_EXCHANGE.name, list(topology.LIVE_EVENTS_BINDINGS), self._on_message
        )

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = None

    @contextmanager
    def subscribe(self, *, job_id: uuid.UUID | None) -> Iterator[Subscription]:
        """Live events of one job, or of every job (``job_id=None``) while in the block."""
        subscription = Subscription(job_id)
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

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope, payload = decode_event(message.body)
        except UndecodableEvent as exc:
            log.debug("live queue: undecodable event skipped: %s", exc)
        else:
            self.publish(envelope, payload)
        await message.ack()

    def publish(self, envelope: Envelope, payload: object) -> None:
        """Hand one event to the streams that care."""
        if envelope.job_id is None:
            return
        for subscription in (*self._by_job.get(envelope.job_id, ()), *self._all_jobs):
            subscription.offer(envelope, payload)
