import asyncio
import secrets

from alembic import command

from theodolite.db.migrate import alembic_config, upgrade
from theodolite.devstack import StackConfig, _drop_database, _ensure_database


def test_migrations_build_exactly_the_table_models() -> None:
    config = StackConfig()
    name = f"theodolite_migrations_{secrets.token_hex(4)}"
    asyncio.run(_ensure_database(config.postgres_url, name))
    try:
        url = config.database_url("asyncpg", name)
        upgrade(url)
        command.check(alembic_config(url))  # raises when models and migrations differ
        upgrade(url)  # applying again changes nothing
    finally:
        asyncio.run(_drop_database(config.postgres_url, name))
