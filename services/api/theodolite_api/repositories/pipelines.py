from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.status_tables import Pipeline, PipelineJob
from theodolite.db.tables import Job
from theodolite_api.repositories.paging import PageRequest, newest_first


async def add(*, session: AsyncSession, pipeline: Pipeline, links: list[PipelineJob]) -> None:
    session.add(pipeline)
    await session.flush()  # the pipeline row before the rows that point at it
    session.add_all(links)
    await session.flush()


async def get(
    *, session: AsyncSession, pipeline_id: uuid.UUID, for_update: bool = False
) -> Pipeline | None:
    return await session.get(Pipeline, pipeline_id, with_for_update=for_update)


async def jobs_of(
    *, session: AsyncSession, pipeline_id: uuid.UUID, for_update: bool = False
) -> list[tuple[PipelineJob, Job]]:
    """Every job of the pipeline with its link, by stage then point; ``for_update`` locks the
    jobs' rows (in id order, as every job lock is taken: no deadlock)."""
    query = select(PipelineJob, Job).join(Job, col(Job.id) == col(PipelineJob.job_id))
    query = query.where(col(PipelineJob.pipeline_id) == pipeline_id)
    if for_update:
        rows = await session.exec(query.order_by(col(Job.id)).with_for_update(of=Job))
        found = [(link, job) for link, job in rows]
        return sorted(found, key=lambda pair: (pair[0].stage, pair[0].point_index or 0))
    rows = await session.exec(query.order_by(col(PipelineJob.stage), col(PipelineJob.point_index)))
    return [(link, job) for link, job in rows]


async def link_of(*, session: AsyncSession, job_id: uuid.UUID) -> PipelineJob | None:
    """The pipeline stage a job runs, if any."""
    rows = await session.exec(select(PipelineJob).where(col(PipelineJob.job_id) == job_id))
    return rows.first()


async def page(
    *, session: AsyncSession, page: PageRequest, experiment_id: uuid.UUID | None
) -> tuple[list[Pipeline], int]:
    where = [] if experiment_id is None else [col(Pipeline.experiment_id) == experiment_id]
    return await newest_first(session=session, model=Pipeline, page=page, where=where)
