"""Flap detection, `no_data` rules and recurring maintenance windows (issue 17).

- `alert_rules.condition` widens to 8 characters (`no_data`); `flap_threshold` and `flap_window_seconds` say when
  a rule's alerts become flapping (NULL threshold: never).
- `rule_states`: the flap detector's memory (`flap_fires`, `flapping`, `calm_since`) and, for `no_data` rules, when
  the newest reading of the metric arrived (`seen_at`).
- `alerts.flapping`: the alert is a flap (it opened after the rule fired and cleared too often).
- `maintenance_windows`: recurring windows per machine or tag; `machines.maintenance_window_id` names the window that
  put a machine into maintenance (NULL: a user did, or it is not in maintenance).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_rules") as batch:
        batch.alter_column("condition", type_=sa.String(8), existing_type=sa.String(2), existing_nullable=False)
        batch.add_column(sa.Column("flap_threshold", sa.Integer, nullable=True))
        batch.add_column(sa.Column("flap_window_seconds", sa.Float, nullable=False, server_default="600"))
    with op.batch_alter_table("rule_states") as batch:
        batch.add_column(sa.Column("flap_fires", sa.JSON, nullable=True))
        batch.add_column(sa.Column("flapping", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("calm_since", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("seen_at", sa.BigInteger, nullable=True))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("flapping", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("machines") as batch:
        batch.add_column(sa.Column("maintenance_window_id", sa.String(36), nullable=True))
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("machine_id", sa.String(36), sa.ForeignKey("machines.id", ondelete="CASCADE"), nullable=True),
        sa.Column("tag", sa.String(64), nullable=True),
        sa.Column("frequency", sa.String(8), nullable=False),
        sa.Column("days", sa.JSON, nullable=False),
        sa.Column("start_time", sa.String(5), nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_maintenance_windows_tenant_id", "maintenance_windows", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_maintenance_windows_tenant_id", table_name="maintenance_windows")
    op.drop_table("maintenance_windows")
    with op.batch_alter_table("machines") as batch:
        batch.drop_column("maintenance_window_id")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("flapping")
    with op.batch_alter_table("rule_states") as batch:
        batch.drop_column("seen_at")
        batch.drop_column("calm_since")
        batch.drop_column("flapping")
        batch.drop_column("flap_fires")
    with op.batch_alter_table("alert_rules") as batch:
        batch.drop_column("flap_window_seconds")
        batch.drop_column("flap_threshold")
        batch.alter_column("condition", type_=sa.String(2), existing_type=sa.String(8), existing_nullable=False)
