"""job dependencies: a job may wait for others to succeed (statuses waiting and skipped)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 16:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_dependencies",
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("depends_on_id", sa.Uuid(), sa.ForeignKey("jobs.id"), primary_key=True),
    )
    op.create_index(
        op.f("ix_job_dependencies_depends_on_id"),
        "job_dependencies",
        ["depends_on_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_job_dependencies_depends_on_id"), table_name="job_dependencies")
    op.drop_table("job_dependencies")
