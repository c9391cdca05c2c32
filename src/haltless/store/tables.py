"""SQLAlchemy Core tables. Migrations in `store/migrations` must match this module."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
    true,
)

metadata = MetaData()

# All times are integer microseconds since the Unix epoch (UTC): exact, sortable, portable between
# SQLite and PostgreSQL, and cheap to bucket with integer arithmetic.

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Raised with every change of the tenant's rules: shared mode reloads the rules only when it moved.
    Column("rules_revision", BigInteger, nullable=False, server_default="0"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
    # Unique within the tenant only: a tenant's admin learns nothing about other tenants' users (migration 0005).
    # Login looks the email up across tenants, hence its own index.
    Column("email", String(320), nullable=False, index=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Set while the user is disabled: no login, no refresh, no access token accepted.
    Column("disabled_at", BigInteger, nullable=True),
    # Access tokens carry the generation they were issued under; raising it refuses every older one (a role
    # change, a new password, "sign out everywhere").
    Column("token_generation", Integer, nullable=False, server_default="0"),
    UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("jti", String(36), primary_key=True),
    Column("family_id", String(36), nullable=False, index=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # When the session (the family) ends whatever its refreshes: login time + HALTLESS_SESSION_MAX_AGE.
    Column("session_expires_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

machines = Table(
    "machines",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("location", String(200), nullable=True),
    Column("tags", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    # Set by a user; while true the status is `maintenance` and alerts are suppressed.
    Column("maintenance", Boolean, nullable=False, server_default=false()),
    Column("last_seen_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # The maintenance window that put the machine into maintenance; NULL when a user did (migration 0010).
    Column("maintenance_window_id", String(36), nullable=True),
    # Two machines of one name made `haltless watch --machine NAME` pick one at random (migration 0006).
    UniqueConstraint("tenant_id", "name", name="uq_machines_tenant_name"),
)

readings = Table(
    "readings",
    metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("tenant_id", String(36), nullable=False),
    Column("machine_id", String(36), ForeignKey("machines.id", ondelete="CASCADE"), nullable=False),
    Column("metric_name", String(64), nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", String(32), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("reading_id", String(128), nullable=True),
    # Time-range queries are always per machine and metric.
    Index("ix_readings_machine_metric_ts", "machine_id", "metric_name", "ts"),
    # Retention deletes the oldest readings of every machine at once.
    Index("ix_readings_ts", "ts"),
    # PostgreSQL only (SQLite has no BRIN, and a second B-tree on ts would only slow inserts there):
    # a tiny block-range index for wide time-range scans; see migration 0004.
    Index("ix_readings_ts_brin", "ts", postgresql_using="brin").ddl_if(dialect="postgresql"),
    # Idempotency: a reading id is unique per machine (NULLs never collide); two machines (or agents) may
    # number their readings alike (migration 0006).
    UniqueConstraint("machine_id", "reading_id", name="uq_readings_machine_reading_id"),
)

# The unit of each (machine, metric): the first unit a reading states; readings in another unit are refused.
metric_units = Table(
    "metric_units",
    metadata,
    Column("machine_id", String(36), ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True),
    Column("metric_name", String(64), primary_key=True),
    Column("unit", String(32), nullable=False),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("metric_name", String(64), nullable=False),
    # NULL: the rule applies to every machine of the tenant.
    Column("machine_id", String(36), ForeignKey("machines.id", ondelete="CASCADE"), nullable=True),
    Column("condition", String(8), nullable=False),  # `no_data` since migration 0010
    Column("threshold", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("for_seconds", Float, nullable=False),
    Column("hysteresis", Float, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("message", String(500), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # Predictive rules (migration 0008): threshold, anomaly or forecast, and the parameters of the last two.
    Column("kind", String(16), nullable=False, server_default="threshold"),
    Column("sensitivity", String(8), nullable=True),
    Column("horizon_seconds", Float, nullable=True),
    Column("window_readings", Integer, nullable=True),
    # Flap detection (migration 0010): more than `flap_threshold` alerts within `flap_window_seconds` → flapping.
    Column("flap_threshold", Integer, nullable=True),
    Column("flap_window_seconds", Float, nullable=False, server_default="600"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("rule_id", String(36), ForeignKey("alert_rules.id", ondelete="SET NULL"), nullable=True),
    Column("machine_id", String(36), ForeignKey("machines.id", ondelete="CASCADE"), nullable=False),
    Column("metric_name", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("message", String(500), nullable=False),
    Column("metric_value", Float, nullable=False),
    Column("threshold_value", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("acknowledged_at", BigInteger, nullable=True),
    Column("acknowledged_by", String(36), nullable=True),
    Column("resolved_at", BigInteger, nullable=True),
    Column("resolved_by", String(36), nullable=True),
    Column("resolution", String(32), nullable=True),
    # Forecast alerts: when the trend is predicted to cross the threshold (migration 0008).
    Column("predicted_crossing_at", BigInteger, nullable=True),
    # The acknowledging user's comment, and until when reminders and escalation wait (µs) (migration 0009).
    Column("acknowledge_comment", String(1000), nullable=True),
    Column("shelved_until", BigInteger, nullable=True),
    # The alert opened while its rule was flapping (migration 0010; core/flapping.py).
    Column("flapping", Boolean, nullable=False, server_default=false()),
    Index("ix_alerts_tenant_created", "tenant_id", "created_at"),
    Index("ix_alerts_rule_machine_state", "rule_id", "machine_id", "state"),
)

# The rule engine's memory per (rule, machine): survives restarts so a pending `for_seconds`
# breach is neither forgotten nor restarted, and an open alert is never opened twice.
# The audit trail of every alert transition (migration 0009; docs/alerts.md#history), oldest first by id.
# `actor`: a user id, or "system". `details`: kind-specific (resolution, severity from/to, shelved until...).
alert_history = Table(
    "alert_history",
    metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("alert_id", String(36), ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("actor", String(36), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("comment", String(1000), nullable=True),
    Column("details", JSON, nullable=True),
    Index("ix_alert_history_alert_id_id", "alert_id", "id"),
)

rule_states = Table(
    "rule_states",
    metadata,
    Column("rule_id", String(36), ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True),
    Column("machine_id", String(36), ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True),
    Column("breach_since", BigInteger, nullable=True),
    Column("last_ts", BigInteger, nullable=False),
    # False after a user resolved an alert while the breach went on: the value must clear first.
    Column("armed", Boolean, nullable=False, server_default=true()),
    # Flap detection (migration 0010, core/flapping.py): recent alert openings (µs), whether the open alert is
    # flapping, and since when the value has stayed clear; `no_data` rules: when the newest reading arrived.
    Column("flap_fires", JSON, nullable=True),
    Column("flapping", Boolean, nullable=False, server_default=false()),
    Column("calm_since", BigInteger, nullable=True),
    Column("seen_at", BigInteger, nullable=True),
)

# ---- notifications (migration 0007; docs/notifications.md) ----

# Where notifications go. `config` is shown to admins; `secrets` (webhook signing secret, SMTP password) never is.
notification_channels = Table(
    "notification_channels",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("type", String(16), nullable=False),
    Column("config", JSON, nullable=False),
    Column("secrets", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

notification_policies = Table(
    "notification_policies",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("matchers", JSON, nullable=False),
    Column("channel_ids", JSON, nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("group_by", String(16), nullable=False),
    Column("group_wait", Float, nullable=False),
    Column("group_interval", Float, nullable=False),
    Column("position", Integer, nullable=False),
    Column("repeat_interval", Float, nullable=True),
    Column("escalate_after", Float, nullable=True),
    Column("escalation_channel_ids", JSON, nullable=False),
    # The severity an escalated alert is raised to; NULL: unchanged (migration 0009).
    Column("escalation_severity", String(16), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at", BigInteger, nullable=False),
    Column("ends_at", BigInteger, nullable=False),
    Column("comment", String(500), nullable=False),
    Column("created_by", String(36), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# The outbox: one row per alert change, written in the transaction of the change. `state`: new (not yet
# routed), routed (waiting in groups or sent), silenced, unrouted (no policy took it).
notification_events = Table(
    "notification_events",
    metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("alert_id", String(36), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("alert", JSON, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("silence_id", String(36), nullable=True),
    Index("ix_notification_events_state_id", "state", "id"),
)

# Changes waiting in a policy's group for the group to be sent (group_wait, group_interval).
notification_waiting = Table(
    "notification_waiting",
    metadata,
    Column("event_id", BigInteger, ForeignKey("notification_events.id", ondelete="CASCADE"), primary_key=True),
    Column("policy_id", String(36), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("group_key", String(120), nullable=False),
    Column("at", BigInteger, nullable=False),
)

# When each group was last sent (group_interval counts from there).
notification_groups = Table(
    "notification_groups",
    metadata,
    Column("policy_id", String(36), primary_key=True),
    Column("group_key", String(120), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("last_sent_at", BigInteger, nullable=False),
)

# Firing alerts a policy follows up (repeat_interval, escalation) until they are resolved or acknowledged.
notification_tracks = Table(
    "notification_tracks",
    metadata,
    Column("policy_id", String(36), primary_key=True),
    Column("alert_id", String(36), primary_key=True),
    Column("tenant_id", String(36), nullable=False),
    Column("alert", JSON, nullable=False),
    Column("firing_at", BigInteger, nullable=False),
    Column("last_sent_at", BigInteger, nullable=True),
    Column("escalated", Boolean, nullable=False),
    Index("ix_notification_tracks_alert_id", "alert_id"),
)

# One message to one channel, delivered at least once. `state`: pending, delivered, failed.
notifications = Table(
    "notifications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", String(36), ForeignKey("notification_channels.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("alerts", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    # A process that claimed the row for a try; others leave it alone until then (PostgreSQL, several processes).
    Column("claimed_until", BigInteger, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Index("ix_notifications_state_next", "state", "next_attempt_at"),
    Index("ix_notifications_tenant_created", "tenant_id", "created_at"),
)

# Recurring maintenance windows (migration 0010; core/maintenance_windows.py): per machine or per tag.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("machine_id", String(36), ForeignKey("machines.id", ondelete="CASCADE"), nullable=True),
    Column("tag", String(64), nullable=True),
    Column("frequency", String(8), nullable=False),
    Column("days", JSON, nullable=False),
    Column("start_time", String(5), nullable=False),
    Column("duration_seconds", Float, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("comment", String(500), nullable=False),
    Column("created_by", String(36), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
