"""What the event streams replay: a job's recorded transitions and log chunks, in the order the
api recorded them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, or_, tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job, JobLogChunk, JobTransition


@dataclass(frozen=True)
class JobRecord:
    """A recorded transition (``status``) or log chunk (``log``) of one job."""

    kind: Literal["status", "log"]
    row_id: int
    job_id: uuid.UUID
    attempt: int
    seq: int
    status: str | None = None
    at: datetime | None = None
    detail: str | None = None
    lines: tuple[str, ...] = ()

    @property
    def order(self) -> tuple[int, int, int, int]:
        """Within one job: by (attempt, seq), transitions before log chunks, then by row."""
        return (self.attempt, self.seq, 0 if self.kind == "status" else 1, self.row_id)


@dataclass(frozen=True)
class JobWatermark:
    """A job's status and the ``(attempt, seq)`` up to which its events are recorded."""

    job_id: uuid.UUID
    experiment_id: uuid.UUID
    status: str
    attempt: int
    last_seq: int


def _transition(row: JobTransition) -> JobRecord:
    assert row.id is not None
    return JobRecord(
        kind="status",
        row_id=row.id,
        job_id=row.job_id,
        attempt=row.attempt,
        seq=row.seq,
        status=row.status,
        at=row.at,
        detail=row.detail,
    )


def _log_chunk(row: JobLogChunk) -> JobRecord:
    assert row.id is not None
    return JobRecord(
        kind="log",
        row_id=row.id,
        job_id=row.job_id,
        attempt=row.attempt,
        seq=row.seq,
        lines=tuple(row.lines.split("\n")),
    )


async def watermarks(
    *, session: AsyncSession, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, JobWatermark]:
    if not job_ids:
        return {}
    rows = await session.exec(
        select(Job.id, Job.experiment_id, Job.status, Job.attempt, Job.last_seq).where(
            col(Job.id).in_(list(job_ids))
        )
    )
    return {row[0]: JobWatermark(*row) for row in rows}


async def job_records_from(
    *, session: AsyncSession, job_id: uuid.UUID, attempt: int, seq: int, limit: int
) -> tuple[list[JobRecord], bool]:
    """The job's records from ``(attempt, seq)`` on (inclusive), in order; and whether more
    may follow (a table gave ``limit`` rows: only records before the cut are complete)."""
    tables = (
        (JobTransition, _transition),
        (JobLogChunk, _log_chunk),
    )
    found: list[JobRecord] = []
    cut: tuple[int, int] | None = None
    for table, convert in tables:
        rows = list(
            await session.exec(
                select(table)
                .where(
                    col(table.job_id) == job_id,
                    tuple_(col(table.attempt), col(table.seq)) >= tuple_(attempt, seq),
                )
                .order_by(col(table.attempt), col(table.seq), col(table.id))
                .limit(limit)
            )
        )
        found.extend(convert(row) for row in rows)
        if len(rows) == limit:
            # The last (attempt, seq) of this table may be incomplete: keep what is before it.
            last = (rows[-1].attempt, rows[-1].seq)
            cut = last if cut is None else min(cut, last)
    found.sort(key=lambda r: r.order)
    if cut is not None:
        found = [r for r in found if (r.attempt, r.seq) < cut]
    return found, cut is not None


@dataclass
class TransitionRead:
    """New transitions: every visible id read (all experiments), and this experiment's rows."""

    visible_ids: set[int]
    records: list[JobRecord]
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
    ids = list(await session.exec(query))
    mine = [row_id for row_id, _, experiment in ids if experiment == experiment_id]
    records: list[JobRecord] = []
    if mine:
        rows = await session.exec(select(JobTransition).where(col(JobTransition.id).in_(mine)))
        records = sorted((_transition(row) for row in rows), key=lambda r: r.row_id)
    return TransitionRead(
        visible_ids={row_id for row_id, _, _ in ids},
        records=records,
        other_jobs={job for _, job, experiment in ids if experiment != experiment_id},
        full=len(ids) == limit,
    )


async def transition_ids_near_top(*, session: AsyncSession, window: int) -> tuple[int, set[int]]:
    """The highest transition id and every visible id of the ``window`` ids up to it."""
    top = (await session.exec(select(func.coalesce(func.max(JobTransition.id), 0)))).one()
    rows = await session.exec(
        select(col(JobTransition.id)).where(col(JobTransition.id) > top - window)
    )
    return int(top), set(rows)
