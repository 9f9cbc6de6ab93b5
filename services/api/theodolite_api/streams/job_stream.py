"""Server-sent event streams of a job and of an experiment.

Each stream subscribes to this replica's live events first, then reads what the database
recorded after the client's ``Last-Event-ID``, sends it, and reads again whenever a live event
(or the poll interval) says there may be more. What is sent always comes from the database, in
the order the api recorded it, and a record is sent only when its id is past the last id sent:
exactly once, in order, across reconnects and api replicas. Progress events come from the live
queue (the job row keeps only the latest); one is sent once the job's records up to its own
``(attempt, seq)`` are, and dropped if the api does not record that far within
``PROGRESS_PATIENCE_S``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from sse_starlette import ServerSentEvent

from theodolite.lifecycle import JobStatus, is_terminal
from theodolite_api.streams.live import LiveHub, LiveProgress, Subscription
from theodolite_api.repositories import events as events_repo
from theodolite_api.repositories.events import JobRecord, JobWatermark
from theodolite_api.schemas.events import EndEvent, LogEvent, ProgressEvent, StatusEvent
from theodolite_api.settings import EventStreamSettings
from theodolite_api.streams.ids import (
    START,
    JobEventKey,
    TableCursor,
    experiment_event_id,
)

PROGRESS_PATIENCE_S = 5.0
# Looking again for what was heard live but not read yet: soon, then less often.
FIRST_RECHECK_S = 0.02
MAX_RECHECK_S = 0.25
# An experiment stream further behind than this many transition ids catches up with reads of
# its own experiment's rows; nearer, it reads every new id (and so knows which are in flight).
CATCH_UP_WINDOW = 2000
MAX_IGNORED_JOBS = 10_000


@dataclass
class StreamSources:
    sessions: async_sessionmaker[AsyncSession]
    hub: LiveHub
    settings: EventStreamSettings


class Stop(Protocol):
    """Set when the server shuts down: the stream ends (the client comes back elsewhere)."""

    def is_set(self) -> bool: ...


def _sse(kind: str, data: Any, event_id: str | None) -> ServerSentEvent:
    return ServerSentEvent(data=data.model_dump_json(), event=kind, id=event_id)


def record_event(record: JobRecord, event_id: str | None) -> ServerSentEvent:
    if record.kind == "status":
        assert record.status is not None and record.at is not None
        data: Any = StatusEvent(
            job_id=record.job_id,
            attempt=record.attempt,
            seq=record.seq,
            status=record.status,
            at=record.at,
            detail=record.detail,
        )
    else:
        data = LogEvent(
            job_id=record.job_id, attempt=record.attempt, seq=record.seq, lines=list(record.lines)
        )
    return _sse(record.kind, data, event_id)


def progress_event(live: LiveProgress, event_id: str | None) -> ServerSentEvent:
    data = ProgressEvent(
        job_id=live.envelope.job_id,  # type: ignore[arg-type]
        attempt=live.envelope.attempt,
        seq=live.envelope.seq,
        **live.payload.model_dump(),
        at=live.envelope.occurred_at,
    )
    return _sse("progress", data, event_id)


def keyed_records(records: Sequence[JobRecord]) -> list[tuple[JobEventKey, JobRecord]]:
    """Give each record of one job its key: (attempt, seq) and its place among the records of
    the same (attempt, seq). ``records`` must hold every record of each (attempt, seq) in it."""
    keyed: list[tuple[JobEventKey, JobRecord]] = []
    previous: tuple[int, int] | None = None
    n = 0
    for record in sorted(records, key=lambda r: r.order):
        group = (record.attempt, record.seq)
        n = n + 1 if group == previous else 0
        previous = group
        keyed.append((JobEventKey(record.attempt, record.seq, n), record))
    return keyed


def progress_key(live: LiveProgress) -> JobEventKey:
    return JobEventKey(live.envelope.attempt, live.envelope.seq)


def ready_progress(
    pending: list[LiveProgress], marks: dict[uuid.UUID, JobWatermark], after: JobEventKey | None
) -> tuple[list[LiveProgress], list[LiveProgress]]:
    """Split pending progress into what may be sent now and what must wait; drop the rest
    (already passed, waited too long, or of a job this stream does not show)."""
    ready: list[LiveProgress] = []
    waiting: list[LiveProgress] = []
    now = time.monotonic()
    for live in pending:
        key = progress_key(live)
        mark = marks.get(live.envelope.job_id)  # type: ignore[arg-type]
        if mark is None or (after is not None and key <= after):
            continue
        if (mark.attempt, mark.last_seq) >= (key.attempt, key.seq):
            ready.append(live)
        elif now - live.received < PROGRESS_PATIENCE_S:
            waiting.append(live)
    return ready, waiting


async def _wait(inbox: Subscription, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(inbox.wake.wait(), timeout=timeout_s)
    except TimeoutError:
        pass


class _Recheck:
    """The delay before the next read: short while something heard live is not read yet."""

    def __init__(self, poll_interval_s: float) -> None:
        self._poll = poll_interval_s
        self._next = FIRST_RECHECK_S

    def delay(self, behind: bool) -> float:
        if not behind:
            self._next = FIRST_RECHECK_S
            return self._poll
        delay, self._next = self._next, min(self._next * 2, MAX_RECHECK_S)
        return min(delay, self._poll)


def _recorded(marks: dict[uuid.UUID, JobWatermark]) -> dict[uuid.UUID, tuple[int, int]]:
    return {job: (mark.attempt, mark.last_seq) for job, mark in marks.items()}


async def job_stream(
    sources: StreamSources, job_id: uuid.UUID, after: JobEventKey | None, stop: Stop | None = None
) -> AsyncIterator[ServerSentEvent]:
    """A job's status changes, log lines and progress after ``after``; ends after the job's
    terminal status (with an ``end`` event)."""
    last = after or START
    pending: list[LiveProgress] = []
    recheck = _Recheck(sources.settings.poll_interval_s)
    with sources.hub.subscribe(job_id=job_id) as inbox:
        while True:
            inbox.wake.clear()
            pending.extend(inbox.take_progress())
            async with sources.sessions() as session:
                # The watermark first: every record up to it is visible to the read after it.
                marks = await events_repo.watermarks(session=session, job_ids=[job_id])
                records, more = await events_repo.job_records_from(
                    session=session,
                    job_id=job_id,
                    attempt=last.attempt,
                    seq=last.seq,
                    limit=sources.settings.batch,
                )
            mark = marks.get(job_id)
            if mark is None:
                return
            ready, pending = ready_progress(pending, marks, last)
            items: list[tuple[JobEventKey, JobRecord | LiveProgress]] = [
                (key, record) for key, record in keyed_records(records) if key > last
            ]
            items += [(progress_key(live), live) for live in ready]
            # A record and a progress event never share an (attempt, seq): one event each.
            items.sort(key=lambda item: (item[0], isinstance(item[1], LiveProgress)))
            for key, item in items:
                if key <= last:
                    continue
                last = key
                if isinstance(item, LiveProgress):
                    yield progress_event(item, str(key))
                else:
                    yield record_event(item, str(key))
            if more:
                continue
            if is_terminal(JobStatus(mark.status)):
                yield _sse("end", EndEvent(job_id=job_id, status=mark.status), None)
                return
            if stop is not None and stop.is_set():
                return
            behind = inbox.unrecorded(_recorded(marks)) or bool(pending)
            await _wait(inbox, recheck.delay(behind))


def _merge_progress(
    records: list[JobRecord], ready: list[LiveProgress]
) -> list[JobRecord | LiveProgress]:
    """Records in their order, each progress event placed before the first record of its job
    that comes after it."""
    merged: list[JobRecord | LiveProgress] = list(records)
    for live in sorted(ready, key=progress_key):
        key = progress_key(live)
        position = next(
            (
                i
                for i, item in enumerate(merged)
                if isinstance(item, JobRecord)
                and item.job_id == live.envelope.job_id
                and (item.attempt, item.seq) > (key.attempt, key.seq)
            ),
            len(merged),
        )
        merged.insert(position, live)
    return merged


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
    batch = sources.settings.batch
    pending: list[LiveProgress] = []
    recheck = _Recheck(sources.settings.poll_interval_s)
    with sources.hub.subscribe(job_id=None) as inbox:
        async with sources.sessions() as session:
            top, visible = await events_repo.transition_ids_near_top(
                session=session, window=CATCH_UP_WINDOW
            )
        now = time.time()
        in_flight = {i: now for i in range(max(1, top - CATCH_UP_WINDOW + 1), top + 1)}
        in_flight = {i: t for i, t in in_flight.items() if i not in visible}
        if cursor is None and from_now:
            cursor = TableCursor(last=top, holes=in_flight)
        cursor = cursor or TableCursor()
        if top - cursor.last > CATCH_UP_WINDOW:
            # Far behind: this experiment's rows up to ``top``, then every id from there on.
            position = TableCursor(last=cursor.last, holes=dict(cursor.holes))
            holes = {**cursor.holes, **in_flight}
            while True:
                async with sources.sessions() as session:
                    read = await events_repo.experiment_transitions(
                        session=session,
                        experiment_id=experiment_id,
                        after=position.last,
                        holes=position.wanted_holes(),
                        limit=batch,
                        upto=top,
                    )
                for record in read.records:
                    holes.pop(record.row_id, None)
                    position.holes.pop(record.row_id, None)
                    position.last = max(position.last, record.row_id)
                    yield record_event(record, experiment_event_id(position))
                if not read.full:
                    break
            cursor = TableCursor(last=top, holes=holes)
        while True:
            inbox.wake.clear()
            pending.extend(inbox.take_progress())
            async with sources.sessions() as session:
                heard = {p.envelope.job_id for p in pending} | set(inbox.live_keys)
                marks = await events_repo.watermarks(
                    session=session,
                    job_ids=[job for job in heard if job is not None],
                )
                read = await events_repo.experiment_transitions(
                    session=session,
                    experiment_id=experiment_id,
                    after=cursor.last,
                    holes=cursor.wanted_holes(),
                    limit=batch,
                )
            foreign = {job for job, mark in marks.items() if mark.experiment_id != experiment_id}
            if len(inbox.ignored_jobs) > MAX_IGNORED_JOBS:
                inbox.ignored_jobs.clear()
            inbox.ignored_jobs |= foreign | read.other_jobs
            ours = {job: mark for job, mark in marks.items() if job not in foreign}
            ready, pending = ready_progress(pending, ours, None)
            mine = {record.row_id: record for record in read.records}
            emitted: list[tuple[JobRecord, str]] = []
            for row_id in sorted(read.visible_ids):
                cursor.take(row_id, read.visible_ids)
                if row_id in mine:
                    emitted.append((mine[row_id], experiment_event_id(cursor)))
            ids = {id(record): event_id for record, event_id in emitted}
            for item in _merge_progress([record for record, _ in emitted], ready):
                if isinstance(item, LiveProgress):
                    yield progress_event(item, None)
                else:
                    yield record_event(item, ids[id(item)])
            if read.full:
                continue
            if stop is not None and stop.is_set():
                return
            behind = inbox.unrecorded(_recorded(ours)) or bool(pending)
            await _wait(inbox, recheck.delay(behind))
