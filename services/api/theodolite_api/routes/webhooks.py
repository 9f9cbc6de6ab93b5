"""Webhook subscriptions of an experiment, their delivery logs and redelivery; the delivery log
of a job's own callback."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Response, status
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import WebhookDelivery, WebhookSubscription
from theodolite.db.tables import Experiment, utcnow
from theodolite.problems import Problem
from theodolite.web.errors import Conflict, InvalidSubmission, NotFound, found_or_404
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.callers import Caller
from theodolite_api.auth.ownership import ExperimentDep, JobDep
from theodolite_api.deps import NotificationsDep, SessionDep, SettingsDep
from theodolite_api.repositories import webhooks as webhook_repo
from theodolite_api.schemas.common import Limit, Offset, Page
from theodolite_api.schemas.webhooks import (
    EVENT_TYPES,
    DeliveryAttemptPublic,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhookUpdate,
)
from theodolite_api.settings import ApiSettings
from theodolite_api.webhooks.callback_urls import callback_url_problems, new_webhook_secret
from theodolite_api.webhooks.sender import webhook_id

router = APIRouter(tags=["webhooks"])

DeliveryStatus = Literal["pending", "delivered", "failed"]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such experiment, subscription or delivery"}
}


def _problems(url: str | None, event_types: list[str] | None, settings: ApiSettings) -> None:
    problems: list[Problem] = []
    if url is not None:
        problems += callback_url_problems(url, settings, "url")
    if event_types is not None:
        if not event_types:
            problems.append(Problem(field="event_types", message="name at least one event type"))
        for i, event_type in enumerate(event_types):
            if event_type not in EVENT_TYPES:
                problems.append(
                    Problem(
                        field=f"event_types.{i}",
                        message=f"unknown event type {event_type!r} "
                        f"(known: {', '.join(EVENT_TYPES)})",
                    )
                )
    if problems:
        raise InvalidSubmission(f"{len(problems)} problem(s) in the webhook", problems)


async def _subscription_or_404(
    session: AsyncSession,
    caller: Caller,
    experiment: Experiment,
    webhook: uuid.UUID,
    *,
    write: bool = False,
) -> WebhookSubscription:
    if write:
        caller.check_writes(experiment.group_id, f"experiment {experiment.id}")
    return found_or_404(
        await webhook_repo.get_subscription(
            session=session, experiment_id=experiment.id, subscription_id=webhook
        ),
        f"no webhook {webhook} in experiment {experiment.id}",
    )


def _public(subscription: WebhookSubscription) -> WebhookPublic:
    return WebhookPublic.model_validate(subscription, from_attributes=True)


async def _deliveries_public(
    session: AsyncSession, deliveries: list[WebhookDelivery]
) -> list[DeliveryPublic]:
    attempts = await webhook_repo.attempts_of(
        session=session, delivery_ids=[d.id for d in deliveries]
    )
    return [
        DeliveryPublic(
            **d.model_dump(exclude={"body", "dedup_key", "attempts_left"}),
            webhook_id=webhook_id(d.id),
            payload=json.loads(d.body),
            attempt_log=[
                DeliveryAttemptPublic.model_validate(a, from_attributes=True)
                for a in attempts[d.id]
            ],
        )
        for d in deliveries
    ]


@router.post(
    "/experiments/{experiment_id}/webhooks",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, 422: {"description": "Every problem of the subscription"}},
)
async def create_webhook(
    experiment: ExperimentDep,
    body: WebhookCreate,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
) -> WebhookCreated:
    """Subscribe a URL to the experiment's job events. The signing secret is shown this once."""
    caller.check_writes(experiment.group_id, f"experiment {experiment.id}")
    _problems(body.url, body.event_types, settings)
    now = utcnow()
    subscription = await webhook_repo.add_subscription(
        session=session,
        subscription=WebhookSubscription(
            experiment_id=experiment.id,
            url=body.url,
            description=body.description,
            event_types=list(dict.fromkeys(body.event_types)),
            secret=new_webhook_secret(),
            created_at=now,
            updated_at=now,
        ),
    )
    await session.commit()
    return WebhookCreated(**_public(subscription).model_dump(), secret=subscription.secret)


