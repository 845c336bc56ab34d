"""webhooks: subscriptions, the outbox of their deliveries, and what a connection last announced

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

``webhooks`` are a tenant's subscriptions (the signing secret encrypted like every other
secret; during a rotation the previous one too, until ``previous_secret_until``).
``webhook_deliveries`` is the transactional outbox: one row per message per webhook, written in
the transaction of the change that causes it, and the delivery log the API shows.

On ``connections``: ``announced_status`` / ``announced_error_reason`` are what the last
``connection.status_changed`` message said (a sync's passing SYNC_IN_PROGRESS is not
announced); ``changed_from_ms`` / ``changed_to_ms`` span the busy times a sync changed and has
not yet announced in a ``busy_times.changed`` message (kept across a crash).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(500), nullable=False, server_default=""),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret", sa.LargeBinary(), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(), nullable=True),
        sa.Column("failing_since", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
    )
    op.create_index("ix_webhooks_tenant_id", "webhooks", ["tenant_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("webhook_id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("round_start", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name="fk_webhook_deliveries_webhook_id_webhooks",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_id_created_at",
        "webhook_deliveries",
        ["webhook_id", "created_at"],
    )
    op.create_index(
        "ix_webhook_deliveries_next_attempt_at", "webhook_deliveries", ["next_attempt_at"]
    )
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("announced_status", sa.String(20), nullable=True))
        batch.add_column(sa.Column("announced_error_reason", sa.String(40), nullable=True))
        batch.add_column(sa.Column("changed_from_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("changed_to_ms", sa.BigInteger(), nullable=True))
    # What existing connections show now counts as announced: no message for the past.
    op.execute(
        "UPDATE connections SET announced_status = CASE WHEN status = 'SYNC_IN_PROGRESS' "
        "THEN 'SYNCED' ELSE status END, announced_error_reason = error_reason"
    )


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("changed_to_ms")
        batch.drop_column("changed_from_ms")
        batch.drop_column("announced_error_reason")
        batch.drop_column("announced_status")
    op.drop_index("ix_webhook_deliveries_next_attempt_at", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_webhook_id_created_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhooks_tenant_id", table_name="webhooks")
    op.drop_table("webhooks")
