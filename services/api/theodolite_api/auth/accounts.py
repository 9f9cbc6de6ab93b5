"""Users, groups and keys made and changed: used by the admin routes and by the bootstrap."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.identity_tables import ApiKey, Group, User
from theodolite.db.tables import utcnow
from theodolite.web.errors import Conflict
from theodolite_api.auth.callers import Role, Scope
from theodolite_api.auth.keys import new_key
from theodolite_api.repositories import identity as identity_repo


async def _add_named(session: AsyncSession, row: User | Group, kind: str) -> None:
    """Insert ``row``; a name already taken is a Conflict (the transaction goes on)."""
    session.add(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a {kind} named {row.name!r} exists already") from exc


async def create_user(*, session: AsyncSession, name: str, is_admin: bool = False) -> User:
    user = User(name=name, is_admin=is_admin)
    await _add_named(session, user, "user")
    return user


async def create_group(*, session: AsyncSession, name: str, description: str | None) -> Group:
    group = Group(name=name, description=description)
    await _add_named(session, group, "group")
    return group


async def issue_key(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    name: str,
    scopes: list[Scope],
    expires_in_days: float | None,
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key row and the key itself, which is not kept and so can be shown only now."""
    now = now or utcnow()
    made = new_key()
    row = ApiKey(
        prefix=made.prefix,
        secret_sha256=made.secret_sha256,
        user_id=user_id,
        name=name,
        scopes=sorted(s.value for s in scopes),
        created_at=now,
        expires_at=None if expires_in_days is None else now + timedelta(days=expires_in_days),
    )
    session.add(row)
    await session.flush()
    return row, made.key


async def bootstrap_admin(
    *, session: AsyncSession, name: str, group: str
) -> tuple[User, str] | None:
    """The first administrator, admin of ``group`` too, with an admin key; None (nothing done)
    when an administrator exists already. Does not commit."""
    if await identity_repo.any_admin(session=session):
        return None
    user = await create_user(session=session, name=name, is_admin=True)
    found = await identity_repo.group_by_name(session=session, name=group)
    if found is None:
        found = await create_group(session=session, name=group, description=None)
    await identity_repo.set_membership(
        session=session, user_id=user.id, group_id=found.id, role=Role.ADMIN.value
    )
    _, key = await issue_key(
        session=session,
        user_id=user.id,
        name="bootstrap",
        scopes=[Scope.ADMIN],
        expires_in_days=None,
    )
    return user, key
