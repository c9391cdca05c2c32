"""Alert lifecycle: the audit trail of every alert transition, acknowledgement comments, shelving, and the
severity an escalation raises an alert to.

- `alert_history`: one row per transition (opened, acknowledged, resolved, shelved, unshelved, escalated,
  severity_raised) with its actor (a user id, or `system`), time, comment and kind-specific details. Existing
  alerts get the entries their columns already tell (opened, acknowledged, resolved).
- `alerts.acknowledge_comment`, `alerts.shelved_until` (µs; reminders and escalation wait until then).
- `notification_policies.escalation_severity`: the severity an escalated alert is raised to (NULL: unchanged).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_SERIAL = sa.Integer().with_variant(sa.BigInteger, "postgresql")


def upgrade() -> None:
    op.create_table(
        "alert_history",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("alert_id", sa.String(36), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(36), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("comment", sa.String(1000), nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
    )
    op.create_index("ix_alert_history_alert_id_id", "alert_history", ["alert_id", "id"])
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("acknowledge_comment", sa.String(1000), nullable=True))
        batch.add_column(sa.Column("shelved_until", sa.BigInteger, nullable=True))
    with op.batch_alter_table("notification_policies") as batch:
        batch.add_column(sa.Column("escalation_severity", sa.String(16), nullable=True))
    # What the alerts' own columns already tell, in the order it happened.
    op.execute(
        "INSERT INTO alert_history (tenant_id, alert_id, kind, actor, at) "
        "SELECT tenant_id, id, 'opened', 'system', created_at FROM alerts ORDER BY created_at, id"
    )
    op.execute(
        "INSERT INTO alert_history (tenant_id, alert_id, kind, actor, at) "
        "SELECT tenant_id, id, 'acknowledged', acknowledged_by, acknowledged_at FROM alerts "
        "WHERE acknowledged_at IS NOT NULL AND acknowledged_by IS NOT NULL ORDER BY acknowledged_at, id"
    )
    op.execute(
        "INSERT INTO alert_history (tenant_id, alert_id, kind, actor, at) "
        "SELECT tenant_id, id, 'resolved', COALESCE(resolved_by, 'system'), resolved_at FROM alerts "
        "WHERE resolved_at IS NOT NULL ORDER BY resolved_at, id"
    )


def downgrade() -> None:
    with op.batch_alter_table("notification_policies") as batch:
        batch.drop_column("escalation_severity")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("shelved_until")
        batch.drop_column("acknowledge_comment")
    op.drop_index("ix_alert_history_alert_id_id", "alert_history")
    op.drop_table("alert_history")
