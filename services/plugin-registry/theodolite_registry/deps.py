"""Request dependencies as ``Annotated`` aliases (``SessionDep`` is every service's)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request

from theodolite.storage import ObjectStore
from theodolite.web.deps import SessionDep as SessionDep  # routes import it from here
from theodolite_registry.publishing import SYSTEM, Principal, Publisher
from theodolite_registry.settings import RegistrySettings
from theodolite_registry.state import RegistryState


def get_state(request: Request) -> RegistryState:
    state: RegistryState = request.app.state.core
    return state


StateDep = Annotated[RegistryState, Depends(get_state)]


def get_settings(state: StateDep) -> RegistrySettings:
    return state.settings


def get_publisher(state: StateDep) -> Publisher:
    return state.publisher


def get_store(state: StateDep) -> ObjectStore:
    return state.store


def get_principal(
    x_theodolite_group: Annotated[
        uuid.UUID | None,
        Header(description="Set by the api: the group a publish or yank is for."),
    ] = None,
    x_theodolite_administrator: Annotated[
        bool,
        Header(description="Set by the api: the caller is an administrator (any plugin name)."),
    ] = False,
) -> Principal:
    """On whose behalf the api calls. The registry's port is internal: only the api reaches it,
    and it sets these headers from the authenticated caller. A call without them (the devstack
    publishing the built-in plugins) is the system group's."""
    if x_theodolite_group is None:
        return SYSTEM
    return Principal(group_id=x_theodolite_group, administrator=x_theodolite_administrator)


SettingsDep = Annotated[RegistrySettings, Depends(get_settings)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
