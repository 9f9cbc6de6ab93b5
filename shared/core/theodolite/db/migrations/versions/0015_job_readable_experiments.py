"""job readable experiments: the group's other MLflow experiments a job's path values read

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 23:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("readable_experiments", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "readable_experiments")
