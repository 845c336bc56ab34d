"""connections: how fresh the store is, and when its change check is due

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

``fresh_as_of`` is the time up to which the stored busy times are known to match the provider:
the start of the last successful sync, or a later change check (or healthy push channel) that
found nothing new. ``next_check_at`` is when the connection's cheap change check is due (None:
it has none). List Events reads never wait on a provider; these columns say how current the
answer is and drive the background refresh.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("fresh_as_of", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("next_check_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE connections SET fresh_as_of = last_synced_at")
    op.create_index("ix_connections_next_check_at", "connections", ["next_check_at"])


def downgrade() -> None:
    op.drop_index("ix_connections_next_check_at", table_name="connections")
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("next_check_at")
        batch.drop_column("fresh_as_of")
