"""export: a refused event waits before it is written again

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

An event the provider refuses on its own (a 400 for that event, say; not a rate limit, an
outage or refused credentials, which stop the whole run) was written again on every export run.
Now its mapping row counts the refusals and says when to try again and for which revision of
the session: a changed session is tried at once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exported_events") as batch:
        batch.add_column(sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("retry_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("refused_revision", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exported_events") as batch:
        batch.drop_column("refused_revision")
        batch.drop_column("retry_at")
        batch.drop_column("refusals")
