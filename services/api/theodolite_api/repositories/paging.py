"""One page of an owned table, newest first, limited to the groups a caller sees."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

RowT = TypeVar("RowT", bound=SQLModel)


@dataclass(frozen=True)
class PageRequest:
    """Which page of a listing, of whose rows: ``groups`` None is every group's (an
    administrator's view)."""

    groups: list[uuid.UUID] | None
    limit: int
    offset: int


async def newest_first(
    *,
    session: AsyncSession,
    model: type[RowT],
    page: PageRequest,
    where: list[Any] | None = None,
) -> tuple[list[RowT], int]:
    """``(rows, total)`` of the page."""
    conditions = list(where or [])
    if page.groups is not None:
        conditions.append(col(model.group_id).in_(page.groups))  # type: ignore[attr-defined]
    counted = select(func.count()).select_from(model).where(*conditions)
    total = (await session.exec(counted)).one()
    created = col(model.created_at).desc()  # type: ignore[attr-defined]
    rows = await session.exec(
        select(model).where(*conditions).order_by(created).limit(page.limit).offset(page.offset)
    )
    return list(rows), total
