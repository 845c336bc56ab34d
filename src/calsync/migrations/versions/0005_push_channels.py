"""push channels

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "push_channels",
        sa.Column("channel_id", sa.String(length=200), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("calendar_id", sa.String(length=512), nullable=False),
        sa.Column("resource_id", sa.String(length=300), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_push_channels_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_push_channels")),
    )
    with op.batch_alter_table("push_channels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_push_channels_connection_id"), ["connection_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("push_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_channels_connection_id"))

    op.drop_table("push_channels")
