from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import EntryPointArchive


async def get(*, session: AsyncSession, entrypoint_id: uuid.UUID) -> EntryPointArchive | None:
    return await session.get(EntryPointArchive, entrypoint_id)


async def get_by_sha256(*, session: AsyncSession, sha256: str) -> EntryPointArchive | None:
    result = await session.exec(select(EntryPointArchive).where(EntryPointArchive.sha256 == sha256))
    return result.first()


async def add(*, session: AsyncSession, archive: EntryPointArchive) -> EntryPointArchive:
    session.add(archive)
    await session.flush()
    return archive


async def page(
    *, session: AsyncSession, limit: int, offset: int
) -> tuple[list[EntryPointArchive], int]:
    total = (await session.exec(select(func.count()).select_from(EntryPointArchive))).one()
    rows = await session.exec(
        select(EntryPointArchive)
        .order_by(col(EntryPointArchive.created_at).desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total
