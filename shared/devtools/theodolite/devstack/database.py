"""The stack's databases on the machine's PostgreSQL: created when a server needs one,
dropped with a private stack."""

from __future__ import annotations

import asyncio
from typing import Any

from theodolite.devstack.config import StackConfig


async def _maintenance_connection(postgres_url: str) -> Any:
    # Imported when a database is needed, not whenever the command line loads this package.
    import asyncpg  # untyped: listed under ignore_missing_imports in pyproject.toml

    return await asyncpg.connect(f"{postgres_url}/postgres")


async def _ensure_database(postgres_url: str, name: str) -> None:
    connection = await _maintenance_connection(postgres_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(postgres_url: str, name: str) -> None:
    connection = await _maintenance_connection(postgres_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def ensure_database(config: StackConfig, name: str) -> None:
    """Create database ``name`` unless it exists."""
    asyncio.run(_ensure_database(config.postgres_url, name))


def drop_database(config: StackConfig, name: str) -> None:
    """Drop database ``name``, closing its connections."""
    asyncio.run(_drop_database(config.postgres_url, name))
