"""Background WAL checkpoints on SQLite: writers leave the syncing to it, and the log stays bounded."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event

from haltless.core.readings import Reading
from haltless.store import accounts, machines, readings
from haltless.store.checkpoint import WAL_BACKSTOP_PAGES, WalCheckpointer
from haltless.store.database import create_engine, migrate
from tests.conftest import EVENT_TIMEOUT

PAGE_SIZE = 4096


async def _fleet(url: str) -> tuple[Any, str, str]:
    engine = create_engine(url)
    await migrate(engine)
    async with engine.begin() as conn:
        tenant_id, _ = await accounts.create_tenant(conn, name="P", email="a@example.com", password_hash="x", now=1)
        machine = await machines.create(conn, tenant_id=tenant_id, name="Press", location=None, tags=[], now=1)
    return engine, tenant_id, machine.id


async def _write(engine: Any, tenant_id: str, machine_id: str, start: int, count: int) -> None:
    batch = [Reading(i, machine_id, f"m{i % 7}", float(i), "u", start + i, None) for i in range(count)]
    async with engine.begin() as conn:
        await readings.insert_many(conn, tenant_id=tenant_id, batch=batch, received_at=start)


async def test_connections_leave_checkpoints_to_the_background_until_the_backstop(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'haltless.db'}")
    try:
        async with engine.connect() as conn:
            value = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one()
        assert value == WAL_BACKSTOP_PAGES
    finally:
        await engine.dispose()


async def test_commits_are_checkpointed_in_the_background(tmp_path: Path) -> None:
    db = tmp_path / "haltless.db"
    engine, tenant_id, machine_id = await _fleet(f"sqlite+aiosqlite:///{db}")
    checkpointer = WalCheckpointer(engine, interval=0.01)
    checkpointer.start()
    try:
        for n in range(5):
            await _write(engine, tenant_id, machine_id, n * 1000, 500)
        await asyncio.wait_for(checkpointer.wait_caught_up(), EVENT_TIMEOUT)
        assert checkpointer.stats.failures == 0
        # The run that caught up began after the last commit had landed: that commit's frames are in the
        # database file, synced (a power loss now loses nothing).
        assert checkpointer.stats.last_frames_copied == checkpointer.stats.last_frames_logged > 0
    finally:
        await checkpointer.stop()
        await engine.dispose()
    assert checkpointer._task is None


async def test_a_checkpoint_runs_after_commits_only(tmp_path: Path) -> None:
    # Reads never wake the task; each commit wakes it once (commits during a run share the next one).
    engine, tenant_id, machine_id = await _fleet(f"sqlite+aiosqlite:///{tmp_path / 'haltless.db'}")
    checkpointer = WalCheckpointer(engine, interval=0)
    checkpointer.start()
    try:
        await _write(engine, tenant_id, machine_id, 0, 10)
        await asyncio.wait_for(checkpointer.wait_caught_up(), EVENT_TIMEOUT)
        runs = checkpointer.stats.runs
        assert runs >= 1
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM readings")).scalar_one() == 10
        assert checkpointer.caught_up  # a read is no commit: nothing to do
        await _write(engine, tenant_id, machine_id, 1000, 10)
        await asyncio.wait_for(checkpointer.wait_caught_up(), EVENT_TIMEOUT)
        assert checkpointer.stats.runs == runs + 1
    finally:
        await checkpointer.stop()
        await engine.dispose()


async def _engine_with_backstop(url: str, pages: int) -> Any:
    """An engine whose writers checkpoint themselves past `pages` (0: never), set after the engine's own pragmas."""
    engine = create_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _backstop(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.cursor().execute(f"PRAGMA wal_autocheckpoint={pages}")

    return engine


def _wal_size(db: Path) -> int:
    return os.path.getsize(f"{db}-wal")


async def test_writers_own_checkpoint_bounds_the_log(tmp_path: Path) -> None:
    # The backstop alone: a writer that finds the log past it checkpoints after its commit, and the next writer
    # starts the log over. Without it the log passes 5,000 pages here (22 MB).
    db = tmp_path / "haltless.db"
    setup, tenant_id, machine_id = await _fleet(f"sqlite+aiosqlite:///{db}")
    await setup.dispose()
    backstop = 200
    engine = await _engine_with_backstop(f"sqlite+aiosqlite:///{db}", backstop)
    largest = 0
    try:
        for n in range(120):
            await _write(engine, tenant_id, machine_id, n * 1000, 200)
            largest = max(largest, _wal_size(db))
    finally:
        await engine.dispose()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 120 * 200
    # The log restarts at the first commit past the backstop: it never holds more than the backstop and a batch.
    assert largest <= 2 * backstop * (PAGE_SIZE + 24)


async def test_the_background_checkpoint_alone_keeps_the_log_short(tmp_path: Path) -> None:
    # Writers never checkpoint here; after each commit the background run copies the whole log, so the next
    # writer starts it over and the file never holds much more than one batch.
    db = tmp_path / "haltless.db"
    setup, tenant_id, machine_id = await _fleet(f"sqlite+aiosqlite:///{db}")
    await setup.dispose()
    engine = await _engine_with_backstop(f"sqlite+aiosqlite:///{db}", 0)
    checkpointer = WalCheckpointer(engine, interval=0)
    checkpointer.start()
    try:
        await _write(engine, tenant_id, machine_id, 0, 200)
        one_batch = _wal_size(db)
        for n in range(1, 60):
            await asyncio.wait_for(checkpointer.wait_caught_up(), EVENT_TIMEOUT)
            await _write(engine, tenant_id, machine_id, n * 1000, 200)
        # Later batches touch more index pages than the first (about 3x here); without the task the log would
        # hold all 60 batches.
        assert _wal_size(db) <= 6 * one_batch
        assert checkpointer.stats.failures == 0
    finally:
        await checkpointer.stop()
        await engine.dispose()


async def test_a_log_past_the_restart_size_gets_a_restart_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "haltless.db"
    setup, tenant_id, machine_id = await _fleet(f"sqlite+aiosqlite:///{db}")
    await setup.dispose()
    engine = await _engine_with_backstop(f"sqlite+aiosqlite:///{db}", 0)
    checkpointer = WalCheckpointer(engine, restart_pages=50)  # never started: driven by hand
    try:
        for n in range(10):
            await _write(engine, tenant_id, machine_id, n * 1000, 200)
        _, logged, _ = await checkpointer.checkpoint()
        assert logged >= 50
        assert checkpointer.stats.restarts == 0  # the first one is PASSIVE: it did not know the log's length yet
        busy, logged_again, copied = await checkpointer.checkpoint()
        assert (busy, copied) == (0, logged_again)
        assert checkpointer.stats.restarts == 1
        await _write(engine, tenant_id, machine_id, 99_000, 200)
        _, logged_after, _ = await checkpointer.checkpoint()
        assert logged_after < 50  # the log started over
        assert checkpointer.stats.restarts == 1
        async with engine.connect() as conn:
            # The connection's busy timeout is back to the engine's own after the restart.
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() == 30000
    finally:
        await engine.dispose()


async def test_other_databases_are_left_alone(tmp_path: Path, database_url: str | None) -> None:
    engine = create_engine(database_url or f"sqlite+aiosqlite:///{tmp_path / 'haltless.db'}")
    checkpointer = WalCheckpointer(engine)
    checkpointer.start()
    try:
        assert (checkpointer._task is not None) == (engine.dialect.name == "sqlite")
    finally:
        await checkpointer.stop()
        await engine.dispose()
