"""Request dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.storage import ObjectStore
from theodolite_registry.publishing import Publisher
from theodolite_registry.settings import RegistrySettings
from theodolite_registry.state import RegistryState


def get_state(request: Request) -> RegistryState:
    state: RegistryState = request.app.state.core
    return state


StateDep = Annotated[RegistryState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


def get_settings(state: StateDep) -> RegistrySettings:
    return state.settings


def get_publisher(state: StateDep) -> Publisher:
    return state.publisher


def get_store(state: StateDep) -> ObjectStore:
    return state.store


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[RegistrySettings, Depends(get_settings)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
