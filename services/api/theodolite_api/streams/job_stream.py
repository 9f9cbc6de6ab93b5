"""Server-sent event stream of one job: its status changes, log lines and progress.

The stream subscribes to this replica's live events first, then replays what the database
recorded after the client's ``Last-Event-ID``, then goes on with live events: ``job.status_changed``
(what the api recorded), and the worker's ``job.log`` and ``job.progress``. ``JobOrder`` puts
both sources in the record's order and passes each item on once, so every event reaches every
stream once, in order, across reconnects and api replicas. Progress is live only (the job row
keeps only the latest). The database is read again only when the live queue may have missed
events (it reconnected), never on a timer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from sse_starlette import ServerSentEvent

from theodolite.events import JobLog, JobProgress, JobStatusChanged
from theodolite.lifecycle import JobStatus, is_terminal
from theodolite_api.repositories import events as events_repo
from theodolite_api.schemas.events import EndEvent, LogEvent, ProgressEvent, StatusEvent
from theodolite_api.settings import EventStreamSettings
from theodolite_api.streams.ids import JobEventKey
from theodolite_api.streams.live import LiveEvent, LiveHub, Subscription
from theodolite_api.streams.ordering import (
    Item,
    JobOrder,
    LogItem,
    ProgressItem,
    StatusItem,
    chained,
)


@dataclass
class StreamSources:
    sessions: async_sessionmaker[AsyncSession]
    hub: LiveHub
    settings: EventStreamSettings


class Stop(Protocol):
    """Set when the server shuts down: the stream ends (the client comes back elsewhere)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> Any: ...


def sse(kind: str, data: Any, event_id: str | None) -> ServerSentEvent:
    return ServerSentEvent(data=data.model_dump_json(), event=kind, id=event_id)


def item_event(item: Item, event_id: str | None) -> ServerSentEvent:
    # The stream items carry every field their events show, under the same names.
    if isinstance(item, StatusItem):
        return sse("status", StatusEvent.model_validate(item, from_attributes=True), event_id)
    if isinstance(item, LogItem):
        return sse("log", LogEvent.model_validate(item, from_attributes=True), event_id)
    progress = ProgressEvent(
        job_id=item.envelope.job_id,  # type: ignore[arg-type]
        attempt=item.attempt,
        seq=item.seq,
        **item.payload.model_dump(),
        at=item.envelope.occurred_at,
    )
    return sse("progress", progress, event_id)


def live_item(event: LiveEvent) -> Item | None:
    """The stream item a live event is, if any."""
    envelope, payload = event
    if envelope.job_id is None:
        return None
    if isinstance(payload, JobStatusChanged):
        return StatusItem(
            job_id=envelope.job_id,
            attempt=envelope.attempt,
            seq=envelope.seq,
            transition_id=payload.transition_id,
            from_status=payload.from_status,
            status=payload.to_status,
            at=payload.at,
            detail=payload.reason,
        )
    if isinstance(payload, JobLog):
        if not payload.lines:
            return None  # the api records nothing for it
        return LogItem(envelope.job_id, envelope.attempt, envelope.seq, tuple(payload.lines))
    if isinstance(payload, JobProgress):
        return ProgressItem(envelope, payload)
    return None


async def wait_for_news(inbox: Subscription, stop: Stop | None) -> None:
    """Until a live event (or a resync) comes, or the server stops."""
    if stop is None:
        await inbox.wake.wait()
        return
    waits = {
        asyncio.ensure_future(inbox.wake.wait()),
        asyncio.ensure_future(stop.wait()),
    }
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def _replay(
    sources: StreamSources, job_id: uuid.UUID, order: JobOrder
) -> AsyncIterator[tuple[JobEventKey, Item]]:
    """What was recorded after ``order.last``, merged with the live events heard meanwhile."""
    async with sources.sessions() as session:
        history = await events_repo.job_transitions(session=session, job_id=job_id)
    for status in chained(history):
        order.add(status)
    position = (order.last.attempt, order.last.seq)
    while True:
        async with sources.sessions() as session:
            chunks = await events_repo.log_chunks_after(
                session=session,
                job_id=job_id,
                attempt=position[0],
                seq=position[1],
                limit=sources.settings.batch,
            )
        for chunk in chunks:
            order.add(chunk)
        if len(chunks) < sources.settings.batch:
            break
        position = (chunks[-1].attempt, chunks[-1].seq)
        for ready in order.ready(upto=position):  # what comes after is not read yet
            yield ready


async def job_stream(
    sources: StreamSources, job_id: uuid.UUID, after: JobEventKey | None, stop: Stop | None = None
) -> AsyncIterator[ServerSentEvent]:
    """A job's status changes, log lines and progress after ``after``; ends after the job's
    terminal status (with an ``end`` event)."""
    order = JobOrder(after)
    with sources.hub.subscribe(job_id=job_id) as inbox:
        replay = True
        while True:
            if replay:
                async for key, item in _replay(sources, job_id, order):
                    yield item_event(item, str(key))
                replay = False
            for event in inbox.take():
                heard = live_item(event)
                if heard is not None:
                    order.add(heard)
            for key, item in order.ready():
                yield item_event(item, str(key))
            if order.status is not None and is_terminal(JobStatus(order.status)):
                yield sse("end", EndEvent(job_id=job_id, status=order.status), None)
                return
            if stop is not None and stop.is_set():
                return
            await wait_for_news(inbox, stop)
            replay = inbox.take_resync()
