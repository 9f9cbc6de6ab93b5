"""Publishes committed outbox rows to RabbitMQ with confirms.

Woken right after a commit in this process, and polling as a fallback for rows committed by
other replicas or left behind by a crash. A row is marked published only after the broker's
confirm, so a crash between the two can publish twice, never zero times; consumers deduplicate.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite import topology
from theodolite.broker import Broker
from theodolite.db.tables import utcnow
from theodolite.periodic import PeriodicService
from theodolite_api.repositories import outbox as outbox_repo

log = logging.getLogger(__name__)

BATCH = 100


class OutboxRelay(PeriodicService):
    """``wake()`` after a commit that added outbox rows: they go out now, not at the next poll."""

    name = "outbox relay"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        broker: Broker,
        poll_interval_s: float,
    ) -> None:
        super().__init__(interval_s=poll_interval_s)
        self._sessions = sessions
        self._broker = broker

    async def run_once(self) -> None:
        while await self.publish_pending() == BATCH:
            pass  # more may be waiting

    async def publish_pending(self) -> int:
        async with self._sessions() as session:
            messages = await outbox_repo.claim_unpublished(session=session, batch=BATCH)
            for message in messages:
                await self._broker.publish_raw(
                    message.exchange,
                    message.routing_key,
                    message.body,
                    message_id=str(message.event_id),
                    message_type=message.event_type,
                    # Control broadcasts may have no listener (no worker up): not an error.
                    mandatory=message.exchange != topology.CONTROL_EXCHANGE.name,
                )
                outbox_repo.mark_published(message=message, at=utcnow())
            await session.commit()
            return len(messages)
