"""worker isolation: what each worker's sandboxes enforce, from its heartbeat

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 16:35:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workers", sa.Column("isolation", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("workers", "isolation")
