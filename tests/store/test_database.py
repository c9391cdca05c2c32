"""The engine's transaction helpers on SQLite files: `begin_write` holds the write lock from its first read."""

from __future__ import annotations

import asyncio
import sqlite3
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
