"""horizon day

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("connection_calendars", schema=None) as batch_op:
        batch_op.add_column(sa.Column("horizon_day", sa.String(length=10), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("connection_calendars", schema=None) as batch_op:
        batch_op.drop_column("horizon_day")
