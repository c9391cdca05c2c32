"""SQLAlchemy Core tables. Migrations in `store/migrations` must match this module."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
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
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
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
    Column("last_seen_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
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
    # Idempotency: a reading id is unique within its tenant (NULLs never collide).
    UniqueConstraint("tenant_id", "reading_id", name="uq_readings_tenant_reading_id"),
)
