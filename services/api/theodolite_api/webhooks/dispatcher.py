"""Turns what happens to jobs into delivery rows, off the request path.

Fed by ``events.webhooks``, a durable quorum queue of its own on ``theodolite.events`` (competing
consumers across api replicas). A status change is sent as the api recorded it: from its
``job.status_changed``, which ``jobs.transitions`` writes in the transaction of the change. Its
deliveries are keyed by endpoint and transition id, so a redelivered announcement never makes a
second delivery. A pipeline's start and end (``pipeline.status_changed``) go to its experiment's
subscriptions, keyed by pipeline and status. Progress and log events are sent as they come, to
subscriptions that asked for them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.consumers import Consumer, Delivery
from theodolite.db.status_tables import Pipeline, WebhookDelivery, WebhookSubscription
from theodolite.db.tables import Job, JobTransition, utcnow
from theodolite.events import (
    Envelope,
    JobLog,
    JobProgress,
    JobStatusChanged,
    PipelineStatusChanged,
)
from theodolite.signing import API_SIGNER, KeyLookup
from theodolite_api.jobs.claims import from_claim_holder
from theodolite_api.repositories import webhooks as webhook_repo
from theodolite_api.schemas.webhooks import STATUS_EVENT_TYPES
from theodolite_api.settings import WebhookSettings
from theodolite_api.webhooks.payloads import (
    live_body,
    pipeline_body,
    status_body,
    status_event_type,
)

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


@dataclass(frozen=True)
class _Endpoint:
    key: str  # in dedup keys: the subscription id, or "callback"
    subscription_id: uuid.UUID | None
    url: str
    event_types: frozenset[str]
    after_transition_id: int
    created_at: datetime  # a subscription hears no pipeline event from before it existed


def _endpoints(job: Job | None, subscriptions: list[WebhookSubscription]) -> list[_Endpoint]:
    """The subscriptions, and the job's own callback if it has one."""
    found = [
        _Endpoint(
            key=str(s.id),
            subscription_id=s.id,
            url=s.url,
            event_types=frozenset(s.event_types),
            after_transition_id=s.after_transition_id,
            created_at=s.created_at,
        )
        for s in subscriptions
    ]
    if job is not None and job.callback_url is not None and job.webhook_secret is not None:
        found.append(
            _Endpoint(
                key="callback",
                subscription_id=None,
                url=job.callback_url,
                event_types=frozenset(STATUS_EVENT_TYPES),
                after_transition_id=0,
                created_at=job.created_at,
            )
        )
    return found


class WebhookDispatcher:
    """The handlers; ``consumer`` is what the broker is given."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: WebhookSettings,
        signers: KeyLookup,
        on_new_deliveries: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._on_new_deliveries = on_new_deliveries
        # Anything else the queue may still hold (bindings of an older version) is not ours.
        # Unsigned and forged messages are dropped before a handler sees them.
        self.consumer = Consumer(
            "webhooks", retry_delay_s=RETRY_DELAY_S, ignore_unhandled=True, signers=signers
        )
        self.consumer.register(JobStatusChanged, self.on_status_changed)
        self.consumer.register(JobLog, self.on_live_event)
        self.consumer.register(JobProgress, self.on_live_event)
        self.consumer.register(PipelineStatusChanged, self.on_pipeline_event)

    def _delivery(
        self,
        endpoint: _Endpoint,
        about: Job | Pipeline,
        event_type: str,
        body: str,
        event_key: str,
    ) -> WebhookDelivery:
        now = utcnow()
        return WebhookDelivery(
            subscription_id=endpoint.subscription_id,
            job_id=about.id if isinstance(about, Job) else None,
            pipeline_id=about.id if isinstance(about, Pipeline) else None,
            url=endpoint.url,
            event_type=event_type,
            body=body,
            dedup_key=f"{endpoint.key}:{about.id}:{event_key}",
            status="pending",
            attempts_left=self._settings.max_attempts,
            next_attempt_at=now,
            created_at=now,
        )

    async def on_status_changed(
        self, envelope: Envelope, payload: JobStatusChanged, delivery: Delivery
    ) -> None:
        if delivery.signer == API_SIGNER and await self.deliver_status(envelope, payload):
            self._on_new_deliveries()

    async def on_live_event(
        self, envelope: Envelope, payload: JobLog | JobProgress, delivery: Delivery
    ) -> None:
        if await self.deliver_live(envelope, payload, delivery.signer):
            self._on_new_deliveries()

    async def on_pipeline_event(
        self, envelope: Envelope, payload: PipelineStatusChanged, delivery: Delivery
    ) -> None:
        if delivery.signer == API_SIGNER and await self.deliver_pipeline(payload):
            self._on_new_deliveries()

    async def deliver_pipeline(self, payload: PipelineStatusChanged) -> int:
        """Deliveries for a pipeline's start or end, to its experiment's subscriptions."""
        event_type = f"pipeline.{payload.to_status}"
        async with self._sessions() as session:
            pipeline = await session.get(Pipeline, payload.pipeline_id)
            # As recorded: the pipeline exists, and an end is the status it holds.
            if pipeline is None or (
                payload.from_status is not None and pipeline.status != payload.to_status
            ):
                log.warning(
                    "pipeline event for %s names no recorded status: dropped", payload.pipeline_id
                )
                return 0
            subscriptions = await webhook_repo.enabled_subscriptions(
                session=session, experiment_id=pipeline.experiment_id
            )
            body = pipeline_body(pipeline, payload)
            deliveries = [
                self._delivery(endpoint, pipeline, event_type, body, event_type)
                for endpoint in _endpoints(None, subscriptions)
                if event_type in endpoint.event_types and endpoint.created_at <= payload.at
            ]
            created = await webhook_repo.add_deliveries(session=session, deliveries=deliveries)
            await session.commit()
            return created

    async def deliver_status(self, envelope: Envelope, payload: JobStatusChanged) -> int:
        """Deliveries for one recorded transition; the number created."""
        if envelope.job_id is None:
            return 0
        event_type = status_event_type(payload.to_status)
        async with self._sessions() as session:
            job = await session.get(Job, envelope.job_id)
            # Sent as recorded, never as announced: anyone who can publish on the broker could
            # announce a transition, but only the api's commit writes the row it names.
            transition = await session.get(JobTransition, payload.transition_id)
            if (
                job is None
                or transition is None
                or transition.job_id != job.id
                or transition.status != payload.to_status
            ):
                log.warning("status change %s names no recorded transition: dropped", envelope.id)
                return 0
            subscriptions = await webhook_repo.enabled_subscriptions(
                session=session, experiment_id=job.experiment_id
            )
            body = status_body(job, transition)
            deliveries = [
                self._delivery(endpoint, job, event_type, body, f"t{payload.transition_id}")
                for endpoint in _endpoints(job, subscriptions)
                if event_type in endpoint.event_types
                and payload.transition_id > endpoint.after_transition_id
            ]
            created = await webhook_repo.add_deliveries(session=session, deliveries=deliveries)
            await session.commit()
            return created

    async def deliver_live(
        self, envelope: Envelope, payload: JobProgress | JobLog, signer: str | None
    ) -> int:
        """Deliveries for a log or progress event of the worker holding the job's claim."""
        if envelope.job_id is None:
            return 0
        async with self._sessions() as session:
            job = await session.get(Job, envelope.job_id)
            if job is None or not from_claim_holder(job, envelope, signer):
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
