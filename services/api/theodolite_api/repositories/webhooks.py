from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import WebhookAttempt, WebhookDelivery, WebhookSubscription
from theodolite.db.tables import Job, JobTransition

# --- subscriptions ---------------------------------------------------------------------------


async def start_from_now(*, session: AsyncSession, subscription: WebhookSubscription) -> None:
    """Transitions recorded until now are not the subscription's to get."""
    top = (await session.exec(select(func.coalesce(func.max(JobTransition.id), 0)))).one()
    subscription.after_transition_id = int(top or 0)


async def add_subscription(
    *, session: AsyncSession, subscription: WebhookSubscription
) -> WebhookSubscription:
    await start_from_now(session=session, subscription=subscription)
    session.add(subscription)
    await session.flush()
    return subscription


async def get_subscription(
    *, session: AsyncSession, experiment_id: uuid.UUID, subscription_id: uuid.UUID
) -> WebhookSubscription | None:
    found = await session.get(WebhookSubscription, subscription_id)
    return found if found is not None and found.experiment_id == experiment_id else None


async def subscription_page(
    *, session: AsyncSession, experiment_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[WebhookSubscription], int]:
    where = col(WebhookSubscription.experiment_id) == experiment_id
    total = (
        await session.exec(select(func.count()).select_from(WebhookSubscription).where(where))
    ).one()
    rows = await session.exec(
        select(WebhookSubscription)
        .where(where)
        .order_by(col(WebhookSubscription.created_at))
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


async def enabled_subscriptions(
    *, session: AsyncSession, experiment_id: uuid.UUID
) -> list[WebhookSubscription]:
    rows = await session.exec(
        select(WebhookSubscription).where(
            col(WebhookSubscription.experiment_id) == experiment_id,
            col(WebhookSubscription.enabled),
        )
    )
    return list(rows)


async def delete_subscription(*, session: AsyncSession, subscription: WebhookSubscription) -> None:
    await session.delete(subscription)


# --- deliveries ------------------------------------------------------------------------------


async def add_deliveries(*, session: AsyncSession, deliveries: Sequence[WebhookDelivery]) -> int:
    """Insert, skipping any whose dedup_key exists (the same event for the same endpoint)."""
    if not deliveries:
        return 0
    rows = [d.model_dump() for d in deliveries]
    result = await session.exec(
        insert(WebhookDelivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(col(WebhookDelivery.id))
    )
    return len(list(result))


async def delivery_page(
    *,
    session: AsyncSession,
    subscription_id: uuid.UUID | None,
    job_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[WebhookDelivery], int]:
    """Deliveries of a subscription, or of a job's own callback, newest first."""
    where = []
    if subscription_id is not None:
        where.append(col(WebhookDelivery.subscription_id) == subscription_id)
    else:
        where.append(col(WebhookDelivery.subscription_id).is_(None))
    if job_id is not None:
        where.append(col(WebhookDelivery.job_id) == job_id)
    if status is not None:
        where.append(col(WebhookDelivery.status) == status)
    total = (
        await session.exec(select(func.count()).select_from(WebhookDelivery).where(*where))
    ).one()
    rows = await session.exec(
        select(WebhookDelivery)
        .where(*where)
        .order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id))
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


async def attempts_of(
    *, session: AsyncSession, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    found: dict[uuid.UUID, list[WebhookAttempt]] = {d: [] for d in delivery_ids}
    if not delivery_ids:
        return found
    rows = await session.exec(
        select(WebhookAttempt)
        .where(col(WebhookAttempt.delivery_id).in_(list(delivery_ids)))
        .order_by(col(WebhookAttempt.id))
    )
    for attempt in rows:
        found[attempt.delivery_id].append(attempt)
    return found


async def get_delivery(
    *, session: AsyncSession, delivery_id: uuid.UUID, for_update: bool = False
) -> WebhookDelivery | None:
    return await session.get(WebhookDelivery, delivery_id, with_for_update=for_update)


@dataclass(frozen=True)
class DueDelivery:
    id: uuid.UUID
    url: str
    body: str
    secret: str


async def claim_due(
    *,
    session: AsyncSession,
    now: datetime,
    lease_until: datetime,
    limit: int,
    busy_urls: set[str],
    per_url: int,
    in_flight: dict[str, int],
) -> list[DueDelivery]:
    """Take up to ``limit`` due deliveries (others' leases and locks skipped), at most
    ``per_url`` in flight per URL, and lease them until ``lease_until``. Does not commit."""
    secret = func.coalesce(col(WebhookSubscription.secret), col(Job.webhook_secret))
    query = (
        select(WebhookDelivery, secret)
        .outerjoin(Job, col(Job.id) == col(WebhookDelivery.job_id))  # none: a pipeline event
        .outerjoin(
            WebhookSubscription,
            col(WebhookSubscription.id) == col(WebhookDelivery.subscription_id),
        )
        .where(
            col(WebhookDelivery.status) == "pending",
            col(WebhookDelivery.next_attempt_at) <= now,
            col(WebhookDelivery.subscription_id).is_(None) | col(WebhookSubscription.enabled),
        )
        .order_by(col(WebhookDelivery.next_attempt_at))
        .limit(limit * 4)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    if busy_urls:
        query = query.where(col(WebhookDelivery.url).not_in(sorted(busy_urls)))
    taken: list[DueDelivery] = []
    counts = dict(in_flight)
    for delivery, key in await session.exec(query):
        if len(taken) == limit:
            break
        if counts.get(delivery.url, 0) >= per_url or key is None:
            continue
        counts[delivery.url] = counts.get(delivery.url, 0) + 1
        delivery.next_attempt_at = lease_until
        taken.append(DueDelivery(id=delivery.id, url=delivery.url, body=delivery.body, secret=key))
    return taken
