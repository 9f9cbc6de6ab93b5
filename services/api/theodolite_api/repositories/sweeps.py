from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import Sweep, SweepJob
from theodolite.db.tables import Job
from theodolite_api.repositories.paging import PageRequest, newest_first


async def add(*, session: AsyncSession, sweep: Sweep, children: list[SweepJob]) -> None:
    session.add(sweep)
    await session.flush()  # the sweep row before the rows that point at it
    session.add_all(children)
    await session.flush()


async def get(*, session: AsyncSession, sweep_id: uuid.UUID) -> Sweep | None:
    return await session.get(Sweep, sweep_id)


async def children(*, session: AsyncSession, sweep_id: uuid.UUID) -> list[tuple[SweepJob, Job]]:
    rows = await session.exec(
        select(SweepJob, Job)
        .join(Job, col(Job.id) == col(SweepJob.job_id))
        .where(col(SweepJob.sweep_id) == sweep_id)
        .order_by(col(SweepJob.position))
    )
    return [(child, job) for child, job in rows]


async def child_statuses(
    *, session: AsyncSession, sweep_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    found: dict[uuid.UUID, list[str]] = {s: [] for s in sweep_ids}
    if not sweep_ids:
        return found
    rows = await session.exec(
        select(SweepJob.sweep_id, Job.status)
        .join(Job, col(Job.id) == col(SweepJob.job_id))
        .where(col(SweepJob.sweep_id).in_(sweep_ids))
    )
    for sweep_id, status in rows:
        found[sweep_id].append(status)
    return found


async def page(
    *, session: AsyncSession, page: PageRequest, experiment_id: uuid.UUID | None
) -> tuple[list[Sweep], int]:
    where = [] if experiment_id is None else [col(Sweep.experiment_id) == experiment_id]
    return await newest_first(session=session, model=Sweep, page=page, where=where)
