"""Publishes committed outbox rows to RabbitMQ with confirms.

Woken right after a commit in this process, and polling as a fallback for rows committed by
other replicas or left behind by a crash. A row is marked published only after the broker's
confirm, so a crash between the two can publish twice, never zero times; consumers deduplicate.
"""

from __future__ import annotations

import logging

from theodolite import topology
from theodolite.db.tables import utcnow
from theodolite_api.loops.base import BATCH, DatabaseLoop
from theodolite_api.repositories import outbox as outbox_repo

log = logging.getLogger(__name__)


class OutboxRelay(DatabaseLoop):
    """``wake()`` after a commit that added outbox rows: they go out now, not at the next poll."""

    name = "outbox relay"

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
