"""Request dependencies as ``Annotated`` aliases (``SessionDep`` is every service's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from theodolite.storage import ObjectStore
from theodolite.web.deps import SessionDep as SessionDep  # routes import it from here
from theodolite_registry.publishing import Publisher
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


SettingsDep = Annotated[RegistrySettings, Depends(get_settings)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
