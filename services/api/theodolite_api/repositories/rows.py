"""What every table's repository would write alike."""

from __future__ import annotations

from typing import TypeVar

from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

RowT = TypeVar("RowT", bound=SQLModel)


async def insert(*, session: AsyncSession, row: RowT) -> RowT:
    """Add the row and flush it, so its database defaults and constraints apply now."""
    session.add(row)
    await session.flush()
    return row
