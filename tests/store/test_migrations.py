"""The migrations build exactly the schema of tables.py on each backend, BRIN index included on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.core.rules import RuleState
from haltless.settings import Settings
from haltless.store import database
from haltless.store.alerts import save_rule_states
from haltless.store.tables import metadata
from tests.conftest import query_database

# Indexes that tables.py creates on one dialect only (`ddl_if`), which autogenerate does not know about.
_DIALECT_ONLY_INDEXES = {"ix_readings_ts_brin": "postgresql"}


def _differences(connection: Connection) -> list[Any]:
    dialect = connection.dialect.name

    def include(_obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object) -> bool:
        return not (type_ == "index" and _DIALECT_ONLY_INDEXES.get(name or "", dialect) != dialect)

    opts = {"compare_type": True, "compare_server_default": False, "include_object": include}
    context = MigrationContext.configure(connection, opts=opts)
    return list(compare_metadata(context, metadata))


def _readings_indexes(connection: Connection) -> set[str]:
    return {index["name"] for index in inspect(connection).get_indexes("readings") if index["name"]}


async def test_migrated_schema_matches_the_tables_module(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_brin_index_on_ts_exists_on_postgresql_only(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        indexes = await conn.run_sync(_readings_indexes)
        assert {"ix_readings_ts", "ix_readings_machine_metric_ts"} <= indexes
        if engine.dialect.name == "postgresql":
            assert "ix_readings_ts_brin" in indexes
            method = await conn.exec_driver_sql(
                "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.relname = 'ix_readings_ts_brin'"
            )
            assert method.scalar_one() == "brin"
        else:
            assert "ix_readings_ts_brin" not in indexes


def test_processes_starting_together_migrate_once(database_url: str | None) -> None:
    """Several processes migrating one fresh PostgreSQL database at once all succeed (the advisory lock)."""
    if database_url is None:
        pytest.skip("SQLite is one process's file; concurrent start-up migrations concern PostgreSQL")
    code = (
        "import asyncio, sys\n"
        "from haltless.store.database import create_engine, migrate\n"
        "engine = create_engine(sys.argv[1])\n"
        "asyncio.run(migrate(engine))\n"
    )
    started = [
        subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for process in started:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    versions = query_database(Settings(database_url=database_url), "SELECT version_num FROM alembic_version")
    assert versions == [(_head(),)]


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    return config


def _head() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


@pytest.fixture
async def bare_engine(tmp_path: Path, database_url: str | None) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database, for a test to bring to an old revision (`_upgrade_to`) and fill."""
    created = database.create_engine(database_url or f"sqlite+aiosqlite:///{tmp_path / 'haltless.db'}")
    try:
        yield created
    finally:
        await created.dispose()


def _upgrade_to(revision: str) -> Callable[[Connection], None]:
    def upgrade(connection: Connection) -> None:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return upgrade


async def test_0005_keeps_users_and_sessions_and_makes_emails_unique_per_tenant(
    bare_engine: AsyncEngine,
) -> None:
    """A database at 0004 with users and live refresh tokens upgrades without losing a row (SQLite rebuilds
    `users`, which with foreign keys on would cascade into `refresh_tokens`)."""
    async with bare_engine.begin() as conn:
        await conn.run_sync(_upgrade_to("0004"))
        for tenant in ("t1", "t2"):
            await conn.execute(text(f"INSERT INTO tenants (id, name, created_at) VALUES ('{tenant}', 'P', 1)"))
        await conn.execute(
            text(
                "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at)"
                " VALUES ('u1', 't1', 'ops@example.com', 'h', 'admin', 1)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at, created_at)"
                " VALUES ('j1', 'f1', 'u1', 4000000000, 1)"
            )
        )
    await database.migrate(bare_engine)
    async with bare_engine.begin() as conn:
        sessions = (await conn.execute(text("SELECT jti, session_expires_at FROM refresh_tokens"))).all()
        assert [tuple(row) for row in sessions] == [("j1", 4000000000)]
        user = (await conn.execute(text("SELECT disabled_at, token_generation FROM users"))).one()
        assert tuple(user) == (None, 0)
        # The same email in another tenant is a different user now; twice in one tenant is still refused.
        await conn.execute(
            text(
                "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at)"
                " VALUES ('u2', 't2', 'ops@example.com', 'h', 'admin', 1)"
            )
        )
        with pytest.raises(IntegrityError):
            async with conn.begin_nested():
                await conn.execute(
                    text(
                        "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at)"
                        " VALUES ('u3', 't2', 'ops@example.com', 'h', 'viewer', 1)"
                    )
                )
        if bare_engine.dialect.name == "sqlite":
            # Foreign keys are back on for the pooled connection after migrating.
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1


