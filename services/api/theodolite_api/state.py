"""What the lifespan builds and the routes use."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.archives import ArchiveLimits
from theodolite.broker import Broker
from theodolite.storage import ObjectStore
from theodolite_api.auth.oidc import OidcVerifier
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.clients.registry import RegistryClient
from theodolite_api.loops.outbox_relay import OutboxRelay
from theodolite_api.settings import ApiSettings


@dataclass
class AppState:
    settings: ApiSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    broker: Broker
    store: ObjectStore
    mlflow: MlflowReader
    registry: RegistryClient
    relay: OutboxRelay
    archive_limits: ArchiveLimits
    oidc: OidcVerifier | None = None  # None: API keys only
