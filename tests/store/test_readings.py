"""Batch inserts on both backends: COPY on PostgreSQL joins the caller's transaction, duplicates surface alike."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from haltless.core.readings import Reading
from haltless.store import readings
from haltless.store.tables import readings as readings_table
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant
from tests.store.conftest import Fleet, statements_sent


def _batch(machine_id: str, reading_ids: list[str | None], ts: int = 1_700_000_000_000_000) -> list[Reading]:
    return [
        Reading(index, machine_id, "temp", float(index), "celsius", ts + index, reading_id)
        for index, reading_id in enumerate(reading_ids)
    ]


async def _count(fleet: Fleet) -> int:
    async with fleet.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(readings_table))).scalar_one())


async def test_batch_insert_stores_every_column(fleet: Fleet) -> None:
    batch = [*_batch(fleet.machine_id, ["a", None]), Reading(2, fleet.machine_id, "rpm", 3, "", 5, None)]
    async with fleet.engine.begin() as conn:
        await readings.insert_many(conn, tenant_id=fleet.tenant_id, batch=batch, received_at=99)
    async with fleet.engine.connect() as conn:
        rows = (await conn.execute(select(readings_table).order_by(readings_table.c.id))).all()
    assert [tuple(row)[1:] for row in rows] == [
        (fleet.tenant_id, fleet.machine_id, "temp", 0.0, "celsius", 1_700_000_000_000_000, 99, "a"),
        (fleet.tenant_id, fleet.machine_id, "temp", 1.0, "celsius", 1_700_000_000_000_001, 99, None),
        (fleet.tenant_id, fleet.machine_id, "rpm", 3.0, "", 5, 99, None),
    ]
    assert rows[0].id < rows[1].id < rows[2].id


async def test_a_large_batch_is_stored_whole_and_in_order(fleet: Fleet) -> None:
    """More rows than one statement takes (SQLite: full multi-row statements, then the rest one by one)."""
    count = 2 * 500 + 234
    batch = _batch(fleet.machine_id, [f"r{n}" if n % 3 else None for n in range(count)])
    async with fleet.engine.begin() as conn:
        await readings.insert_many(conn, tenant_id=fleet.tenant_id, batch=batch, received_at=7)
    async with fleet.engine.connect() as conn:
        rows = (await conn.execute(select(readings_table).order_by(readings_table.c.id))).all()
    assert [(row.value, row.ts, row.reading_id, row.received_at) for row in rows] == [
        (r.value, r.ts, r.reading_id, 7) for r in batch
    ]


async def test_a_duplicate_inside_a_full_statement_stores_nothing_of_the_batch(fleet: Fleet) -> None:
    ids: list[str | None] = [f"r{n}" for n in range(700)]
    ids[321] = "r5"  # inside the first 500, the multi-row statement on SQLite
    with pytest.raises(IntegrityError):
        async with fleet.engine.begin() as conn:
            await readings.insert_many(
                conn, tenant_id=fleet.tenant_id, batch=_batch(fleet.machine_id, ids), received_at=1
            )
    assert await _count(fleet) == 0


async def test_batch_insert_rolls_back_with_its_transaction(fleet: Fleet) -> None:
    """The insert is the transaction's first statement (so COPY must open it) and is undone with it."""
    with pytest.raises(RuntimeError, match="abandon"):
        async with fleet.engine.begin() as conn:
            await readings.insert_many(
                conn, tenant_id=fleet.tenant_id, batch=_batch(fleet.machine_id, ["a"]), received_at=1
            )
            raise RuntimeError("abandon the batch")
    assert await _count(fleet) == 0


async def test_duplicate_reading_id_raises_integrity_error(fleet: Fleet) -> None:
    async with fleet.engine.begin() as conn:
        await readings.insert_many(
            conn, tenant_id=fleet.tenant_id, batch=_batch(fleet.machine_id, ["a"]), received_at=1
        )
    with pytest.raises(IntegrityError):
        async with fleet.engine.begin() as conn:
            await readings.insert_many(
                conn, tenant_id=fleet.tenant_id, batch=_batch(fleet.machine_id, ["b", "a"]), received_at=2
            )
    async with fleet.engine.connect() as conn:
        assert (await conn.execute(select(readings_table.c.reading_id))).scalars().all() == ["a"]


