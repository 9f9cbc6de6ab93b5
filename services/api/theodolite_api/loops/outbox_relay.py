"""Publishes committed outbox rows to RabbitMQ with confirms.

Woken right after a commit in this process, and polling as a fallback for rows committed by
other replicas or left behind by a crash. A row is marked published only after the broker's
confirm, so a crash between the two can publish twice, never zero times; consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite import topology
from theodolite.broker import Broker
from theodolite.db.tables import utcnow
from theodolite_api.repositories import outbox as outbox_repo

log = logging.getLogger(__name__)

BATCH = 100


class OutboxRelay:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        broker: Broker,
        poll_interval_s: float,
    ) -> None:
        self._sessions = sessions
        self._broker = broker
        self._poll_interval_s = poll_interval_s
        self._wakeup = asyncio.Event()

    def notify(self) -> None:
        """Something was committed: publish it now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            try:
                published = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                published = 0
                await asyncio.sleep(self._poll_interval_s)
            if published == BATCH:
                continue  # more may be waiting
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll_interval_s)
            except TimeoutError:
                pass
            self._wakeup.clear()

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
