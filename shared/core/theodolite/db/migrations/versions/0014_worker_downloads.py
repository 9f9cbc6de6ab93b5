"""worker downloads: which remote path values each worker downloads for its jobs

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 23:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workers", sa.Column("downloads", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("workers", "downloads")