_WAITING_ON_A_LOCK = (
    "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def test_racing_insert_of_the_same_reading_id_fails_once_the_first_commits(fleet: Fleet) -> None:
    """Two transactions insert one reading id: the second waits for the first, then gets IntegrityError."""
    first_inserted = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with fleet.engine.begin() as conn:
            await readings.insert_many(
                conn, tenant_id=fleet.tenant_id, batch=_batch(fleet.machine_id, ["x"]), received_at=1
            )
            first_inserted.set()
            await release_first.wait()

    async def second() -> None:
        await first_inserted.wait()
        async with fleet.engine.begin() as conn:
            await readings.insert_many(
                conn, tenant_id=fleet.tenant_id, batch=_batch(fleet.machine_id, ["x"]), received_at=2
            )

    first_task = asyncio.create_task(first())
    second_task = asyncio.create_task(second())
    await first_inserted.wait()
    if fleet.engine.dialect.name == "postgresql":
        # Wait until the second insert is seen queued behind the first transaction's lock (PostgreSQL says so;
        # SQLite's busy wait is invisible, and its single writer makes the order certain anyway).
        async with fleet.engine.connect() as conn:
            async with asyncio.timeout(EVENT_TIMEOUT):
                while not (await conn.execute(text(_WAITING_ON_A_LOCK))).scalar_one():
                    await conn.rollback()
                    await asyncio.sleep(0.02)
        assert not second_task.done()
    release_first.set()
    await first_task
    with pytest.raises(IntegrityError):
        await second_task
    assert await _count(fleet) == 1


async def test_concurrent_batches_to_two_servers_store_each_reading_id_once(
    server_factory: Callable[..., RunningServer], tenant_factory: Callable[..., Awaitable[Tenant]]
) -> None:
    """Two server processes' worth of pipelines (separate apps, one database) race on the same reading ids."""
    secret = "shared-secret-" + uuid.uuid4().hex
    servers = [server_factory(jwt_secret=secret) for _ in range(2)]
    tenant = await tenant_factory(servers[0])
    machine_id = await tenant.add_machine()
    ids = [f"r-{n}" for n in range(200)]
    items = [
        {"machine_id": machine_id, "metric_name": "temp", "value": float(n), "reading_id": rid}
        for n, rid in enumerate(ids)
    ]

    async def send(server: RunningServer, chunk: list[dict[str, object]]) -> dict[str, int]:
        response = await tenant.http.post(f"{server.base_url}/api/v1/sensor-data", json={"readings": chunk})
        assert response.status_code == 202, response.text
        body: dict[str, int] = response.json()
        return body

    # Each server gets every id, in overlapping chunks, all at once.
    jobs = [send(server, items[start : start + 50]) for server in servers for start in range(0, 200, 25)]
    results = await asyncio.gather(*jobs)
    assert sum(r["accepted"] for r in results) == 200
    assert (
        sum(r["accepted"] + r["duplicates"] for r in results)
        == sum(len(items[s : s + 50]) for s in range(0, 200, 25)) * 2
    )
    page = await tenant.http.get(
        "/api/v1/sensor-data",
        params={"machine_id": machine_id, "metric_name": "temp", "limit": 1000},
    )
    assert page.status_code == 200, page.text
    assert sorted(p["value"] for p in page.json()["items"]) == [float(n) for n in range(200)]


@pytest.mark.parametrize("one_call", [True, False], ids=["one-call", "two-calls"])
async def test_store_batch_inserts_and_marks_the_machines_seen_in_the_callers_transaction(
    fleet: Fleet, one_call: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways SQLite may take (one call on aiosqlite's thread, or two round trips where an aiosqlite release
    lacks what the first uses) store and roll back alike; PostgreSQL takes neither."""
    monkeypatch.setattr(readings, "_AIOSQLITE_RUNS_ON_ITS_THREAD", one_call)
    batch = _batch(fleet.machine_id, [None, "b"])
    async with fleet.engine.begin() as conn:
        await readings.store_batch(
            conn, tenant_id=fleet.tenant_id, batch=batch, received_at=500, machine_ids=[fleet.machine_id]
        )
    async with fleet.engine.connect() as conn:
        seen = await conn.execute(text("SELECT last_seen_at FROM machines WHERE id = :id"), {"id": fleet.machine_id})
        assert seen.scalar_one() == 500
    assert await _count(fleet) == 2
    # Rolled back with the caller's transaction: neither the rows nor the new last_seen_at stay.
    with pytest.raises(RuntimeError, match="rolled back"):
        async with fleet.engine.begin() as conn:
            await readings.store_batch(
                conn,
                tenant_id=fleet.tenant_id,
                batch=_batch(fleet.machine_id, ["c"]),
                received_at=900,
                machine_ids=[fleet.machine_id],
            )
            raise RuntimeError("rolled back")
    async with fleet.engine.connect() as conn:
        seen = await conn.execute(text("SELECT last_seen_at FROM machines WHERE id = :id"), {"id": fleet.machine_id})
        assert seen.scalar_one() == 500
    assert await _count(fleet) == 2
    # A stored reading id (or a machine deleted meanwhile) surfaces as IntegrityError, as from insert_many.
    with pytest.raises(IntegrityError):
        async with fleet.engine.begin() as conn:
            await readings.store_batch(
                conn,
                tenant_id=fleet.tenant_id,
                batch=_batch(fleet.machine_id, ["b"]),
                received_at=950,
                machine_ids=[fleet.machine_id],
            )


def _bytes_written_by(thread_id: int) -> int:
    # What the thread passed to write(2) and its kind, to disk or page cache alike (Linux /proc).
    with open(f"/proc/self/task/{thread_id}/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))


async def test_store_batch_keeps_its_statement_journal_in_memory(fleet: Fleet) -> None:
    """SQLite undoes a failed multi-row INSERT from a statement journal: the original of each page it changes.
    store_batch keeps that journal in memory; in a temp file it was ~250 write calls a batch, ~15% of ingest's
    CPU (bench M4). Until its COMMIT the connection's thread then writes nothing: the WAL frames come with it.
    SQLite's sorts (which temp_store=MEMORY would also keep in memory) stay as they were outside the call."""
    if fleet.engine.dialect.name != "sqlite" or not readings._AIOSQLITE_RUNS_ON_ITS_THREAD:
        pytest.skip("aiosqlite's connection thread (store/readings.py store_batch)")
    if not Path("/proc/self/task").is_dir():
        pytest.skip("per-thread I/O counts come from Linux's /proc")
    metrics = [f"m{n}" for n in range(40)]

    def batch(start: int) -> list[Reading]:
        # 500 readings over 40 series: each series' entries go to its own part of the (machine, metric, ts)
        # index, so a batch changes ~40 pages the file already had, 160 KiB: past SQLite's 64 KiB in memory.
        return [Reading(n, fleet.machine_id, metrics[n % 40], float(n), "", start + n, None) for n in range(500)]

    async with fleet.engine.begin() as conn:
        for start in range(0, 20 * 500, 500):
            await readings.insert_many(conn, tenant_id=fleet.tenant_id, batch=batch(start), received_at=1)
    async with fleet.engine.begin() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        thread_id = await driver._execute(threading.get_native_id)
        before = _bytes_written_by(thread_id)
        await readings.store_batch(
            conn, tenant_id=fleet.tenant_id, batch=batch(10_000), received_at=2, machine_ids=[fleet.machine_id]
        )
        written = _bytes_written_by(thread_id) - before
        assert (await conn.execute(text("PRAGMA temp_store"))).scalar_one() == 0  # back to the default
    assert written < 4096, f"the connection's thread wrote {written} bytes before the COMMIT"
    assert await _count(fleet) == 21 * 500


async def test_store_batch_stores_on_a_connection_whose_temp_database_is_open(fleet: Fleet) -> None:
    """Reading sqlite_temp_master (SQLAlchemy's reflection does) opens a connection's temp database; SQLite then
    refuses to change temp_store inside a transaction. A batch whose transaction is already open at SQLite's level
    keeps its statement journal where it was, and is stored all the same."""
    if fleet.engine.dialect.name != "sqlite" or not readings._AIOSQLITE_RUNS_ON_ITS_THREAD:
        pytest.skip("aiosqlite's connection thread (store/readings.py store_batch)")
    async with fleet.engine.begin() as conn:
        for start in (0, 10, 20):
            await conn.exec_driver_sql("SELECT count(*) FROM sqlite_temp_master")
            await readings.store_batch(
                conn,
                tenant_id=fleet.tenant_id,
                batch=_batch(fleet.machine_id, [None] * 10, ts=start),
                received_at=3,
                machine_ids=[fleet.machine_id],
            )
    assert await _count(fleet) == 30


async def test_the_latest_readings_of_a_machine_are_found_by_index_seeks_only(fleet: Fleet) -> None:
    """`GET /machines/{id}/latest` and the machine list's latest values: their cost must not grow with the stored
    history. A window over the machine's readings sorted all of them (1.5 s a call at 1M readings); the skip-scan
    seeks the (machine, metric, ts) index once per metric. SQLite's plan says which it does."""
    if fleet.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's EXPLAIN QUERY PLAN; PostgreSQL's planner may scan a table this small")
    batch = [Reading(n, fleet.machine_id, f"m{n % 3}", float(n), "", n, None) for n in range(30)]
    async with fleet.engine.begin() as conn:
        await readings.insert_many(conn, tenant_id=fleet.tenant_id, batch=batch, received_at=1)
    async with fleet.engine.connect() as conn:
        with statements_sent(fleet.engine) as sent:
            found = await readings.latest_per_machine_metric(conn, machine_ids=[fleet.machine_id])
        assert [(r.metric_name, r.value) for r in found[fleet.machine_id]] == [("m0", 27), ("m1", 28), ("m2", 29)]
        ((statement, parameters),) = sent
        plan = [row[-1] for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    assert not [step for step in plan if step.startswith("SCAN") and "readings" in step], plan
    # The one sort is the answer's own (a row per machine and metric), last; none of a machine's readings.
    assert [step for step in plan if "TEMP B-TREE" in step] == ["USE TEMP B-TREE FOR ORDER BY"], plan
    assert plan[-1] == "USE TEMP B-TREE FOR ORDER BY", plan
