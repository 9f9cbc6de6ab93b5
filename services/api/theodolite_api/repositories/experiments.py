from __future__ import annotations

import uuid

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Experiment
from theodolite_api.repositories.paging import PageRequest, newest_first


async def get(*, session: AsyncSession, experiment_id: uuid.UUID) -> Experiment | None:
    return await session.get(Experiment, experiment_id)


async def get_by_name(*, session: AsyncSession, name: str) -> Experiment | None:
    result = await session.exec(select(Experiment).where(Experiment.name == name))
    return result.first()


async def page(*, session: AsyncSession, page: PageRequest) -> tuple[list[Experiment], int]:
    return await newest_first(session=session, model=Experiment, page=page)


async def mlflow_ids_of_group(*, session: AsyncSession, group_id: uuid.UUID) -> set[str]:
    """The MLflow experiment ids of the group's experiments."""
    result = await session.exec(
        select(Experiment.mlflow_experiment_id).where(Experiment.group_id == group_id)
    )
    return set(result.all())
