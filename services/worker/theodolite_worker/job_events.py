"""Publishes one job attempt's events in order, with a growing sequence number."""

from __future__ import annotations

import logging
import uuid

from pydantic import BaseModel
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from theodolite import topology
from theodolite.broker import MessageBroker
from theodolite.events import make_event

log = logging.getLogger(__name__)

# How long an event is retried while the broker is away before the worker gives up on it.
PUBLISH_RETRY_S = 600.0


class JobEventPublisher:
    def __init__(
        self, *, broker: MessageBroker, job_id: uuid.UUID, attempt: int, producer: str
    ) -> None:
        self._broker = broker
        self._job_id = job_id
        self._attempt = attempt
        self._producer = producer
        self._seq = 0  # the api's job.submitted is seq 0

    async def publish(self, payload: BaseModel) -> None:
        self._seq += 1
        event = make_event(
            payload,
            producer=self._producer,
            job_id=self._job_id,
            attempt=self._attempt,
            seq=self._seq,
        )
        # While the broker restarts, keep the event and try again: the robust connection comes
        # back by itself, and (attempt, seq) lets the api drop a copy that got through twice.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_delay(PUBLISH_RETRY_S),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        ):
            with attempt:
                await self._broker.publish(topology.EVENTS_EXCHANGE.name, event.type.value, event)
