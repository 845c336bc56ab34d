"""export: sessions, export targets, exported events

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("schedule_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("start_date", sa.String(length=10), nullable=True),
        sa.Column("end_date", sa.String(length=10), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "schedule_id", "session_id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sessions_schedule_start", ["tenant_id", "schedule_id", "start_ms"], unique=False
        )
    op.create_table(
        "export_targets",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=True),
        sa.Column("calendar_id", sa.String(length=512), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("dedicated_calendar_id", sa.String(length=512), nullable=True),
        sa.Column("dedicated_created", sa.Boolean(), nullable=False),
        sa.Column("dedicated_key", sa.String(length=32), nullable=True),
        sa.Column("external_edits", sa.Integer(), nullable=False),
        sa.Column("last_external_edit_at", sa.DateTime(), nullable=True),
        sa.Column("exported_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_export_targets_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_export_targets")),
    )
    op.create_table(
        "exported_events",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("calendar_id", sa.String(length=512), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=1024), nullable=True),
        sa.Column("etag", sa.String(length=300), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_exported_events_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "session_id", name=op.f("pk_exported_events")),
    )
    op.create_table(
        "dashboard_signin_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_dashboard_signin_links")),
    )
    with op.batch_alter_table("dashboard_signin_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dashboard_signin_links_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "dashboard_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("identity_type", sa.String(length=8), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("app_id", sa.String(length=36), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_dashboard_sessions")),
    )
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dashboard_sessions_expires_at"), ["expires_at"], unique=False
        )
    # List Events' lower bound on start_ms: the longest instance each connection stores.
    op.add_column("connections", sa.Column("max_instance_ms", sa.BigInteger(), nullable=True))
    op.add_column("connections", sa.Column("export_requested_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE connections SET max_instance_ms = (SELECT max(e.end_ms - e.start_ms) "
        "FROM event_instances e WHERE e.connection_id = connections.id)"
    )
    op.create_table(
        "retirements",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=True),
        sa.Column("account_state", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_retirements_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_retirements")),
    )
    with op.batch_alter_table("retirements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retirements_next_attempt_at"), ["next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("retirements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retirements_next_attempt_at"))
    op.drop_table("retirements")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("export_requested_at")
        batch_op.drop_column("max_instance_ms")
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_sessions_expires_at"))
    op.drop_table("dashboard_sessions")
    with op.batch_alter_table("dashboard_signin_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_signin_links_expires_at"))
    op.drop_table("dashboard_signin_links")
    op.drop_table("exported_events")
    op.drop_table("export_targets")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_schedule_start")
    op.drop_table("sessions")
