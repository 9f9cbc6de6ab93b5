"""Request dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite_api.notifications import Notifications
from theodolite_api.settings import ApiSettings
from theodolite_api.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.core
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


def get_settings(state: StateDep) -> ApiSettings:
    return state.settings


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


def get_notifications(request: Request) -> Notifications:
    found: Notifications = request.app.state.notifications
    return found


NotificationsDep = Annotated[Notifications, Depends(get_notifications)]
