"""instances by connection and start

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("event_instances", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_instances_connection_start", ["connection_id", "start_ms"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("event_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_event_instances_connection_start")
