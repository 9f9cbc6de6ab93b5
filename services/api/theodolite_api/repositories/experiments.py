from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import Experiment


async def get(*, session: AsyncSession, experiment_id: uuid.UUID) -> Experiment | None:
    return await session.get(Experiment, experiment_id)


async def get_by_name(*, session: AsyncSession, name: str) -> Experiment | None:
    result = await session.exec(select(Experiment).where(Experiment.name == name))
    return result.first()


async def add(*, session: AsyncSession, experiment: Experiment) -> Experiment:
    session.add(experiment)
    await session.flush()
    return experiment


async def page(*, session: AsyncSession, limit: int, offset: int) -> tuple[list[Experiment], int]:
    total = (await session.exec(select(func.count()).select_from(Experiment))).one()
    rows = await session.exec(
        select(Experiment).order_by(col(Experiment.created_at).desc()).limit(limit).offset(offset)
    )
    return list(rows), total