async def test_0006_renames_duplicate_machines_scopes_reading_ids_per_machine_and_records_units(
    bare_engine: AsyncEngine,
) -> None:
    """A database at 0005 with two machines of one name (and readings) upgrades: the newer machine gets a
    suffix, the readings stay, each metric's unit is the one of its newest reading that states one."""
    async with bare_engine.begin() as conn:
        await conn.run_sync(_upgrade_to("0005"))
        await conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'P', 1)"))
        for machine_id, name, created_at in [("m1", "Press 1", 1), ("m2", "Press 1", 2), ("m3", "Press 1 (2)", 3)]:
            await conn.execute(
                text(
                    "INSERT INTO machines (id, tenant_id, name, tags, status, created_at)"
                    f" VALUES ('{machine_id}', 't1', '{name}', '[]', 'offline', {created_at})"
                )
            )
        for machine_id, unit, reading_id in [
            ("m1", "mm/s", "0001"),
            ("m1", "mm_per_s", "0002"),
            ("m2", "", "0003"),
        ]:
            await conn.execute(
                text(
                    "INSERT INTO readings (tenant_id, machine_id, metric_name, value, unit, ts, received_at,"
                    f" reading_id) VALUES ('t1', '{machine_id}', 'v', 1.0, '{unit}', 1, 1, '{reading_id}')"
                )
            )
    await database.migrate(bare_engine)
    async with bare_engine.begin() as conn:
        names = (await conn.execute(text("SELECT id, name FROM machines ORDER BY id"))).all()
        assert [tuple(row) for row in names] == [("m1", "Press 1"), ("m2", "Press 1 (3)"), ("m3", "Press 1 (2)")]
        units = (await conn.execute(text("SELECT machine_id, metric_name, unit FROM metric_units"))).all()
        assert [tuple(row) for row in units] == [("m1", "v", "mm_per_s")]
        assert (await conn.execute(text("SELECT count(*) FROM readings"))).scalar_one() == 3
        # Another machine may now store reading id 0001; the same machine still may not, nor a second name.
        insert = (
            "INSERT INTO readings (tenant_id, machine_id, metric_name, value, unit, ts, received_at, reading_id)"
            " VALUES ('t1', '{}', 'v', 1.0, 'mm_per_s', 1, 1, '0001')"
        )
        await conn.execute(text(insert.format("m2")))
        with pytest.raises(IntegrityError):
            async with conn.begin_nested():
                await conn.execute(text(insert.format("m1")))
        with pytest.raises(IntegrityError):
            async with conn.begin_nested():
                await conn.execute(text("UPDATE machines SET name = 'Press 1' WHERE id = 'm3'"))


async def test_0011_adds_the_rules_revision_without_touching_what_hangs_off_tenants(
    bare_engine: AsyncEngine,
) -> None:
    """A database at 0010 upgrades: every tenant starts at revision 0, and its machines and readings stay (a
    rebuilt `tenants` with foreign keys on would cascade into everything)."""
    async with bare_engine.begin() as conn:
        await conn.run_sync(_upgrade_to("0010"))
        await conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'P', 1)"))
        await conn.execute(
            text(
                "INSERT INTO machines (id, tenant_id, name, tags, status, created_at)"
                " VALUES ('m1', 't1', 'Press', '[]', 'healthy', 1)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO readings (tenant_id, machine_id, metric_name, value, unit, ts, received_at)"
                " VALUES ('t1', 'm1', 'v', 1.0, '', 1, 1)"
            )
        )
    await database.migrate(bare_engine)
    async with bare_engine.begin() as conn:
        assert (await conn.execute(text("SELECT rules_revision FROM tenants"))).scalar_one() == 0
        assert (await conn.execute(text("SELECT count(*) FROM machines"))).scalar_one() == 1
        assert (await conn.execute(text("SELECT count(*) FROM readings"))).scalar_one() == 1


async def test_0012_deletes_only_the_rule_states_that_remember_nothing(
    bare_engine: AsyncEngine,
) -> None:
    """A database at 0011 as shared mode left it, a row per (rule, machine): the idle rows of threshold rules go,
    the rows of a pending breach, of flap memory, of a no_data rule and of an anomaly rule stay."""
    async with bare_engine.begin() as conn:
        await conn.run_sync(_upgrade_to("0011"))
        await conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'P', 1)"))
        await conn.execute(
            text(
                "INSERT INTO machines (id, tenant_id, name, tags, status, created_at)"
                " VALUES ('m1', 't1', 'Press', '[]', 'healthy', 1)"
            )
        )
        for rule_id, kind, condition in (
            ("idle", "threshold", ">"),
            ("pending", "threshold", ">"),
            ("flaps", "threshold", "<"),
            ("watch", "threshold", "no_data"),
            ("odd", "anomaly", ">"),
        ):
            await conn.execute(
                text(
                    "INSERT INTO alert_rules (id, tenant_id, name, metric_name, condition, threshold, severity,"
                    " for_seconds, hysteresis, enabled, created_at, updated_at, kind)"
                    " VALUES (:id, 't1', :id, 'temperature', :condition, 1, 'warning', 0, 0, :on, 1, 1, :kind)"
                ),
                {"id": rule_id, "condition": condition, "kind": kind, "on": True},
            )
        # As save_rule_states writes them: an empty flap memory is JSON null.
        rows: dict[str, dict[str, Any]] = {
            "idle": {},
            "pending": {"breach_since": 5},
            "flaps": {"flap_fires": (3, 4)},
            "watch": {"seen_at": 9},
            "odd": {},
        }
        await save_rule_states(
            conn, {(rule_id, "m1"): RuleState(last_ts=7, **fields) for rule_id, fields in rows.items()}
        )
    await database.migrate(bare_engine)
    async with bare_engine.begin() as conn:
        left = (await conn.execute(text("SELECT rule_id FROM rule_states ORDER BY rule_id"))).scalars().all()
    assert left == ["flaps", "odd", "pending", "watch"]
