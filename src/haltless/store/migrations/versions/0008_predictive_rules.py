"""Predictive rules: the rule kind and its parameters; the predicted crossing time of forecast alerts.

- `alert_rules.kind`: `threshold` (every existing rule), `anomaly` or `forecast`.
- `alert_rules.sensitivity` (anomaly), `horizon_seconds` and `window_readings` (forecast): NULL for other kinds.
- `alerts.predicted_crossing_at`: when a forecast alert's trend is predicted to cross its threshold (µs), kept
  up to date while the alert is open; NULL for other alerts.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_rules") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="threshold"))
        batch.add_column(sa.Column("sensitivity", sa.String(8), nullable=True))
        batch.add_column(sa.Column("horizon_seconds", sa.Float, nullable=True))
        batch.add_column(sa.Column("window_readings", sa.Integer, nullable=True))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("predicted_crossing_at", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("predicted_crossing_at")
    with op.batch_alter_table("alert_rules") as batch:
        batch.drop_column("window_readings")
        batch.drop_column("horizon_seconds")
        batch.drop_column("sensitivity")
        batch.drop_column("kind")
