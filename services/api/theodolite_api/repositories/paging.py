"""One page of an owned table, newest first, limited to the groups a caller sees."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

RowT = TypeVar("RowT", bound=SQLModel)


async def newest_first(
    *,
    session: AsyncSession,
    model: type[RowT],
    groups: list[uuid.UUID] | None,
    limit: int,
    offset: int,
    where: list[Any] | None = None,
) -> tuple[list[RowT], int]:
    """``(rows, total)``; ``groups`` None: every group's rows (an administrator's view)."""
    conditions = list(where or [])
    if groups is not None:
        conditions.append(col(model.group_id).in_(groups))  # type: ignore[attr-defined]
    counted = select(func.count()).select_from(model).where(*conditions)
    total = (await session.exec(counted)).one()
    created = col(model.created_at).desc()  # type: ignore[attr-defined]
    rows = await session.exec(
        select(model).where(*conditions).order_by(created).limit(limit).offset(offset)
    )
    return list(rows), total
