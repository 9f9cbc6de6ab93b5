"""plugin owners: each plugin name belongs to the group that first published it; names
published before owners existed go to the system group

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:40:00.000000
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# theodolite.db.identity_tables.SYSTEM_GROUP_ID, written out: a migration does not change with code.
SYSTEM_GROUP_ID = "00000000-0000-0000-0000-000000000001"


def upgrade() -> None:
    op.create_table(
        "plugin_names",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), primary_key=True),
        sa.Column("group_id", sa.Uuid(), sa.ForeignKey("groups.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(op.f("ix_plugin_names_group_id"), "plugin_names", ["group_id"], unique=False)
    op.execute(
        "INSERT INTO plugin_names (name, group_id, created_at)"
        f" SELECT name, '{SYSTEM_GROUP_ID}', min(published_at) FROM plugin_versions GROUP BY name"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_plugin_names_group_id"), table_name="plugin_names")
    op.drop_table("plugin_names")
