"""Users, groups, memberships and API keys: administrators only (the router needs the ``admin``
scope for every route). ``GET /me`` tells any caller who they are."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeVar

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from theodolite.db.identity_tables import Group, User
from theodolite.db.tables import utcnow
from theodolite.web.errors import found_or_404
from theodolite_api.auth import accounts
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.auth.callers import Role
from theodolite_api.deps import SessionDep
from theodolite_api.repositories import identity as identity_repo
from theodolite_api.schemas.common import Name, Page
from theodolite_api.schemas.identity import (
    CallerPublic,
    GroupCreate,
    GroupPublic,
    KeyCreate,
    KeyCreated,
    KeyPublic,
    MemberPublic,
    MembershipSet,
    UserCreate,
    UserPublic,
)

PublicT = TypeVar("PublicT", bound=BaseModel)

router = APIRouter(prefix="/admin", tags=["admin"])
me_router = APIRouter(tags=["admin"])


@me_router.get("/me")
async def who_am_i(caller: CallerDep) -> CallerPublic:
    """The caller: user, groups with roles, and the scopes of the key used."""
    return CallerPublic(
        user=caller.name,
        is_admin=caller.is_admin,
        scopes=sorted(caller.scopes),
        groups=[
            MemberPublic(user=caller.name, group=caller.group_names[g], role=role)
            for g, role in sorted(caller.roles.items(), key=lambda i: caller.group_names[i[0]])
        ],
    )


async def _user(session: SessionDep, name: str) -> User:
    return found_or_404(
        await identity_repo.user_by_name(session=session, name=name), f"no user {name!r}"
    )


async def _group(session: SessionDep, name: str) -> Group:
    return found_or_404(
        await identity_repo.group_by_name(session=session, name=name), f"no group {name!r}"
    )


def _every(rows: Sequence[object], model: type[PublicT]) -> Page[PublicT]:
    return Page(data=[model.model_validate(r, from_attributes=True) for r in rows], count=len(rows))


@router.get("/users")
async def list_users(session: SessionDep) -> Page[UserPublic]:
    return _every(await identity_repo.users(session=session), UserPublic)


@router.post("/users", status_code=status.HTTP_201_CREATED, responses={409: {}})
async def create_user(body: UserCreate, session: SessionDep) -> UserPublic:
    user = await accounts.create_user(session=session, name=body.name, is_admin=body.is_admin)
    await session.commit()
    return UserPublic.model_validate(user, from_attributes=True)


@router.get("/groups")
async def list_groups(session: SessionDep) -> Page[GroupPublic]:
    return _every(await identity_repo.groups(session=session), GroupPublic)


@router.post("/groups", status_code=status.HTTP_201_CREATED, responses={409: {}})
async def create_group(body: GroupCreate, session: SessionDep) -> GroupPublic:
    group = await accounts.create_group(
        session=session, name=body.name, description=body.description
    )
    await session.commit()
    return GroupPublic.model_validate(group, from_attributes=True)


@router.get("/groups/{group}/members", responses={404: {}})
async def list_members(group: Name, session: SessionDep) -> Page[MemberPublic]:
    found = await _group(session, group)
    rows = await identity_repo.memberships(session=session, group_id=found.id)
    data = [MemberPublic(user=u.name, group=g.name, role=Role(m.role)) for m, u, g in rows]
    return Page(data=data, count=len(data))


@router.put("/groups/{group}/members/{user}", responses={404: {}})
async def set_member(
    group: Name, user: Name, body: MembershipSet, session: SessionDep
) -> MemberPublic:
    """Add the user to the group with a role, or change their role."""
    found_group, found_user = await _group(session, group), await _user(session, user)
    await identity_repo.set_membership(
        session=session, user_id=found_user.id, group_id=found_group.id, role=body.role.value
    )
    await session.commit()
    return MemberPublic(user=found_user.name, group=found_group.name, role=body.role)


@router.delete(
    "/groups/{group}/members/{user}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}}
)
async def remove_member(group: Name, user: Name, session: SessionDep) -> Response:
    found_group, found_user = await _group(session, group), await _user(session, user)
    removed = await identity_repo.remove_membership(
        session=session, user_id=found_user.id, group_id=found_group.id
    )
    found_or_404(removed or None, f"{user!r} is not in group {group!r}")
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/keys")
async def list_keys(session: SessionDep, user: Name | None = None) -> Page[KeyPublic]:
    """Keys (never the keys themselves), newest first; of one user with ``user``."""
    user_id = None if user is None else (await _user(session, user)).id
    return _every(await identity_repo.keys(session=session, user_id=user_id), KeyPublic)


@router.post("/keys", status_code=status.HTTP_201_CREATED, responses={404: {}})
async def create_key(body: KeyCreate, session: SessionDep) -> KeyCreated:
    """A new key for a user: the key is in this answer only."""
    user = await _user(session, body.user)
    row, key = await accounts.issue_key(
        session=session,
        user_id=user.id,
        name=body.name,
        scopes=list(dict.fromkeys(body.scopes)),
        expires_in_days=body.expires_in_days,
    )
    await session.commit()
    return KeyCreated(**KeyPublic.model_validate(row, from_attributes=True).model_dump(), key=key)


@router.post("/keys/{key_id}/revoke", responses={404: {}})
async def revoke_key(key_id: uuid.UUID, session: SessionDep) -> KeyPublic:
    """Revoke a key: it stops working at once."""
    key = found_or_404(
        await identity_repo.get_key(session=session, key_id=key_id), f"no key {key_id}"
    )
    await identity_repo.revoke_key(session=session, key=key, at=utcnow())
    await session.commit()
    return KeyPublic.model_validate(key, from_attributes=True)
