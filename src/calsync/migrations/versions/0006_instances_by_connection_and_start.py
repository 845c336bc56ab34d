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
            "ix_event_instances_connection_start",
            ["connection_id", "start_ms", "end_ms"],
            unique=False,
        )
        # No query uses these; on PostgreSQL the planner preferred a costly BitmapAnd with
        # the tenant/start one over the index above.
        batch_op.drop_index("ix_event_instances_tenant_start")
        batch_op.drop_index("ix_event_instances_schedule_start")


def downgrade() -> None:
    with op.batch_alter_table("event_instances", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_instances_schedule_start", ["tenant_id", "schedule_id", "start_ms"]
        )
        batch_op.create_index("ix_event_instances_tenant_start", ["tenant_id", "start_ms"])
        batch_op.drop_index("ix_event_instances_connection_start")
