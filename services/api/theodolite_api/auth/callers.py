"""A caller: a user with roles in groups, holding a key of some scopes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from theodolite.web.errors import DomainError, NotFound


class Role(StrEnum):
    """A user's role in a group."""

    ADMIN = "admin"  # manages the group's members
    MEMBER = "member"  # submits
    VIEWER = "viewer"  # reads


class Scope(StrEnum):
    """What a key may be used for (on top of the user's roles)."""

    READ = "read"
    SUBMIT = "submit"
    PUBLISH_PLUGINS = "publish-plugins"
    ADMIN = "admin"


# A scope includes those it names: a key that may submit may also read what it submitted.
IMPLIED: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.SUBMIT: frozenset({Scope.SUBMIT, Scope.READ}),
    Scope.PUBLISH_PLUGINS: frozenset({Scope.PUBLISH_PLUGINS, Scope.READ}),
    Scope.ADMIN: frozenset(Scope),
}
WRITING_ROLES = frozenset({Role.ADMIN, Role.MEMBER})


class Unauthorized(DomainError, status_code=401, title="Unauthorized"):
    """No credentials, or none that hold."""


class Forbidden(DomainError, status_code=403, title="Forbidden"):
    """Known caller, but not allowed to do this."""


def expand(scopes: list[str] | frozenset[Scope]) -> frozenset[Scope]:
    return frozenset().union(*(IMPLIED[Scope(s)] for s in scopes))


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID
    name: str
    is_admin: bool
    roles: Mapping[uuid.UUID, Role]
    scopes: frozenset[Scope]  # expanded
    group_names: Mapping[uuid.UUID, str] = field(default_factory=dict)
    key_id: uuid.UUID | None = None  # None: an OIDC token

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this key lacks the {scope.value!r} scope")
        if scope is Scope.ADMIN and not self.is_admin:
            raise Forbidden("only an administrator may do this")

    def sees(self, group_id: uuid.UUID) -> bool:
        return self.is_admin or group_id in self.roles

    def visible_groups(self) -> list[uuid.UUID] | None:
        """The groups whose resources lists show; None: all of them (an administrator)."""
        return None if self.is_admin else list(self.roles)

    def check_sees(self, group_id: uuid.UUID, what: str) -> None:
        """404, not 403, for another group's resource: its id says nothing."""
        if not self.sees(group_id):
            raise NotFound(f"no {what}")

    def check_writes(self, group_id: uuid.UUID, what: str) -> None:
        self.check_sees(group_id, what)
        self.require(Scope.SUBMIT)
        if not self.is_admin and self.roles.get(group_id) not in WRITING_ROLES:
            group = self.group_names.get(group_id, str(group_id))
            raise Forbidden(f"your role in group {group!r} is viewer: it may not change {what}")

    def writable_groups(self) -> list[uuid.UUID]:
        return [g for g, role in self.roles.items() if role in WRITING_ROLES]
