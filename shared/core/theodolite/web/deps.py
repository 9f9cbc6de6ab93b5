"""Request dependencies every service shares, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession


class HasSessions(Protocol):
    """What a service's lifespan leaves in ``app.state.core``: at least a session factory."""

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...


def app_core(request: Request) -> HasSessions:
    """The service's state (``app.state.core``), as its lifespan built it."""
    core: HasSessions = request.app.state.core
    return core


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, closed after the response."""
    async with app_core(request).sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
