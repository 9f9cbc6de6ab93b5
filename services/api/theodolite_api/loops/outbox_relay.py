"""Publishes committed outbox rows to RabbitMQ with confirms.

Woken right after a commit in this process, and polling as a fallback for rows committed by
other replicas or left behind by a crash. A row is marked published only after the broker's
confirm, so a crash between the two can publish twice, never zero times; consumers deduplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import SpanKind

from theodolite import topology
from theodolite.db.tables import utcnow
from theodolite.events import Envelope
from theodolite.observability.tracing import current_trace, span_from
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
                with _relayed(message.body, message.event_type) as body:
                    await self._broker.publish_raw(
                        message.exchange,
                        message.routing_key,
                        body,
                        message_id=str(message.event_id),
                        message_type=message.event_type,
                        # Control broadcasts may have no listener (no worker up): not an error.
                        mandatory=message.exchange != topology.CONTROL_EXCHANGE.name,
                    )
                outbox_repo.mark_published(message=message, at=utcnow())
            await session.commit()
            return len(messages)


@contextmanager
def _relayed(body: bytes, event_type: str) -> Iterator[bytes]:
    """A traced event goes out in a publish span (a child of the work that wrote it) and carries
    that span's context on; an untraced one goes out as stored."""
    if b"traceparent" not in body:
        yield body
        return
    envelope = Envelope.model_validate_json(body)
    with span_from(f"publish {event_type}", envelope.trace, kind=SpanKind.PRODUCER) as span:
        if span is None or not span.is_recording():
            yield body
            return
        yield envelope.model_copy(update={"trace": current_trace()}).to_bytes()
