"""Request dependencies as ``Annotated`` aliases (``SessionDep`` is every service's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from theodolite.web.deps import SessionDep as SessionDep  # routes import it from here
from theodolite_api.notifications import Notifications
from theodolite_api.settings import ApiSettings
from theodolite_api.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.core
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> ApiSettings:
    return state.settings


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


def get_notifications(request: Request) -> Notifications:
    found: Notifications = request.app.state.notifications
    return found


NotificationsDep = Annotated[Notifications, Depends(get_notifications)]
