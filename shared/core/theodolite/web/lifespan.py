"""What every service's lifespan opens first: the database (migrated when asked) and the broker."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.broker import Broker
from theodolite.db.engine import create_engine, create_session_factory
from theodolite.db.migrate import upgrade
from theodolite.settings import BrokerSettings, DatabaseSettings
from theodolite.signing import SigningKey


async def open_database(
    stack: AsyncExitStack, db: DatabaseSettings, *, migrate: bool
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """Migrate if ``migrate``, then an engine disposed when ``stack`` closes, and its sessions."""
    if migrate:
        # Alembic blocks (a synchronous engine of its own): off the event loop.
        await asyncio.to_thread(upgrade, db.url)
    engine = create_engine(db)
    stack.push_async_callback(engine.dispose)
    return engine, create_session_factory(engine)


async def open_broker(
    stack: AsyncExitStack,
    broker: BrokerSettings,
    *,
    client_name: str,
    signing_key: SigningKey | None = None,
) -> Broker:
    """A connected broker, closed when ``stack`` closes; it signs what it publishes with
    ``signing_key`` (``theodolite.signing``)."""
    return await stack.enter_async_context(
        Broker(
            broker.url,
            client_name=client_name,
            job_delivery_limit=broker.job_delivery_limit,
            signing_key=signing_key,
        )
    )