@router.get("/experiments/{experiment_id}/webhooks", responses=NOT_FOUND)
async def list_webhooks(
    experiment: ExperimentDep,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[WebhookPublic]:
    """The experiment's webhook subscriptions, oldest first."""
    rows, total = await webhook_repo.subscription_page(
        session=session, experiment_id=experiment.id, limit=limit, offset=offset
    )
    return Page(data=[_public(s) for s in rows], count=total)


@router.get("/experiments/{experiment_id}/webhooks/{webhook}", responses=NOT_FOUND)
async def get_webhook(
    experiment: ExperimentDep, webhook: uuid.UUID, session: SessionDep, caller: CallerDep
) -> WebhookPublic:
    """One subscription: its events, and whether it is enabled (and if not, why)."""
    return _public(await _subscription_or_404(session, caller, experiment, webhook))


@router.patch("/experiments/{experiment_id}/webhooks/{webhook}", responses=NOT_FOUND)
async def update_webhook(
    experiment: ExperimentDep,
    webhook: uuid.UUID,
    body: WebhookUpdate,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    notifications: NotificationsDep,
) -> WebhookPublic:
    """Change the URL or event types; ``enabled: true`` re-enables a disabled subscription."""
    subscription = await _subscription_or_404(session, caller, experiment, webhook, write=True)
    _problems(body.url, body.event_types, settings)
    if body.url is not None:
        subscription.url = body.url
    if body.event_types is not None:
        subscription.event_types = list(dict.fromkeys(body.event_types))
    if body.description is not None:
        subscription.description = body.description
    if body.enabled is not None:
        if body.enabled and not subscription.enabled:
            # What happened while it was disabled is not sent; its pending deliveries are.
            await webhook_repo.start_from_now(session=session, subscription=subscription)
        subscription.enabled = body.enabled
        if body.enabled:
            subscription.consecutive_failures = 0
            subscription.disabled_reason = None
        else:
            subscription.disabled_reason = "disabled by request"
    subscription.updated_at = utcnow()
    await session.commit()
    notifications.sender.notify()  # pending deliveries of a re-enabled subscription go now
    return _public(subscription)


@router.delete(
    "/experiments/{experiment_id}/webhooks/{webhook}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
)
async def delete_webhook(
    experiment: ExperimentDep, webhook: uuid.UUID, session: SessionDep, caller: CallerDep
) -> Response:
    """Remove a subscription with its delivery log; nothing more is sent to it."""
    subscription = await _subscription_or_404(session, caller, experiment, webhook, write=True)
    await webhook_repo.delete_subscription(session=session, subscription=subscription)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/experiments/{experiment_id}/webhooks/{webhook}/deliveries", responses=NOT_FOUND)
async def list_deliveries(
    experiment: ExperimentDep,
    webhook: uuid.UUID,
    session: SessionDep,
    caller: CallerDep,
    status: DeliveryStatus | None = None,
    job_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeliveryPublic]:
    """The subscription's deliveries, newest first, each with every attempt made."""
    subscription = await _subscription_or_404(session, caller, experiment, webhook)
    rows, total = await webhook_repo.delivery_page(
        session=session,
        subscription_id=subscription.id,
        job_id=job_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return Page(data=await _deliveries_public(session, rows), count=total)


async def _delivery_or_404(
    session: AsyncSession,
    subscription_id: uuid.UUID | None,
    job_id: uuid.UUID | None,
    did: uuid.UUID,
    *,
    for_update: bool = False,
) -> WebhookDelivery:
    delivery = await webhook_repo.get_delivery(
        session=session, delivery_id=did, for_update=for_update
    )
    if (
        delivery is None
        or delivery.subscription_id != subscription_id
        or (job_id is not None and delivery.job_id != job_id)
    ):
        raise NotFound(f"no delivery {did} here")
    return delivery


@router.get(
    "/experiments/{experiment_id}/webhooks/{webhook}/deliveries/{delivery}", responses=NOT_FOUND
)
async def get_delivery(
    experiment: ExperimentDep,
    webhook: uuid.UUID,
    delivery: uuid.UUID,
    session: SessionDep,
    caller: CallerDep,
) -> DeliveryPublic:
    """One delivery, its payload and every attempt."""
    subscription = await _subscription_or_404(session, caller, experiment, webhook)
    found = await _delivery_or_404(session, subscription.id, None, delivery)
    return (await _deliveries_public(session, [found]))[0]


async def _redeliver(
    session: AsyncSession, delivery: WebhookDelivery, settings: ApiSettings
) -> None:
    delivery.status = "pending"
    delivery.attempts_left = settings.webhooks.max_attempts
    delivery.next_attempt_at = utcnow()
    delivery.delivered_at = None
    await session.commit()


@router.post(
    "/experiments/{experiment_id}/webhooks/{webhook}/deliveries/{delivery}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, 409: {"description": "The subscription is disabled"}},
)
async def redeliver(
    experiment: ExperimentDep,
    webhook: uuid.UUID,
    delivery: uuid.UUID,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    notifications: NotificationsDep,
) -> DeliveryPublic:
    """Send a delivery again, now (same webhook-id, a fresh timestamp and signature), with
    retries as for a new one."""
    subscription = await _subscription_or_404(session, caller, experiment, webhook, write=True)
    if not subscription.enabled:
        raise Conflict(f"webhook {webhook} is disabled ({subscription.disabled_reason}); enable it")
    found = await _delivery_or_404(session, subscription.id, None, delivery, for_update=True)
    await _redeliver(session, found, settings)
    notifications.sender.notify()
    return (await _deliveries_public(session, [found]))[0]


@router.get("/jobs/{job_id}/callback/deliveries", tags=["jobs"], responses=NOT_FOUND)
async def list_callback_deliveries(
    job: JobDep,
    session: SessionDep,
    status: DeliveryStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeliveryPublic]:
    """Deliveries to the job's own callback_url, newest first, each with every attempt."""
    rows, total = await webhook_repo.delivery_page(
        session=session,
        subscription_id=None,
        job_id=job.id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return Page(data=await _deliveries_public(session, rows), count=total)


@router.post(
    "/jobs/{job_id}/callback/deliveries/{delivery}/redeliver",
    tags=["jobs"],
    status_code=status.HTTP_202_ACCEPTED,
    responses=NOT_FOUND,
)
async def redeliver_callback(
    job: JobDep,
    delivery: uuid.UUID,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    notifications: NotificationsDep,
) -> DeliveryPublic:
    """Send a delivery to the job's callback again, now."""
    caller.check_writes(job.group_id, f"job {job.id}")
    found = await _delivery_or_404(session, None, job.id, delivery, for_update=True)
    await _redeliver(session, found, settings)
    notifications.sender.notify()
    return (await _deliveries_public(session, [found]))[0]
