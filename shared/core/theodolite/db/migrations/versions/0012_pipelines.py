"""pipelines: named DAGs of stages, their jobs, the stages' run tags and pipeline webhooks

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 19:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("experiment_id", sa.Uuid(), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("group_id", sa.Uuid(), sa.ForeignKey("groups.id"), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("depends_on", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("mlflow_run_id", sa.String(), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    for column in ("experiment_id", "group_id", "created_at"):
        op.create_index(op.f(f"ix_pipelines_{column}"), "pipelines", [column], unique=False)
    op.create_table(
        "pipeline_jobs",
        sa.Column("pipeline_id", sa.Uuid(), sa.ForeignKey("pipelines.id"), primary_key=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id"), primary_key=True, unique=True),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("point_index", sa.Integer(), nullable=True),
        sa.Column("point", sa.JSON(), nullable=False),
        sa.Column("templates", sa.JSON(), nullable=False),
    )
    op.add_column("jobs", sa.Column("run_tags", sa.JSON(), nullable=True))
    op.alter_column("webhook_deliveries", "job_id", existing_type=sa.Uuid(), nullable=True)
    op.add_column(
        "webhook_deliveries",
        sa.Column("pipeline_id", sa.Uuid(), sa.ForeignKey("pipelines.id"), nullable=True),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_pipeline_id"),
        "webhook_deliveries",
        ["pipeline_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_deliveries_pipeline_id"), table_name="webhook_deliveries")
    op.drop_column("webhook_deliveries", "pipeline_id")
    op.execute("DELETE FROM webhook_deliveries WHERE job_id IS NULL")
    op.alter_column("webhook_deliveries", "job_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_column("jobs", "run_tags")
    op.drop_table("pipeline_jobs")
    for column in ("created_at", "group_id", "experiment_id"):
        op.drop_index(op.f(f"ix_pipelines_{column}"), table_name="pipelines")
    op.drop_table("pipelines")
