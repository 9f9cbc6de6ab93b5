"""sandbox limits: a job's own limits (within its queue's maxima) and each queue's maxima

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 15:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("limits", sa.JSON(), nullable=True))
    op.add_column("queues", sa.Column("max_limits", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("queues", "max_limits")
    op.drop_column("jobs", "limits")
