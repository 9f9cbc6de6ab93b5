"""What the event streams replay: a job's recorded transitions and log chunks, and an
experiment's transitions, in the order the api recorded them. Read once when a stream connects
(or resumes, or its live queue reconnected), never on a timer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, or_, tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job, JobLogChunk, JobTransition
from theodolite.lifecycle import TERMINAL_STATUSES, JobStatus
from theodolite_api.streams.ids import JobEventKey
from theodolite_api.streams.ordering import JobState, LogItem, StatusItem


def _transition(row: JobTransition) -> StatusItem:
    assert row.id is not None
    return StatusItem(
        job_id=row.job_id,
        attempt=row.attempt,
        seq=row.seq,
        transition_id=row.id,
        from_status=None,  # the record does not keep it (see ordering.chained)
        status=row.status,
        at=row.at,
        detail=row.detail,
    )


async def job_transitions(*, session: AsyncSession, job_id: uuid.UUID) -> list[StatusItem]:
    """Every transition of the job, in the order it was recorded."""
    rows = await session.exec(
        select(JobTransition)
        .where(JobTransition.job_id == job_id)
        .order_by(col(JobTransition.attempt), col(JobTransition.seq), col(JobTransition.id))
    )
    return [_transition(row) for row in rows]


async def log_chunks_after(
    *, session: AsyncSession, job_id: uuid.UUID, attempt: int, seq: int, limit: int
) -> list[LogItem]:
    """The job's log chunks after ``(attempt, seq)``, in order, at most ``limit``."""
    rows = await session.exec(
        select(JobLogChunk)
        .where(
            col(JobLogChunk.job_id) == job_id,
            tuple_(col(JobLogChunk.attempt), col(JobLogChunk.seq)) > tuple_(attempt, seq),
        )
        .order_by(col(JobLogChunk.attempt), col(JobLogChunk.seq), col(JobLogChunk.id))
        .limit(limit)
    )
    return [
        LogItem(
            job_id=row.job_id,
            attempt=row.attempt,
            seq=row.seq,
            lines=tuple(row.lines.split("\n")),
        )
        for row in rows
    ]


async def open_job_states(
    *, session: AsyncSession, experiment_id: uuid.UUID
) -> dict[uuid.UUID, JobState]:
    """Where each unfinished job of the experiment stands: its last transition."""
    open_jobs = (
        select(col(Job.id))
        .where(
            col(Job.experiment_id) == experiment_id,
            col(Job.status).not_in([s.value for s in TERMINAL_STATUSES]),
        )
        .scalar_subquery()
    )
    last_ids = (
        select(func.max(JobTransition.id))
        .where(col(JobTransition.job_id).in_(open_jobs))
        .group_by(col(JobTransition.job_id))
        .scalar_subquery()
    )
    rows = await session.exec(select(JobTransition).where(col(JobTransition.id).in_(last_ids)))
    states: dict[uuid.UUID, JobState] = {}
    for row in rows:
        assert row.id is not None
        running = row.status == JobStatus.RUNNING.value
        states[row.job_id] = JobState(
            status=row.status,
            transition_id=row.id,
            started_attempt=row.attempt if running else 0,
            status_key=JobEventKey(row.attempt, row.seq),
        )
    return states


@dataclass
class TransitionRead:
    """New transitions: every visible id read (all experiments), and this experiment's rows."""

    visible_ids: set[int]
    records: list[StatusItem]
    other_jobs: set[uuid.UUID]  # jobs of other experiments seen in the read
    full: bool  # the read hit its limit: more may be waiting


async def experiment_transitions(
    *,
    session: AsyncSession,
    experiment_id: uuid.UUID,
    after: int,
    holes: list[int],
    limit: int,
    upto: int | None = None,
) -> TransitionRead:
    """Transitions with an id above ``after`` (and at most ``upto``) or in ``holes``, in id
    order. Without ``upto`` every experiment's ids are read (ids and jobs only), so an id that
    is missing is known to be in flight rather than another experiment's; with it (catching up
    from far behind) only this experiment's rows are read."""
    wanted = col(JobTransition.id) > after
    if upto is not None:
        wanted = wanted & (col(JobTransition.id) <= upto)
    if holes:
        wanted = or_(wanted, col(JobTransition.id).in_(holes))
    query = (
        select(col(JobTransition.id), col(JobTransition.job_id), col(Job.experiment_id))
        .join(Job, col(Job.id) == col(JobTransition.job_id))
        .where(wanted)
        .order_by(col(JobTransition.id))
        .limit(limit)
    )
    if upto is not None:
        query = query.where(col(Job.experiment_id) == experiment_id)
    ids: list[tuple[int, uuid.UUID, uuid.UUID]] = list(await session.exec(query))  # type: ignore[arg-type]
    mine = [row_id for row_id, _, experiment in ids if experiment == experiment_id]
    records: list[StatusItem] = []
    if mine:
        rows = await session.exec(select(JobTransition).where(col(JobTransition.id).in_(mine)))
        records = sorted((_transition(row) for row in rows), key=lambda r: r.transition_id)
    return TransitionRead(
        visible_ids={row_id for row_id, _, _ in ids},
        records=records,
        other_jobs={job for _, job, experiment in ids if experiment != experiment_id},
        full=len(ids) == limit,
    )


async def transition_ids_near_top(*, session: AsyncSession, window: int) -> tuple[int, set[int]]:
    """The highest transition id and every visible id of the ``window`` ids up to it."""
    top = int((await session.exec(select(func.coalesce(func.max(JobTransition.id), 0)))).one() or 0)
    rows = await session.exec(
        select(col(JobTransition.id)).where(col(JobTransition.id) > top - window)
    )
    return top, {row_id for row_id in rows if row_id is not None}
