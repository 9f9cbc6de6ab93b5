from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Job, JobLogChunk, JobTransition
from theodolite_api.repositories.paging import PageRequest, newest_first


async def get(*, session: AsyncSession, job_id: uuid.UUID, for_update: bool = False) -> Job | None:
    return await session.get(Job, job_id, with_for_update=for_update)


async def get_by_idempotency_key(*, session: AsyncSession, key: str) -> Job | None:
    rows = await session.exec(select(Job).where(Job.idempotency_key == key))
    return rows.first()


async def history(*, session: AsyncSession, job_id: uuid.UUID) -> list[JobTransition]:
    rows = await session.exec(
        select(JobTransition)
        .where(JobTransition.job_id == job_id)
        .order_by(col(JobTransition.attempt), col(JobTransition.seq), col(JobTransition.id))
    )
    return list(rows)


async def page(
    *,
    session: AsyncSession,
    page: PageRequest,
    experiment_id: uuid.UUID | None,
    status: str | None,
) -> tuple[list[Job], int]:
    conditions = []
    if experiment_id is not None:
        conditions.append(col(Job.experiment_id) == experiment_id)
    if status is not None:
        conditions.append(col(Job.status) == status)
    return await newest_first(session=session, model=Job, page=page, where=conditions)


async def add_log_chunk(
    *,
    session: AsyncSession,
    job_id: uuid.UUID,
    attempt: int,
    seq: int,
    lines: list[str],
    max_lines: int,
) -> None:
    """Store the lines, up to ``max_lines`` for the whole job: the line that fills it says the
    log was cut (the worker's full log is the run's artifact logs/output.log); later ones are
    dropped."""
    stored = (
        await session.exec(
            select(func.coalesce(func.sum(JobLogChunk.line_count), 0)).where(
                JobLogChunk.job_id == job_id
            )
        )
    ).one()
    room = max_lines - stored
    if room <= 0:
        return
    if len(lines) > room:
        lines = [
            *lines[: room - 1],
            f"[theodolite] log cut at {max_lines} lines (THEODOLITE_API_MAX_LOG_LINES); the "
            "full output is the MLflow run's artifact logs/output.log",
        ]
    session.add(
        JobLogChunk(
            job_id=job_id, attempt=attempt, seq=seq, lines="\n".join(lines), line_count=len(lines)
        )
    )


async def has_log_chunk(
    *, session: AsyncSession, job_id: uuid.UUID, attempt: int, seq: int
) -> bool:
    rows = await session.exec(
        select(JobLogChunk.id).where(
            JobLogChunk.job_id == job_id, JobLogChunk.attempt == attempt, JobLogChunk.seq == seq
        )
    )
    return rows.first() is not None


async def log_lines(*, session: AsyncSession, job_id: uuid.UUID) -> list[str]:
    rows = await session.exec(
        select(JobLogChunk.lines)
        .where(JobLogChunk.job_id == job_id)
        .order_by(col(JobLogChunk.attempt), col(JobLogChunk.seq))
    )
    lines: list[str] = []
    for chunk in rows:
        lines.extend(chunk.split("\n"))
    return lines


async def log_tail(*, session: AsyncSession, job_id: uuid.UUID, lines: int) -> list[str]:
    # Chunks hold at least one line each: the last ``lines`` chunks always cover the tail.
    rows = await session.exec(
        select(JobLogChunk.lines)
        .where(JobLogChunk.job_id == job_id)
        .order_by(col(JobLogChunk.attempt).desc(), col(JobLogChunk.seq).desc())
        .limit(lines)
    )
    collected: list[str] = []
    for chunk in reversed(list(rows)):
        collected.extend(chunk.split("\n"))
    return collected[-lines:]


async def record_job_heartbeats(
    *, session: AsyncSession, worker_id: str, job_ids: list[uuid.UUID], at: datetime
) -> None:
    """The worker still runs these jobs: they are not lost."""
    if not job_ids:
        return
    await session.exec(
        update(Job)
        .where(
            col(Job.id).in_(job_ids),
            col(Job.worker_id) == worker_id,
            col(Job.status) == "running",
            or_(col(Job.last_heartbeat_at).is_(None), col(Job.last_heartbeat_at) < at),
        )
        .values(last_heartbeat_at=at)
    )


async def visible_run_ids(
    *, session: AsyncSession, run_ids: list[str], groups: list[uuid.UUID] | None
) -> set[str]:
    """Those of ``run_ids`` that are MLflow runs of jobs of ``groups`` (None: of any job)."""
    statement = select(Job.mlflow_run_id).where(col(Job.mlflow_run_id).in_(run_ids))
    if groups is not None:
        statement = statement.where(col(Job.group_id).in_(groups))
    return {run_id for run_id in await session.exec(statement) if run_id is not None}
