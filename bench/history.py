"""Sensor history: our store functions against the same SQL written by hand, both over aiosqlite, in one run.

1,000,000 readings (10 machines x 5 metrics, one per second for 20,000 s, about 5.5 hours) go into a
SQLite file created through our migrations; each case is timed as the median of several runs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

from haltless.core.history import MINUTE_US, raw_csv_lines
from haltless.core.timefmt import format_micros, parse_timestamp, to_micros
from haltless.store import history
from haltless.store.database import create_engine, migrate

MACHINES = 10
METRICS = ("temperature", "vibration", "current", "pressure", "speed")
SECONDS = 20_000
START_US = to_micros(parse_timestamp("2026-03-02T00:00:00Z"))
DAY_END_US = START_US + 86_400 * 1_000_000
RUNS = 5
TARGET_RATIO = 1.2

BUCKET_SQL = """
SELECT bucket, mean, low, high, readings, (
    SELECT value FROM readings AS newest
    WHERE newest.machine_id = :machine AND newest.metric_name = :metric AND newest.ts = grouped.newest
    ORDER BY newest.id DESC LIMIT 1)
FROM (
    SELECT ts - ts % :interval AS bucket, avg(value) AS mean, min(value) AS low, max(value) AS high,
           count(*) AS readings, max(ts) AS newest
    FROM readings
    WHERE machine_id = :machine AND metric_name = :metric AND ts >= :start AND ts < :end
    GROUP BY bucket
) AS grouped
ORDER BY bucket
"""
RAW_SQL = """
SELECT id, ts, value, unit FROM readings
WHERE machine_id = ? AND metric_name = ? AND ts < ? AND id <= ? AND ts >= ?
ORDER BY ts, id LIMIT ?
"""
EXPORT_SQL = """
SELECT id, ts, value, unit FROM readings
WHERE machine_id = ? AND metric_name = ? AND ts >= ? AND ts < ?
ORDER BY ts, id
"""


def load(path: Path) -> list[str]:
    """Fill the migrated database with the fleet; returns the machine ids."""
    tenant_id = str(uuid.uuid4())
    machine_ids = [str(uuid.uuid4()) for _ in range(MACHINES)]
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    with db:
        db.execute("INSERT INTO tenants (id, name, created_at) VALUES (?, 'bench', 0)", (tenant_id,))
        db.executemany(
            "INSERT INTO machines (id, tenant_id, name, tags, status, maintenance, created_at)"
            " VALUES (?, ?, ?, '[]', 'healthy', 0, 0)",
            [(m, tenant_id, f"machine {i}") for i, m in enumerate(machine_ids)],
        )
    insert = (
        "INSERT INTO readings (tenant_id, machine_id, metric_name, value, unit, ts, received_at)"
        " VALUES (?, ?, ?, ?, 'u', ?, ?)"
    )
    # In arrival order (time-major), as a live fleet would write them; 100,000 rows per transaction.
    chunk_seconds = 2000
    for first in range(0, SECONDS, chunk_seconds):
        rows = [
            (tenant_id, machine, metric, float((second * 7 + m * 13 + k) % 1000) / 10, ts, ts)
            for second in range(first, first + chunk_seconds)
            for ts in (START_US + second * 1_000_000,)
            for m, machine in enumerate(machine_ids)
            for k, metric in enumerate(METRICS)
        ]
        with db:
            db.executemany(insert, rows)
    db.execute("ANALYZE")
    db.close()
    return machine_ids


async def timings_ms(action: Callable[[], Awaitable[object]]) -> list[float]:
    """Wall times of RUNS runs after one warm-up."""
    await action()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await action()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def compare(
    ours: Callable[[], Awaitable[object]], theirs: Callable[[], Awaitable[object]]
) -> tuple[list[float], list[float]]:
    """Interleaved runs, so a noisy neighbour on the machine slows both sides alike."""
    mine: list[float] = []
    hand: list[float] = []
    for _ in range(3):
        mine += await timings_ms(ours)
        hand += await timings_ms(theirs)
    return mine, hand


async def measure(path: Path, machine_id: str) -> list[tuple[str, list[float], list[float]]]:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    hand = await aiosqlite.connect(path)
    metric = METRICS[0]
    try:
        async with engine.connect() as conn:
            upto = await history.snapshot_id(conn)

        async def store_buckets() -> object:
            async with engine.connect() as conn:
                return await history.buckets(
                    conn,
                    machine_id=machine_id,
                    metric_names=[metric],
                    start_us=START_US,
                    end_us=DAY_END_US,
                    interval_us=MINUTE_US,
                )

        async def hand_buckets() -> object:
            params = {
                "interval": MINUTE_US,
                "machine": machine_id,
                "metric": metric,
                "start": START_US,
                "end": DAY_END_US,
            }
            return await hand.execute_fetchall(BUCKET_SQL, params)

        async def store_page() -> object:
            async with engine.connect() as conn:
                return await history.raw_page(
                    conn,
                    machine_id=machine_id,
                    metric_names=[metric],
                    start_us=START_US,
                    end_us=DAY_END_US,
                    after=None,
                    upto_id=upto,
                    limit=10_000,
                )

        async def hand_page() -> object:
            params = (machine_id, metric, DAY_END_US, upto, START_US, 10_000)
            return await hand.execute_fetchall(RAW_SQL, params)

        async def store_export() -> int:
            size = 0
            async for page in history.iter_raw(
                engine,
                machine_id=machine_id,
                metric_names=[metric],
                start_us=START_US,
                end_us=DAY_END_US,
                upto_id=upto,
            ):
                size += len(raw_csv_lines(machine_id, page))
            return size

        async def hand_export() -> int:
            size = 0
            async with hand.execute(EXPORT_SQL, (machine_id, metric, START_US, DAY_END_US)) as cursor:
                while rows := await cursor.fetchmany(5000):
                    size += len(
                        "".join(
                            f"{format_micros(ts)},{machine_id},{metric},{value!r},{unit}\r\n"
                            for _id, ts, value, unit in rows
                        )
                    )
            return size

        assert await store_export() == await hand_export()
        page = await store_page()
        assert isinstance(page, list)
        assert len(page) == 10_000
        assert len(page[0]) == 5  # (metric_name, ts, value, unit, id): a RawPoint
        return [
            (
                "one day at 1m buckets (1 metric, 20,000 readings)",
                *await compare(store_buckets, hand_buckets),
            ),
            ("raw page of 10,000 points", *await compare(store_page, hand_page)),
            ("CSV export of one metric-day (20,000 rows)", *await compare(store_export, hand_export)),
        ]
    finally:
        await hand.close()
        await engine.dispose()


async def prepare(path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await engine.dispose()


def run() -> str:
    """Load, measure, and return the markdown table."""
    with tempfile.TemporaryDirectory(prefix="haltless-bench-") as tmp:
        path = Path(tmp) / "history.db"
        asyncio.run(prepare(path))
        started = time.perf_counter()
        machine_ids = load(path)
        load_s = time.perf_counter() - started
        results = asyncio.run(measure(path, machine_ids[3]))
    lines = [
        f"{MACHINES * len(METRICS) * SECONDS:,} readings loaded in {load_s:.1f} s; {3 * RUNS} interleaved runs "
        f"per side; target ratio ≤ {TARGET_RATIO}x",
        "",
        "| case | store median (ms) | hand-written SQL median (ms) | ratio of medians | ratio of best runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, ours, theirs in results:
        ratio = statistics.median(ours) / statistics.median(theirs)
        flag = "" if ratio <= TARGET_RATIO else " ⚠"
        lines.append(
            f"| {name} | {statistics.median(ours):.1f} | {statistics.median(theirs):.1f} | {ratio:.2f}x{flag} "
            f"| {min(ours) / min(theirs):.2f}x |"
        )
    return "\n".join(lines)
