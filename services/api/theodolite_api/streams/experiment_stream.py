"""Server-sent event stream of an experiment: status changes and progress of all its jobs, and
its pipelines' starts and ends (live only).

Like a job's stream it subscribes to live events first, replays what was recorded after the
client's position, then goes on with live ``job.status_changed`` and ``job.progress`` events, each
job's in its own order (``JobOrder``). The id is a cursor over transition ids (``stream_ids``):
the hub hears every experiment's status changes, so an id not heard yet is one still in flight
(or rolled back), and stays a hole in the cursor until it comes or expires.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

from sse_starlette import ServerSentEvent

from theodolite.events import JobProgress, JobStatusChanged, PipelineStatusChanged
from theodolite.lifecycle import JobStatus, is_terminal
from theodolite_api.repositories import events as events_repo
from theodolite_api.schemas.events import PipelineEvent
from theodolite_api.streams.ids import TableCursor, experiment_event_id
from theodolite_api.streams.job_stream import (
    Stop,
    StreamSources,
    item_event,
    live_item,
    sse,
    wait_for_news,
)
from theodolite_api.streams.live import LiveEvent
from theodolite_api.streams.ordering import JobOrder, JobState, StatusItem

# Transition ids near the top read at connect: those not visible are in flight.
CATCH_UP_WINDOW = 2000
# Other experiments' transition ids heard live and not yet below the cursor (for holes).
MAX_SEEN_IDS = 10_000


class _Position:
    """The cursor, the ids heard above it, and each job's order."""

    def __init__(self, cursor: TableCursor, states: dict[uuid.UUID, JobState]) -> None:
        self.cursor = cursor
        self.seen: set[int] = set()
        self.orders = {job: JobOrder(state=state) for job, state in states.items()}

    def accounted(self, transition_id: int) -> bool:
        return transition_id <= self.cursor.last and transition_id not in self.cursor.holes

    def take(self, transition_id: int) -> str:
        self.cursor.take(transition_id, self.seen)
        self.seen = {i for i in self.seen if i > self.cursor.last}
        return experiment_event_id(self.cursor)

    def hear_other(self, transition_id: int) -> None:
        self.cursor.holes.pop(transition_id, None)  # another experiment's, not one in flight
        if transition_id > self.cursor.last:
            if len(self.seen) >= MAX_SEEN_IDS:
                self.seen.clear()  # what is forgotten becomes a hole: read again, never lost
            self.seen.add(transition_id)

    def replayed(self, record: StatusItem) -> None:
        order = self.orders.setdefault(record.job_id, JobOrder())
        if record.transition_id > order.state.transition_id:
            order.add(replace(record, from_status=order.state.status))
            order.ready()


async def _replay(
    sources: StreamSources,
    experiment_id: uuid.UUID,
    cursor: TableCursor | None,
    from_now: bool,
) -> AsyncIterator[tuple[StatusItem, str] | _Position]:
    """Recorded transitions after ``cursor`` with their ids; last, the position to go on from."""
    async with sources.sessions() as session:
        states = await events_repo.open_job_states(session=session, experiment_id=experiment_id)
        top, visible = await events_repo.transition_ids_near_top(
            session=session, window=CATCH_UP_WINDOW
        )
    now = time.time()
    in_flight = {
        i: now for i in range(max(1, top - CATCH_UP_WINDOW + 1), top + 1) if i not in visible
    }
    if cursor is None:
        cursor = TableCursor(last=top) if from_now else TableCursor()
    holes = {**cursor.holes, **in_flight}
    last = cursor.last
    position = _Position(TableCursor(last=last), states)
    while True:
        wanted = TableCursor(holes=holes).wanted_holes()  # those not expired (rolled back)
        async with sources.sessions() as session:
            read = await events_repo.experiment_transitions(
                session=session,
                experiment_id=experiment_id,
                after=last,
                holes=wanted,
                limit=sources.settings.batch,
                upto=top,
            )
        for record in read.records:
            holes.pop(record.transition_id, None)
            last = max(last, record.transition_id)
            position.replayed(record)
            shown = TableCursor(last=last, holes={i: t for i, t in holes.items() if i < last})
            yield record, experiment_event_id(shown)
        if not read.full:
            break
    last = max(last, top)
    position.cursor = TableCursor(last=last, holes={i: t for i, t in holes.items() if i < last})
    yield position


async def experiment_stream(
    sources: StreamSources,
    experiment_id: uuid.UUID,
    cursor: TableCursor | None,
    *,
    from_now: bool = False,
    stop: Stop | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """Status changes and progress of every job of an experiment, after ``cursor`` (from the
    first job, or from now with ``from_now``). Never ends by itself."""
    with sources.hub.subscribe(job_id=None) as inbox:
        position: _Position | None = None
        while True:
            if position is None:
                async for replayed in _replay(sources, experiment_id, cursor, from_now):
                    if isinstance(replayed, _Position):
                        position = replayed
                    else:
                        record, event_id = replayed
                        yield item_event(record, event_id)
                assert position is not None
            for event in inbox.take():
                for out in _live(position, experiment_id, event):
                    yield out
            if stop is not None and stop.is_set():
                return
            await wait_for_news(inbox, stop)
            if inbox.take_resync():
                cursor, from_now, position = position.cursor, False, None


def _live(position: _Position, experiment_id: uuid.UUID, event: LiveEvent) -> list[ServerSentEvent]:
    envelope, payload = event
    if isinstance(payload, PipelineStatusChanged):
        if payload.experiment_id != experiment_id:
            return []
        shown = PipelineEvent(
            pipeline_id=payload.pipeline_id,
            name=payload.name,
            from_status=payload.from_status,
            status=payload.to_status,
            stages=payload.stages,
            at=payload.at,
        )
        return [sse("pipeline", shown, None)]
    if isinstance(payload, JobStatusChanged) and payload.experiment_id != experiment_id:
        position.hear_other(payload.transition_id)
        return []
    if not isinstance(payload, JobStatusChanged | JobProgress):
        return []  # log lines are on each job's own stream
    item = live_item(event)
    if item is None or envelope.job_id is None:
        return []
    job_id = envelope.job_id
    order = position.orders.get(job_id)
    if order is None:
        if not isinstance(payload, JobStatusChanged):
            return []  # progress of a job not of this experiment
        order = position.orders[job_id] = JobOrder()  # a new job: its chain starts here
    order.add(item)
    out: list[ServerSentEvent] = []
    for _, ready in order.ready():
        if isinstance(ready, StatusItem):
            if position.accounted(ready.transition_id):
                continue  # replayed already, or before "now"
            out.append(item_event(ready, position.take(ready.transition_id)))
        else:
            out.append(item_event(ready, None))
    if order.status is not None and is_terminal(JobStatus(order.status)) and not order.waiting:
        del position.orders[job_id]  # it ends here: nothing more comes
    return out
