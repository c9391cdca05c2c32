"""The engine's transaction helpers on SQLite files: `begin_write` holds the write lock from its first read."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from haltless.store.database import begin_write, create_engine, migrate


async def test_begin_write_holds_the_write_lock_before_anything_is_written(tmp_path: Path) -> None:
    # Two engines on one file stand for two server processes. A transaction that has only read so far
    # must already hold the lock, so the other cannot commit between its duplicate check and its insert.
    url = f"sqlite+aiosqlite:///{tmp_path / 'haltless.db'}"
    first, second = create_engine(url), create_engine(url)

    @event.listens_for(second.sync_engine, "connect")
    def _no_waiting(dbapi_connection: Any, _record: Any) -> None:
        # The second process gives up at once instead of waiting: a held lock shows as an error, not a delay.
        dbapi_connection.cursor().execute("PRAGMA busy_timeout=0")

    await migrate(first)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with first.begin() as conn:
            await begin_write(conn)
            await conn.exec_driver_sql("SELECT count(*) FROM readings")  # a read, no write yet
            holding.set()
            await release.wait()

    try:
        holder = asyncio.create_task(hold())
        await holding.wait()
        # begin_write speaks to the driver itself, so SQLite's own error comes through.
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            async with second.begin() as conn:
                await begin_write(conn)
        release.set()
        await holder
        async with second.begin() as conn:
            await begin_write(conn)  # free again once the first committed
    finally:
        await first.dispose()
        await second.dispose()


async def test_opening_an_engine_never_drops_the_locks_of_a_connection_in_use(tmp_path: Path) -> None:
    """Closing any descriptor of a database file drops all of the process's POSIX locks on it (a demo or a test
    that creates a tenant beside a running server does that). Without its shared lock, the server looks gone to
    another process, whose last connection then checkpoints and deletes the log the server is still using (a
    "database disk image is malformed" a moment later)."""
    db = tmp_path / "haltless.db"
    url = f"sqlite+aiosqlite:///{db}"
    server = create_engine(url)
    await migrate(server)
    try:
        async with server.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            await driver.execute("BEGIN")
            await driver.execute("SELECT count(*) FROM tenants")  # a read in progress, as a server has them
            await create_engine(url).dispose()  # what create_tenant does in the same process
            other = (
                "import sqlite3, sys\n"
                "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "db.execute(\"INSERT INTO tenants (id, name, created_at) VALUES ('t', 'T', 1)\")\n"
                "db.close()\n"
            )
            subprocess.run([sys.executable, "-c", other, str(db)], check=True, timeout=60)
            assert Path(f"{db}-wal").exists(), "another process deleted the log this process still uses"
            await driver.execute("ROLLBACK")
    finally:
        await server.dispose()
