"""What the lifespan builds and the routes share, kept on ``app.state.core``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.storage import ObjectStore
from theodolite_registry.publishing import Publisher
from theodolite_registry.settings import RegistrySettings


@dataclass
class RegistryState:
    settings: RegistrySettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: ObjectStore
    publisher: Publisher
