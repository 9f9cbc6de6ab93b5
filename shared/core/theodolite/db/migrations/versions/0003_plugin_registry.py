"""plugin registry: published versions and bucket drops; plugin versions pinned on jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

AutoString = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "plugin_versions",
        sa.Column("name", AutoString(), nullable=False),
        sa.Column("version", AutoString(), nullable=False),
        sa.Column("sha256", AutoString(), nullable=False),
        sa.Column("archive_key", AutoString(), nullable=False),
        sa.Column("wheel_key", AutoString(), nullable=False),
        sa.Column("wheel_sha256", AutoString(), nullable=False),
        sa.Column("module", AutoString(), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("status", AutoString(), nullable=False),
        sa.Column("source", AutoString(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("yanked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    op.create_index(op.f("ix_plugin_versions_sha256"), "plugin_versions", ["sha256"])
    op.create_table(
        "plugin_drops",
        sa.Column("key", AutoString(), nullable=False),
        sa.Column("etag", AutoString(), nullable=False),
        sa.Column("status", AutoString(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("name", AutoString(), nullable=True),
        sa.Column("version", AutoString(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.add_column("jobs", sa.Column("plugin_versions", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "plugin_versions")
    op.drop_table("plugin_drops")
    op.drop_index(op.f("ix_plugin_versions_sha256"), table_name="plugin_versions")
    op.drop_table("plugin_versions")
