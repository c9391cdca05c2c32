"""BRIN index on readings.ts, PostgreSQL only.

Readings arrive roughly in measurement order, so `ts` follows the physical row order and a BRIN index
(a min/max per block range, a few pages for millions of rows) prunes wide time-range scans for almost
no space or insert cost. SQLite has no BRIN; it keeps the B-tree `ix_readings_ts` from 0003, which
PostgreSQL keeps too because retention walks the oldest readings in `ts` order with a LIMIT.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_readings_ts_brin", "readings", ["ts"], postgresql_using="brin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_readings_ts_brin", table_name="readings")
