"""Database layer: table models, async engine and Alembic migrations.

Importing any table module registers them all: their foreign keys cross modules (every owned row
names a group), and SQLAlchemy resolves a key only when the table it names is registered."""

from theodolite.db import identity_tables, registry_tables, status_tables, tables

__all__ = ["identity_tables", "registry_tables", "status_tables", "tables"]
