"""List Events page covered by its index on SQLite

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

What 0008 did for PostgreSQL, for SQLite, which has no INCLUDE: the page's other columns
become trailing key columns of the instance index, so a page reads no table rows. Measured with
1,000,000 instances: the page query 0.41 -> 0.26 ms, List Events 1.31 -> 1.20 ms of server CPU
per call over HTTP; the database file grows by about a third (463 -> 635 MB), as the index now
holds each instance's title and key (bench/RESULTS.md, fifth round). PostgreSQL is unchanged.

The old index is dropped and the new one built under the same name (SQLite cannot rename an
index). Python's sqlite3 runs each DDL statement on its own, outside a transaction, so the
migration is written to be run again: a run killed between the two statements leaves no page
index and the version at 0008 (List Events is slower meanwhile, not wrong), and the next run
builds it.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEX = "ix_event_instances_connection_start"
KEY = ["connection_id", "start_ms", "end_ms"]
# As in store.models.PAGE_INCLUDE; a migration keeps its own copy of what it creates.
PAGE = ["schedule_id", "calendar_id", "instance_key", "all_day", "start_date", "end_date", "title"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(KEY + PAGE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(KEY)


def _rebuild(columns: list[str]) -> None:
    op.drop_index(INDEX, table_name="event_instances", if_exists=True)
    op.create_index(INDEX, "event_instances", columns)
