"""job reliability (retries, cancel, heartbeats, idempotency), callbacks; ordered transitions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AutoString = sqlmodel.sql.sqltypes.AutoString
JOB_COLUMNS = (
    ("max_retries", sa.Integer(), False, "0"),
    ("retry_on_failure", sa.Boolean(), False, "false"),
    ("retry_backoff_s", sa.Float(), False, "2.0"),
    ("next_attempt_at", sa.DateTime(timezone=True), True, None),
    ("cancel_requested_at", sa.DateTime(timezone=True), True, None),
    ("last_heartbeat_at", sa.DateTime(timezone=True), True, None),
    ("idempotency_key", AutoString(), True, None),
    ("request_sha256", AutoString(), True, None),
    ("callback_url", sa.Text(), True, None),
    ("webhook_secret", AutoString(), True, None),
)


def upgrade() -> None:
    for name, type_, nullable, default in JOB_COLUMNS:
        op.add_column("jobs", sa.Column(name, type_, nullable=nullable, server_default=default))
        if default is not None:
            op.alter_column("jobs", name, server_default=None)
    op.create_unique_constraint("jobs_idempotency_key_key", "jobs", ["idempotency_key"])
    for name in ("attempt", "seq"):
        op.add_column(
            "job_transitions", sa.Column(name, sa.Integer(), nullable=False, server_default="0")
        )
        op.alter_column("job_transitions", name, server_default=None)


def downgrade() -> None:
    for name in ("seq", "attempt"):
        op.drop_column("job_transitions", name)
    op.drop_constraint("jobs_idempotency_key_key", "jobs")
    for name, *_ in reversed(JOB_COLUMNS):
        op.drop_column("jobs", name)
