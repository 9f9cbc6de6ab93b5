from __future__ import annotations

import uuid

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.tables import EntryPointArchive
from theodolite_api.repositories.paging import PageRequest, newest_first


async def get(*, session: AsyncSession, entrypoint_id: uuid.UUID) -> EntryPointArchive | None:
    return await session.get(EntryPointArchive, entrypoint_id)


async def get_by_sha256(
    *, session: AsyncSession, group_id: uuid.UUID, sha256: str
) -> EntryPointArchive | None:
    result = await session.exec(
        select(EntryPointArchive).where(
            EntryPointArchive.group_id == group_id, EntryPointArchive.sha256 == sha256
        )
    )
    return result.first()


async def page(*, session: AsyncSession, page: PageRequest) -> tuple[list[EntryPointArchive], int]:
    return await newest_first(session=session, model=EntryPointArchive, page=page)
