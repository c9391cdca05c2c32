"""Index on readings.ts for retention pruning.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_readings_ts", "readings", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_readings_ts", table_name="readings")
