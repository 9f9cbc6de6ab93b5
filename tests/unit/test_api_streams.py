"""A job's and an experiment's event streams: replay what was recorded, then live events, each
once and in order, with the database of the unit tests and the live hub fed by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.fixtures.database import announcements, move, move_and_commit, new_job, sessions
from tests.fixtures.events import SIGNERS, FixedHolders
from theodolite.db.tables import Job, JobTransition, utcnow
from theodolite.events import JobLog, JobProgress, decode_event, make_event
from theodolite.lifecycle import JobStatus
from theodolite_api.jobs import transitions
from theodolite_api.repositories import jobs as job_repo
from theodolite_api.settings import EventStreamSettings
from theodolite_api.streams.experiment_stream import experiment_stream
from theodolite_api.streams.ids import JobEventKey
from theodolite_api.streams.job_stream import StreamSources, job_stream
from theodolite_api.streams.live import LiveHub

__all__ = ["sessions"]


async def _announce(
    hub: LiveHub, sessions: async_sessionmaker[AsyncSession], transition: JobTransition
) -> None:
    """What the outbox relay publishes for ``transition``: the event the api recorded with it."""
    async with sessions() as session:
        recorded = await announcements(session)
    found = [(row, payload) for row, payload in recorded if payload.transition_id == transition.id]
    assert len(found) == 1, f"transition {transition.id} announced {len(found)} times"
    ((row, payload),) = found
    envelope, _ = decode_event(row.body)
    hub.publish(envelope, payload)


def _worker(hub: LiveHub, job: Job, seq: int, payload: JobLog | JobProgress) -> None:
    hub.publish(make_event(payload, producer="w", job_id=job.id, attempt=1, seq=seq), payload)


async def _next(stream: AsyncIterator[object], count: int) -> list[tuple[str, str | None, dict]]:
    got = []
    for _ in range(count):
        event = await asyncio.wait_for(anext(stream), timeout=5)
        got.append((event.event, event.id, json.loads(event.data)))  # type: ignore[attr-defined]
    return got


async def _running_job(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[Job, list[JobTransition]]:
    """In a session of its own: a job submitted, running and with two log lines, committed."""
    async with sessions() as session:
        job = await new_job(session)
        queued = await transitions.record_submission(session=session, job=job, at=utcnow())
        running = await move(session, job, JobStatus.RUNNING, seq=0, reason="w")
        await job_repo.add_log_chunk(
            session=session, job_id=job.id, attempt=1, seq=2, lines=["a", "b"], max_lines=10
        )
        job.last_seq = 2
        await session.commit()
    return job, [queued, running]


@pytest.fixture
def hub() -> LiveHub:
    return LiveHub(broker=None, signers=SIGNERS, holders=FixedHolders({}))


@pytest.fixture
def sources(sessions: async_sessionmaker[AsyncSession], hub: LiveHub) -> StreamSources:
    return StreamSources(sessions=sessions, hub=hub, settings=EventStreamSettings())


async def test_a_job_stream_replays_then_follows_live_events_to_the_end(
    sessions: async_sessionmaker[AsyncSession], hub: LiveHub, sources: StreamSources
) -> None:
    job, recorded = await _running_job(sessions)
    stream = job_stream(sources, job.id, None)
    replayed = await _next(stream, 3)
    assert [(kind, event_id) for kind, event_id, _ in replayed] == [
        ("status", "1.0"),
        ("status", "1.0.1"),
        ("log", "1.2"),
    ]
    # Live: a repeat of what was replayed, then new events, one of them heard twice.
    await _announce(hub, sessions, recorded[1])
    _worker(hub, job, 2, JobLog(lines=["a", "b"]))
    _worker(hub, job, 3, JobLog(lines=["c"]))
    _worker(hub, job, 4, JobProgress(fraction=1.0))
    _worker(hub, job, 3, JobLog(lines=["c"]))
    ended = await move_and_commit(sessions, job.id, JobStatus.SUCCEEDED, seq=5)
    await _announce(hub, sessions, ended)
    live = await _next(stream, 4)
    assert [(kind, event_id) for kind, event_id, _ in live] == [
        ("log", "1.3"),
        ("progress", "1.4"),
        ("status", "1.5"),
        ("end", None),
    ]
    assert live[0][2]["lines"] == ["c"] and live[3][2]["status"] == "succeeded"

    # Resumed after the terminal event: it only says it ended.
    resumed = job_stream(sources, job.id, JobEventKey.parse("1.5"))
    assert [(kind, data["status"]) for kind, _, data in await _next(resumed, 1)] == [
        ("end", "succeeded")
    ]


async def test_an_experiment_stream_resumes_and_takes_live_transitions_once(
    sessions: async_sessionmaker[AsyncSession], hub: LiveHub, sources: StreamSources
) -> None:
    job, recorded = await _running_job(sessions)
    other, _ = await _running_job(sessions)  # another experiment's
    stream = experiment_stream(sources, job.experiment_id, None)
    replayed = await _next(stream, 2)
    assert [data["status"] for _, _, data in replayed] == ["queued", "running"]
    assert all(event_id and event_id.startswith("T") for _, event_id, _ in replayed)

    await _announce(hub, sessions, recorded[1])  # replayed already: not again
    _worker(hub, other, 3, JobProgress(fraction=0.2))  # not this experiment's
    _worker(hub, job, 3, JobProgress(fraction=0.5))
    ended = await move_and_commit(sessions, job.id, JobStatus.FAILED, seq=4, reason="exit 1")
    await _announce(hub, sessions, ended)
    live = await _next(stream, 2)
    assert [(kind, data.get("status"), data.get("fraction")) for kind, _, data in live] == [
        ("progress", None, 0.5),
        ("status", "failed", None),
    ]
    assert live[0][1] is None and live[1][1] is not None
    await stream.aclose()  # type: ignore[attr-defined]

    # From the last id: nothing recorded before it again.
    from theodolite_api.streams.ids import parse_experiment_cursor

    resumed = experiment_stream(
        sources, job.experiment_id, parse_experiment_cursor(replayed[-1][1] or "")
    )
    again = await _next(resumed, 1)
    assert [(kind, data["status"]) for kind, _, data in again] == [("status", "failed")]
    await resumed.aclose()  # type: ignore[attr-defined]
