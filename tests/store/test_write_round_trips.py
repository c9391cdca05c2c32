"""Round trips to SQLite's connection thread that a change leaves out (bench M4), and the locks it still takes."""

from __future__ import annotations

from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text

from haltless.bus.memory import MemoryBus
from haltless.core.clock import ManualClock
from haltless.core.readings import Reading
from haltless.server.service.changes import Changes
from haltless.store import readings
from tests.store.conftest import Fleet


def _count_rollbacks(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """Every rollback aiosqlite runs on its thread, counted."""
    calls: list[None] = []
    original = aiosqlite.Connection.rollback

    async def counting(self: aiosqlite.Connection) -> None:
        calls.append(None)
        await original(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counting)
    return calls


async def _driver(conn: Any) -> Any:
    return (await conn.get_raw_connection()).driver_connection


async def test_a_connection_given_back_is_rolled_back_only_when_a_transaction_is_open(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    if fleet.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's pool reset (store/database.py); PostgreSQL keeps SQLAlchemy's own")
    rollbacks = _count_rollbacks(monkeypatch)
    async with fleet.engine.connect() as conn, conn.begin():
        await conn.execute(text("UPDATE machines SET name = 'Press 2' WHERE id = :id"), {"id": fleet.machine_id})
    assert rollbacks == []  # committed: nothing left to roll back, so no round trip for it

    # A transaction SQLAlchemy does not know about (the driver's own BEGIN) is still rolled back on return...
    async with fleet.engine.connect() as conn:
        await (await _driver(conn)).execute("BEGIN IMMEDIATE")
    assert rollbacks == [None]
    # ...so the write lock it took is free again: another connection writes without waiting.
    async with fleet.engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA busy_timeout=0")
        await conn.commit()
        async with conn.begin():
            await conn.execute(text("UPDATE machines SET name = 'Press 3' WHERE id = :id"), {"id": fleet.machine_id})


async def test_a_change_takes_the_write_lock_before_it_reads(fleet: Fleet) -> None:
    if fleet.engine.dialect.name != "sqlite":
        pytest.skip("BEGIN IMMEDIATE is SQLite's (store/database.py begin_write)")
    changes = Changes(fleet.engine, MemoryBus(10), ManualClock(1), offline_after=60, shared=False)
    async with changes.for_tenant(fleet.tenant_id, refresh=False) as tx:
        assert (await _driver(tx.conn)).in_transaction  # by default, at once
    async with changes.for_tenant(fleet.tenant_id, refresh=False, lock_reads=False) as tx:
        driver = await _driver(tx.conn)
        assert not driver.in_transaction  # ingest's usual batch reads nothing: its INSERT takes the lock
        await tx.before_reads()
        assert driver.in_transaction
        await tx.before_reads()  # once is enough; a second call sends nothing
        assert driver.in_transaction


async def test_a_batch_and_its_last_seen_update_take_one_round_trip(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    if fleet.engine.dialect.name != "sqlite":
        pytest.skip("aiosqlite's connection thread (store/readings.py store_batch)")
    calls: list[object] = []
    original: Any = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await original(self, fn, *args, **kwargs)

    batch = [Reading(i, fleet.machine_id, "temp", float(i), "celsius", 1_000 + i, None) for i in range(700)]
    async with fleet.engine.connect() as conn, conn.begin():
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
        await readings.store_batch(
            conn, tenant_id=fleet.tenant_id, batch=batch, received_at=5, machine_ids=[fleet.machine_id]
        )
        monkeypatch.undo()
    assert len(calls) == 1  # the INSERTs (500 rows, then 200) and the UPDATE, in one call on SQLite's thread
    async with fleet.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM readings"))).scalar_one() == 700
        seen = await conn.execute(text("SELECT last_seen_at FROM machines WHERE id = :id"), {"id": fleet.machine_id})
        assert seen.scalar_one() == 5
