"""Database layer: table models, async engine and Alembic migrations."""
