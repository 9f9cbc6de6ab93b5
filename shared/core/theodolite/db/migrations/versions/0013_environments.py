"""environments: what each worker can build, each entry point's declared environment and each
job's env manager

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 19:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workers", sa.Column("environments", sa.JSON(), nullable=True))
    op.add_column("entrypoints", sa.Column("environment", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("env_manager", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "env_manager")
    op.drop_column("entrypoints", "environment")
    op.drop_column("workers", "environments")
