from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.storage import ObjectStore
from theodolite_registry.publishing import Publisher
from theodolite_registry.settings import RegistrySettings


@dataclass
class RegistryState:
    settings: RegistrySettings
    sessions: async_sessionmaker[AsyncSession]
    store: ObjectStore
    publisher: Publisher
