"""oauth attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "oauth_attempts",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("schedule_id", sa.String(length=36), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("redirect_url", sa.Text(), nullable=False),
        sa.Column("caller_user_id", sa.String(length=36), nullable=True),
        sa.Column("caller_app_id", sa.String(length=36), nullable=True),
        sa.Column("code_verifier", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_oauth_attempts")),
    )
    with op.batch_alter_table("oauth_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_attempts_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("oauth_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_attempts_expires_at"))

    op.drop_table("oauth_attempts")
