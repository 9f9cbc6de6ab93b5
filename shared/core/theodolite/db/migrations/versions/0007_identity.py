"""identity: users, groups, memberships, API keys; every experiment, entry point, job and sweep
owned by a group (rows from before go to the default group); queues limited to groups

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:47:55.608687
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# theodolite.db.identity_tables' fixed ids, written out: a migration does not change with code.
SYSTEM_GROUP_ID = "00000000-0000-0000-0000-000000000001"
DEFAULT_GROUP_ID = "00000000-0000-0000-0000-000000000002"
OWNED_TABLES = ("experiments", "entrypoints", "jobs", "sweeps")
TEXT = sqlmodel.sql.sqltypes.AutoString()


def _timestamp(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, nullable: bool = False, unique: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, TEXT, nullable=nullable, unique=unique)


def _reference(name: str, target: str, primary_key: bool = False) -> sa.Column:  # type: ignore[type-arg]
    """A uuid column naming a row of ``target``, gone with it."""
    key = sa.ForeignKey(f"{target}.id", ondelete="CASCADE")
    return sa.Column(name, sa.Uuid(), key, nullable=False, primary_key=primary_key)


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _text("name"),
        _text("description", nullable=True),
        _timestamp("created_at", nullable=False),
    )
    op.create_index(op.f("ix_groups_name"), "groups", ["name"], unique=True)
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _text("name"),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _text("oidc_subject", nullable=True, unique=True),
        _timestamp("created_at", nullable=False),
    )
    op.create_index(op.f("ix_users_name"), "users", ["name"], unique=True)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _text("prefix"),
        _text("secret_sha256"),
        _reference("user_id", "users"),
        _text("name"),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("expires_at"),
        _timestamp("revoked_at"),
        _timestamp("last_used_at"),
    )
    op.create_index(op.f("ix_api_keys_prefix"), "api_keys", ["prefix"], unique=True)
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"], unique=False)
    op.create_table(
        "memberships",
        _reference("user_id", "users", primary_key=True),
        _reference("group_id", "groups", primary_key=True),
        _text("role"),
    )
    op.create_index(op.f("ix_memberships_group_id"), "memberships", ["group_id"], unique=False)
    op.execute(
        "INSERT INTO groups (id, name, description, created_at) VALUES"
        f" ('{SYSTEM_GROUP_ID}', 'system', 'owns the built-in plugins', now()),"
        f" ('{DEFAULT_GROUP_ID}', 'default', 'owns what existed before groups', now())"
    )
    for table in OWNED_TABLES:
        op.add_column(table, sa.Column("group_id", sa.Uuid(), nullable=True))
        op.execute(f"UPDATE {table} SET group_id = '{DEFAULT_GROUP_ID}'")
        op.alter_column(table, "group_id", nullable=False)
        op.create_index(op.f(f"ix_{table}_group_id"), table, ["group_id"], unique=False)
        op.create_foreign_key(f"{table}_group_id_fkey", table, "groups", ["group_id"], ["id"])
    # An entry point is unique per group now, not across the testbed.
    op.drop_index(op.f("ix_entrypoints_sha256"), table_name="entrypoints")
    op.create_index(op.f("ix_entrypoints_sha256"), "entrypoints", ["sha256"], unique=False)
    op.create_unique_constraint(
        "entrypoints_group_id_sha256_key", "entrypoints", ["group_id", "sha256"]
    )
    op.add_column("queues", sa.Column("allowed_group_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("queues", "allowed_group_ids")
    op.drop_constraint("entrypoints_group_id_sha256_key", "entrypoints", type_="unique")
    op.drop_index(op.f("ix_entrypoints_sha256"), table_name="entrypoints")
    op.create_index(op.f("ix_entrypoints_sha256"), "entrypoints", ["sha256"], unique=True)
    for table in OWNED_TABLES:
        op.drop_constraint(f"{table}_group_id_fkey", table, type_="foreignkey")
        op.drop_index(op.f(f"ix_{table}_group_id"), table_name=table)
        op.drop_column(table, "group_id")
    op.drop_table("memberships")
    op.drop_table("api_keys")
    op.drop_table("users")
    op.drop_table("groups")
