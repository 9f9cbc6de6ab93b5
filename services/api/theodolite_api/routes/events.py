"""Server-sent events: a job's, and an experiment's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from theodolite.db.tables import Experiment, Job
from theodolite.problems import Problem
from theodolite.web.errors import DomainError
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.ownership import visible
from theodolite_api.deps import NotificationsDep, StateDep
from theodolite_api.schemas.events import SSE_DESCRIPTION
from theodolite_api.streams.experiment_stream import experiment_stream
from theodolite_api.streams.ids import BadEventId, JobEventKey, parse_experiment_cursor
from theodolite_api.streams.job_stream import StreamSources, job_stream

T = TypeVar("T")

router = APIRouter(tags=["events"])

LastEventIdHeader = Annotated[
    str | None, Header(alias="Last-Event-ID", description="Continue after this event.")
]
LastEventIdQuery = Annotated[
    str | None,
    Query(description="The same as the Last-Event-ID header, for clients that cannot set it."),
]
STREAM_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/event-stream": {}}, "description": SSE_DESCRIPTION},
    400: {"description": "A Last-Event-ID this stream never sent"},
    404: {"description": "No such job or experiment"},
}


# A stream told of shutdown ends at once (it waits on the event): this is only a bound.
SHUTDOWN_GRACE_S = 1.0


def _response(
    stream: AsyncIterator[ServerSentEvent], stop: anyio.Event, ping_s: float
) -> EventSourceResponse:
    """On server shutdown the stream is told, and ends by itself (a complete response: the
    client reconnects to another replica with its Last-Event-ID)."""
    return EventSourceResponse(
        stream, ping=ping_s, shutdown_event=stop, shutdown_grace_period=SHUTDOWN_GRACE_S
    )


def _resume(header: str | None, query: str | None, parse: Callable[[str], T]) -> T | None:
    """Where a reconnecting client left off: the Last-Event-ID header or query, parsed."""
    resume = header or query
    try:
        return parse(resume) if resume else None
    except BadEventId as exc:
        problem = Problem(field="Last-Event-ID", message=str(exc))
        raise DomainError("bad Last-Event-ID", [problem]) from exc


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse, responses=STREAM_RESPONSES)
async def stream_job_events(
    job_id: uuid.UUID,
    caller: CallerDep,
    state: StateDep,
    notifications: NotificationsDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> EventSourceResponse:
    """The job's status changes, log lines and progress as server-sent events; the stream ends
    after its terminal status. Ids are ``<attempt>.<seq>[.<n>]``."""
    after = _resume(last_event_id_header, last_event_id, JobEventKey.parse)
    async with state.sessions() as session:  # not the request's: the stream outlives it
        visible(await session.get(Job, job_id), caller, f"job {job_id}")
    stop = anyio.Event()
    sources = notifications.stream_sources
    return _response(job_stream(sources, job_id, after, stop), stop, sources.settings.ping_s)


@router.get(
    "/experiments/{experiment_id}/events",
    response_class=EventSourceResponse,
    responses=STREAM_RESPONSES,
)
async def stream_experiment_events(
    experiment_id: uuid.UUID,
    caller: CallerDep,
    state: StateDep,
    notifications: NotificationsDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
    from_now: Annotated[
        bool, Query(description="Without a Last-Event-ID: only what happens from now on.")
    ] = False,
) -> EventSourceResponse:
    """Status changes and progress of every job of the experiment as server-sent events (a
    job's log lines are on its own stream). Ids are ``T<position>``; never ends by itself."""
    cursor = _resume(last_event_id_header, last_event_id, parse_experiment_cursor)
    async with state.sessions() as session:
        found = await session.get(Experiment, experiment_id)
        visible(found, caller, f"experiment {experiment_id}")
    sources: StreamSources = notifications.stream_sources
    stop = anyio.Event()
    stream = experiment_stream(sources, experiment_id, cursor, from_now=from_now, stop=stop)
    return _response(stream, stop, sources.settings.ping_s)
