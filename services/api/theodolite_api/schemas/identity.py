from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from theodolite_api.auth.callers import Role, Scope
from theodolite_api.schemas.common import Name, RequestBody, Text

ACCOUNT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"


class UserCreate(RequestBody):
    name: Name = Field(pattern=ACCOUNT_NAME)
    is_admin: bool = False


class UserPublic(BaseModel):
    id: uuid.UUID
    name: str
    is_admin: bool
    disabled: bool
    oidc_subject: str | None
    created_at: datetime


class GroupCreate(RequestBody):
    name: Name = Field(pattern=ACCOUNT_NAME)
    description: Text | None = Field(None, max_length=1000)


class GroupPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime


class MembershipSet(RequestBody):
    role: Role


class MemberPublic(BaseModel):
    user: str
    group: str
    role: Role


class KeyCreate(RequestBody):
    user: Name = Field(description="The user the key acts for.")
    name: Name = Field(min_length=1, max_length=100, description="What the key is for.")
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    expires_in_days: float | None = Field(
        90, gt=0, le=3650, description="Days until it expires; null: never."
    )


class KeyPublic(BaseModel):
    id: uuid.UUID
    prefix: str
    user_id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class CallerPublic(BaseModel):
    user: str
    is_admin: bool
    scopes: list[Scope]
    groups: list[MemberPublic]
