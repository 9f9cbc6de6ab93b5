"""Table models of identity (owned by the api): users, groups, who is in which group with which
role, and API keys. Every experiment, entry point, job and sweep names the group that owns it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from theodolite.db.tables import timestamp_field

# Fixed ids, so migrations can refer to them: the system group owns the built-in plugins; rows
# that existed before groups did were given to the default group.
SYSTEM_GROUP_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")
DEFAULT_GROUP_ID = uuid.UUID("00000000-0000-0000-0000-000000000002")
SYSTEM_GROUP = "system"
DEFAULT_GROUP = "default"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(unique=True, index=True)
    is_admin: bool = False  # may do anything, in every group
    disabled: bool = False
    # "<issuer> <sub>" for users who sign in through OIDC; None for key-only users.
    oidc_subject: str | None = Field(default=None, unique=True)
    created_at: datetime = timestamp_field()


class Group(SQLModel, table=True):
    __tablename__ = "groups"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(unique=True, index=True)
    description: str | None = None
    created_at: datetime = timestamp_field()


class Membership(SQLModel, table=True):
    __tablename__ = "memberships"

    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    group_id: uuid.UUID = Field(
        foreign_key="groups.id", primary_key=True, index=True, ondelete="CASCADE"
    )
    role: str  # admin | member | viewer (theodolite_api.auth.callers.Role)


class ApiKey(SQLModel, table=True):
    """A key is ``thd_<prefix>_<secret>``: the prefix finds the row, the secret's SHA-256 is
    compared (the secret is 256 random bits, so a fast hash is enough). The key itself is shown
    once, at creation."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    prefix: str = Field(unique=True, index=True)
    secret_sha256: str
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str
    scopes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = timestamp_field()
    expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
