"""Notifications: channels, policies, silences, the outbox of alert changes, groups and deliveries.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SERIAL = sa.Integer().with_variant(sa.BigInteger, "postgresql")


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("secrets", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_notification_channels_tenant_id", "notification_channels", ["tenant_id"])
    op.create_table(
        "notification_policies",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("channel_ids", sa.JSON, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("group_by", sa.String(16), nullable=False),
        sa.Column("group_wait", sa.Float, nullable=False),
        sa.Column("group_interval", sa.Float, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("repeat_interval", sa.Float, nullable=True),
        sa.Column("escalate_after", sa.Float, nullable=True),
        sa.Column("escalation_channel_ids", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_notification_policies_tenant_id", "notification_policies", ["tenant_id"])
    op.create_table(
        "silences",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant(),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("starts_at", sa.BigInteger, nullable=False),
        sa.Column("ends_at", sa.BigInteger, nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_silences_tenant_id", "silences", ["tenant_id"])
    op.create_table(
        "notification_events",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        _tenant(),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("alert", sa.JSON, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("silence_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_notification_events_alert_id", "notification_events", ["alert_id"])
    op.create_index("ix_notification_events_state_id", "notification_events", ["state", "id"])
    op.create_table(
        "notification_waiting",
        sa.Column(
            "event_id",
            sa.BigInteger,
            sa.ForeignKey("notification_events.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("policy_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("group_key", sa.String(120), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "notification_groups",
        sa.Column("policy_id", sa.String(36), primary_key=True),
        sa.Column("group_key", sa.String(120), primary_key=True),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("last_sent_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "notification_tracks",
        sa.Column("policy_id", sa.String(36), primary_key=True),
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("alert", sa.JSON, nullable=False),
        sa.Column("firing_at", sa.BigInteger, nullable=False),
        sa.Column("last_sent_at", sa.BigInteger, nullable=True),
        sa.Column("escalated", sa.Boolean, nullable=False),
    )
    op.create_index("ix_notification_tracks_alert_id", "notification_tracks", ["alert_id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant(),
        sa.Column(
            "channel_id",
            sa.String(36),
            sa.ForeignKey("notification_channels.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("alerts", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("claimed_until", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("delivered_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_notifications_state_next", "notifications", ["state", "next_attempt_at"])
    op.create_index("ix_notifications_tenant_created", "notifications", ["tenant_id", "created_at"])


def downgrade() -> None:
    for table in (
        "notifications",
        "notification_tracks",
        "notification_groups",
        "notification_waiting",
        "notification_events",
        "silences",
        "notification_policies",
        "notification_channels",
    ):
        op.drop_table(table)
