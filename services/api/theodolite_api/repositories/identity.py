"""Users, groups, memberships and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.identity_tables import ApiKey, Group, Membership, User


async def get_user(*, session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def user_by_name(*, session: AsyncSession, name: str) -> User | None:
    return (await session.exec(select(User).where(User.name == name))).first()


async def user_by_subject(*, session: AsyncSession, subject: str) -> User | None:
    return (await session.exec(select(User).where(User.oidc_subject == subject))).first()


async def users(*, session: AsyncSession) -> list[User]:
    return list(await session.exec(select(User).order_by(col(User.name))))


async def any_admin(*, session: AsyncSession) -> bool:
    found = await session.exec(select(User.id).where(col(User.is_admin)).limit(1))
    return found.first() is not None


async def group_by_name(*, session: AsyncSession, name: str) -> Group | None:
    return (await session.exec(select(Group).where(Group.name == name))).first()


async def groups_by_id(*, session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Group]:
    rows = await session.exec(select(Group).where(col(Group.id).in_(ids)))
    return {row.id: row for row in rows}


async def groups(*, session: AsyncSession) -> list[Group]:
    return list(await session.exec(select(Group).order_by(col(Group.name))))


async def memberships(
    *, session: AsyncSession, user_id: uuid.UUID | None = None, group_id: uuid.UUID | None = None
) -> list[tuple[Membership, User, Group]]:
    """Memberships with their user and group: of one user, of one group, or all."""
    statement = (
        select(Membership, User, Group)
        .join(User, col(User.id) == col(Membership.user_id))
        .join(Group, col(Group.id) == col(Membership.group_id))
        .order_by(col(User.name), col(Group.name))
    )
    if user_id is not None:
        statement = statement.where(Membership.user_id == user_id)
    if group_id is not None:
        statement = statement.where(Membership.group_id == group_id)
    return list((await session.exec(statement)).all())


async def set_membership(
    *, session: AsyncSession, user_id: uuid.UUID, group_id: uuid.UUID, role: str
) -> Membership:
    membership = await session.get(Membership, (user_id, group_id))
    if membership is None:
        membership = Membership(user_id=user_id, group_id=group_id, role=role)
        session.add(membership)
    membership.role = role
    await session.flush()
    return membership


async def remove_membership(
    *, session: AsyncSession, user_id: uuid.UUID, group_id: uuid.UUID
) -> bool:
    membership = await session.get(Membership, (user_id, group_id))
    if membership is None:
        return False
    await session.delete(membership)
    await session.flush()
    return True


async def key_by_prefix(*, session: AsyncSession, prefix: str) -> ApiKey | None:
    return (await session.exec(select(ApiKey).where(ApiKey.prefix == prefix))).first()


async def keys(*, session: AsyncSession, user_id: uuid.UUID | None) -> list[ApiKey]:
    statement = select(ApiKey).order_by(col(ApiKey.created_at).desc())
    if user_id is not None:
        statement = statement.where(ApiKey.user_id == user_id)
    return list(await session.exec(statement))


async def get_key(*, session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def revoke_key(*, session: AsyncSession, key: ApiKey, at: datetime) -> None:
    if key.revoked_at is None:
        key.revoked_at = at
        await session.flush()
