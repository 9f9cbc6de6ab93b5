"""Publishes one job attempt's events in order, with a growing sequence number."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from theodolite import topology
from theodolite.broker import Broker
from theodolite.events import make_event


class JobEventPublisher:
    def __init__(self, *, broker: Broker, job_id: uuid.UUID, attempt: int, producer: str) -> None:
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
        await self._broker.publish(topology.EVENTS_EXCHANGE.name, event.type.value, event)
