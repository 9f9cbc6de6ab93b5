"""Turns what happens to jobs into delivery rows, off the request path.

Fed by ``events.webhooks``, a durable quorum queue of its own on ``theodolite.events`` (competing
consumers across api replicas). A status change is sent as the api recorded it (the job's
transitions, the same as its history): a worker's event only says when to look, since the api may
record it differently (a failure with retries left is ``queued`` again, a late event is dropped).
A per-job cursor says how far each job's transitions became deliveries, so the same transition is
never delivered twice to one endpoint; a periodic scan catches what no event announces (the
submission's ``queued``, a cancel before start, a lost job). Progress and log events are sent as
they come, to subscriptions that asked for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import WebhookDelivery, WebhookSubscription
from theodolite.db.tables import Job, utcnow
from theodolite.events import Envelope, JobLog, JobProgress, UndecodableEvent, decode_event
from theodolite_api.repositories import webhooks as webhook_repo
from theodolite_api.schemas.webhooks import STATUS_EVENT_TYPES
from theodolite_api.settings import WebhookSettings
from theodolite_api.webhooks.payloads import live_body, status_body, status_event_type

log = logging.getLogger(__name__)

# How long a status event waits for the api to record it before the scan is left to it.
RECORD_PATIENCE_S = 5.0
RETRY_DELAY_S = 1.0
SCAN_WINDOW = 5000
SCAN_BATCH = 200


@dataclass(frozen=True)
class _Endpoint:
    key: str  # in dedup keys: the subscription id, or "callback"
    subscription_id: uuid.UUID | None
    url: str
    event_types: frozenset[str]
    after_transition_id: int


def _endpoints(job: Job, subscriptions: list[WebhookSubscription]) -> list[_Endpoint]:
    found = [
        _Endpoint(
            key=str(s.id),
            subscription_id=s.id,
            url=s.url,
            event_types=frozenset(s.event_types),
            after_transition_id=s.after_transition_id,
        )
        for s in subscriptions
    ]
    if job.callback_url is not None and job.webhook_secret is not None:
        found.append(
            _Endpoint(
                key="callback",
                subscription_id=None,
                url=job.callback_url,
                event_types=frozenset(STATUS_EVENT_TYPES),
                after_transition_id=0,
            )
        )
    return found


class WebhookDispatcher:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: WebhookSettings,
        on_new_deliveries: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._on_new_deliveries = on_new_deliveries

    def _delivery(
        self, endpoint: _Endpoint, job: Job, event_type: str, body: str, event_key: str
    ) -> WebhookDelivery:
        now = utcnow()
        return WebhookDelivery(
            subscription_id=endpoint.subscription_id,
            job_id=job.id,
            url=endpoint.url,
            event_type=event_type,
            body=body,
            dedup_key=f"{endpoint.key}:{job.id}:{event_key}",
            status="pending",
            attempts_left=self._settings.max_attempts,
            next_attempt_at=now,
            created_at=now,
        )

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope, payload = decode_event(message.body)
        except UndecodableEvent as exc:
            log.error("dead-lettering undecodable event %s: %s", message.message_id, exc)
            await message.reject(requeue=False)
            return
        try:
            created = await self.handle(envelope, payload)
        except Exception:
            log.exception(
                "webhooks: could not handle %s %s; will retry", envelope.type, envelope.id
            )
            await asyncio.sleep(RETRY_DELAY_S)
            await message.nack(requeue=True)
            return
        await message.ack()
        if created:
            self._on_new_deliveries()

    async def handle(self, envelope: Envelope, payload: BaseModel) -> int:
        """Deliveries for one event; the number created."""
        if envelope.job_id is None:
            return 0
        if isinstance(payload, JobProgress | JobLog):
            return await self.deliver_live(envelope, payload)
        created = 0
        deadline = time.monotonic() + RECORD_PATIENCE_S
        delay = 0.05
        while True:
            made, recorded_upto = await self.sync_job(envelope.job_id)
            created += made
            if recorded_upto is None or recorded_upto >= (envelope.attempt, envelope.seq):
                return created
            if time.monotonic() > deadline:
                return created  # not recorded (yet): the scan looks again
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def sync_job(self, job_id: uuid.UUID) -> tuple[int, tuple[int, int] | None]:
        """Deliveries for the job's transitions not handled yet; and up to which
        ``(attempt, seq)`` the job's events were recorded (None: no such job)."""
        async with self._sessions() as session:
            job = await session.get(Job, job_id)
            if job is None:
                return 0, None
            recorded_upto = (job.attempt, job.last_seq)
            subscriptions = await webhook_repo.enabled_subscriptions(
                session=session, experiment_id=job.experiment_id
            )
            endpoints = _endpoints(job, subscriptions)
            if not endpoints:
                return 0, recorded_upto
            cursor = await webhook_repo.lock_cursor(session=session, job_id=job_id)
            transitions = await webhook_repo.transitions_after(session=session, cursor=cursor)
            deliveries = []
            for transition in transitions:
                assert transition.id is not None
                event_type = status_event_type(transition.status)
                for endpoint in endpoints:
                    if (
                        event_type in endpoint.event_types
                        and transition.id > endpoint.after_transition_id
                    ):
                        body = status_body(job, transition)
                        deliveries.append(
                            self._delivery(endpoint, job, event_type, body, f"t{transition.id}")
                        )
            if transitions:
                last = transitions[-1]
                assert last.id is not None
                cursor.attempt, cursor.seq, cursor.transition_id = last.attempt, last.seq, last.id
                cursor.updated_at = utcnow()
            created = await webhook_repo.add_deliveries(session=session, deliveries=deliveries)
            await session.commit()
            return created, recorded_upto

    async def deliver_live(self, envelope: Envelope, payload: JobProgress | JobLog) -> int:
        assert envelope.job_id is not None
        async with self._sessions() as session:
            job = await session.get(Job, envelope.job_id)
            if job is None:
                return 0
            subscriptions = await webhook_repo.enabled_subscriptions(
                session=session, experiment_id=job.experiment_id
            )
            event_type = envelope.type.value
            key = f"{event_type}:{envelope.attempt}.{envelope.seq}"
            deliveries = [
                self._delivery(endpoint, job, event_type, live_body(job, envelope, payload), key)
                for endpoint in _endpoints(job, subscriptions)
                if event_type in endpoint.event_types
            ]
            created = await webhook_repo.add_deliveries(session=session, deliveries=deliveries)
            await session.commit()
            return created

    async def scan(self) -> int:
        """Deliveries for transitions no event announced; the number created."""
        async with self._sessions() as session:
            behind = await webhook_repo.jobs_behind(
                session=session, window=SCAN_WINDOW, limit=SCAN_BATCH
            )
        created = 0
        for job_id in behind:
            made, _ = await self.sync_job(job_id)
            created += made
        return created

    async def run_scans(self) -> None:
        while True:
            try:
                if await self.scan():
                    self._on_new_deliveries()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("webhook scan failed", exc_info=True)
            await asyncio.sleep(self._settings.scan_interval_s)
