from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import OutboxMessage
from theodolite.events import Envelope


def add(*, session: AsyncSession, envelope: Envelope, exchange: str, routing_key: str) -> None:
    session.add(
        OutboxMessage(
            event_id=envelope.id,
            event_type=envelope.type.value,
            exchange=exchange,
            routing_key=routing_key,
            body=envelope.to_bytes(),
        )
    )


async def claim_unpublished(*, session: AsyncSession, batch: int) -> list[OutboxMessage]:
    """Oldest unpublished messages, locked so other api replicas' relays skip them."""
    rows = await session.exec(
        select(OutboxMessage)
        .where(col(OutboxMessage.published_at).is_(None))
        .order_by(col(OutboxMessage.id))
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


def mark_published(*, message: OutboxMessage, at: datetime) -> None:
    message.published_at = at
