"""Stored sensor readings: batch insert (COPY on PostgreSQL) with idempotent reading ids, latest values."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy import Integer, func, literal, select, text, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.readings import Reading
from haltless.store import machines as machine_store
from haltless.store.tables import machines, readings


@dataclass(frozen=True, slots=True)
class StoredReading:
    machine_id: str
    metric_name: str
    value: float
    unit: str
    ts: int
    received_at: int


async def seen_reading_ids(
    conn: AsyncConnection, *, tenant_id: str, keys: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of the (machine_id, reading_id) pairs are already stored: a reading id is unique per machine."""
    found: set[tuple[str, str]] = set()
    wanted = set(keys)
    for start in range(0, len(keys), 400):
        chunk = keys[start : start + 400]
        rows = await conn.execute(
            select(readings.c.machine_id, readings.c.reading_id).where(
                readings.c.tenant_id == tenant_id,
                readings.c.machine_id.in_({machine_id for machine_id, _ in chunk}),
                readings.c.reading_id.in_({reading_id for _, reading_id in chunk}),
            )
        )
        found.update(pair for pair in ((row[0], row[1]) for row in rows) if pair in wanted)
    return found


# Columns written by an insert, in the order COPY receives them (`id` comes from its sequence).
# aiosqlite's own way to run a function on the connection's thread (its `execute` is built on it) and the
# sqlite3 connection it runs on. Not public API: were either gone in some release, store_batch sends its two
# statements as two round trips instead (tests/store/test_readings.py runs both ways).
_AIOSQLITE_RUNS_ON_ITS_THREAD = hasattr(aiosqlite.Connection, "_execute") and hasattr(aiosqlite.Connection, "_conn")
_INSERT_COLUMNS = ("tenant_id", "machine_id", "metric_name", "value", "unit", "ts", "received_at", "reading_id")


async def store_batch(
    conn: AsyncConnection, *, tenant_id: str, batch: Sequence[Reading], received_at: int, machine_ids: Iterable[str]
) -> None:
    """Insert an ingest batch and advance `last_seen_at` of the machines it came from to `received_at`, in the
    caller's transaction: `insert_many` and `machines.mark_seen` together, with fewer round trips.

    Hot path (bench M4, docs/benchmarks.md "Hot-path choices"). SQLite: both statements in one call on the
    connection's thread instead of two (a round trip to it costs ~45 µs of the event loop's CPU and wakes two
    threads). PostgreSQL: the UPDATE first, so it opens the transaction the COPY then joins (COPY bypasses
    SQLAlchemy, which otherwise needs a statement of its own sent first to open it).
    """
    if not batch:
        await machine_store.mark_seen(conn, machine_ids=machine_ids, seen=received_at)
        return
    if conn.dialect.name == "sqlite":
        if not conn.in_transaction():
            raise RuntimeError("store_batch needs a transaction")
        if _AIOSQLITE_RUNS_ON_ITS_THREAD:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            statements = [
                *_sqlite_inserts(_records(tenant_id, batch, received_at)),
                machine_store.sqlite_mark_seen(machine_ids, received_at),
            ]
            try:
                await driver._execute(_run_sqlite, driver._conn, statements)
            except sqlite3.IntegrityError as exc:
                raise IntegrityError(_SQLITE_INSERT, None, exc) from exc
            return
        await insert_many(conn, tenant_id=tenant_id, batch=batch, received_at=received_at)
        await machine_store.mark_seen(conn, machine_ids=machine_ids, seen=received_at)
        return
    await machine_store.mark_seen(conn, machine_ids=machine_ids, seen=received_at)
    await insert_many(conn, tenant_id=tenant_id, batch=batch, received_at=received_at)


def _records(tenant_id: str, batch: Sequence[Reading], received_at: int) -> list[tuple[object, ...]]:
    return [(tenant_id, r.machine_id, r.metric_name, r.value, r.unit, r.ts, received_at, r.reading_id) for r in batch]


def _run_sqlite(db: sqlite3.Connection, statements: Sequence[tuple[str, Any, bool]]) -> None:
    # On the connection's thread: each (sql, parameters, many) in order, as aiosqlite's execute/executemany would.
    #
    # Hot path (bench M4), with the statement journal in memory. A multi-row INSERT may fail half-way (a stored
    # reading id, a machine deleted meanwhile), so SQLite keeps the original of every page the statement changes
    # to undo it: ~200 pages for 500 readings into a table of some size (one index leaf per series and machine).
    # Past 64 KiB it writes them to a temp file, created and deleted per transaction: ~250 write calls and as many
    # page-cache pages a batch, 0.6-1.3 ms of the process' ~7 ms (docs/benchmarks.md, round 5). SQLite keeps the
    # journal in memory when temp_store is MEMORY as the write transaction begins (the INSERT begins it on the
    # usual batch, through the driver's implicit BEGIN). So it is set only when no transaction is open yet at
    # SQLite's level: one that is (units registered first, BEGIN IMMEDIATE) keeps its file, as before, and SQLite
    # refuses the change inside a transaction once the connection's temp database is open (reading
    # sqlite_temp_master opens it, as SQLAlchemy's reflection does). And only for this call: with
    # temp_store=MEMORY for good, SQLite also holds its sorts in memory (a year-long bucket query sorts every
    # reading in its range) and the journal of a statement that changes much of the file (deleting a machine).
    in_memory = not db.in_transaction
    if in_memory:
        db.execute(_TEMP_STORE_MEMORY).close()
    try:
        for sql, parameters, many in statements:
            if many:
                db.executemany(sql, parameters).close()
            else:
                db.execute(sql, parameters).close()
    finally:
        if in_memory:
            db.execute(_TEMP_STORE_DEFAULT).close()


_TEMP_STORE_MEMORY = "PRAGMA temp_store = MEMORY"
_TEMP_STORE_DEFAULT = "PRAGMA temp_store = DEFAULT"


async def insert_many(conn: AsyncConnection, *, tenant_id: str, batch: Sequence[Reading], received_at: int) -> None:
    """Insert a batch in the caller's transaction: COPY on PostgreSQL, executemany elsewhere."""
    if not batch:
        return
    records = _records(tenant_id, batch, received_at)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":
        await _copy(conn, records)
        return
    if conn.dialect.name == "sqlite":
        await _executemany_sqlite(conn, records)
        return
    await conn.execute(readings.insert(), [dict(zip(_INSERT_COLUMNS, record, strict=True)) for record in records])


def _sqlite_rows_per_statement() -> int:
    # One statement may bind SQLITE_LIMIT_VARIABLE_NUMBER parameters (32766 since SQLite 3.32, 999 before).
    probe = sqlite3.connect(":memory:")
    try:
        limit = probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        probe.close()
    return max(1, min(500, limit // len(_INSERT_COLUMNS)))


_SQLITE_ROWS_PER_STATEMENT = _sqlite_rows_per_statement()
_SQLITE_ROW = "(" + ", ".join("?" * len(_INSERT_COLUMNS)) + ")"
# Only our own table and column names go into the text; every value is a bound parameter.
_SQLITE_INSERT = f"INSERT INTO {readings.name} ({', '.join(_INSERT_COLUMNS)}) VALUES {_SQLITE_ROW}"  # noqa: S608
_SQLITE_INSERT_MANY = _SQLITE_INSERT + (", " + _SQLITE_ROW) * (_SQLITE_ROWS_PER_STATEMENT - 1)


async def _executemany_sqlite(conn: AsyncConnection, records: Sequence[tuple[object, ...]]) -> None:
    # Hot path of ingest (bench M4). Full chunks of rows go in as one multi-row INSERT: the driver binds
    # all their parameters at once and SQLite then inserts every row in one call with the GIL released,
    # where `executemany` takes the GIL back for every row (and, with the event loop busy, waits up to a
    # switch interval for it each time). The remainder goes through `executemany` of the one-row statement,
    # so only two statements are ever prepared. Both run on the connection of the caller's transaction.
    if not conn.in_transaction():
        raise RuntimeError("insert_many needs a transaction")
    driver: Any = (await conn.get_raw_connection()).driver_connection
    try:
        for sql, parameters, many in _sqlite_inserts(records):
            await (driver.executemany(sql, parameters) if many else driver.execute(sql, parameters))
    except sqlite3.IntegrityError as exc:
        # Surface a duplicate reading id (or a machine deleted meanwhile) as on the other paths.
        raise IntegrityError(_SQLITE_INSERT, None, exc) from exc


def _sqlite_inserts(records: Sequence[tuple[object, ...]]) -> list[tuple[str, Any, bool]]:
    """The statements inserting `records` on SQLite, as (sql, parameters, executemany?)."""
    size = _SQLITE_ROWS_PER_STATEMENT
    full = len(records) - len(records) % size
    statements: list[tuple[str, Any, bool]] = [
        (_SQLITE_INSERT_MANY, list(chain.from_iterable(records[start : start + size])), False)
        for start in range(0, full, size)
    ]
    if full < len(records):
        statements.append((_SQLITE_INSERT, records[full:], True))
    return statements


async def _copy(conn: AsyncConnection, records: Sequence[tuple[object, ...]]) -> None:
    # COPY streams the rows in PostgreSQL's binary format with no statement to plan or parameters to
    # bind per row; measured on 1,000-5,000-row batches it takes about half the time of executemany.
    if not conn.in_transaction():
        raise RuntimeError("insert_many needs a transaction (COPY must commit or roll back with the batch)")
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN lazily with the first statement; COPY bypasses the
        # adapter, so send that statement now or the COPY would commit on its own.
        await conn.execute(select(1))
    try:
        await driver.copy_records_to_table(readings.name, records=records, columns=_INSERT_COLUMNS)
    except asyncpg.IntegrityConstraintViolationError as exc:
        # Raised by asyncpg directly, not through SQLAlchemy: translate it so callers handle a duplicate
        # reading id (or a machine deleted meanwhile) the same way as on the executemany path.
        raise IntegrityError(f"COPY {readings.name}", None, exc) from exc


async def latest_per_machine_metric(
    conn: AsyncConnection, *, machine_ids: Sequence[str]
) -> dict[str, list[StoredReading]]:
    """The newest reading of each metric of each machine, by index seeks only (never a scan of the history)."""
    if not machine_ids:
        return {}
    # A recursive skip-scan walks the distinct metric names of each machine through the
    # (machine_id, metric_name, ts) index, one seek per metric, then one seek finds each metric's newest row.
    first = readings.alias("first")
    anchor = select(
        machines.c.id.label("machine_id"),
        select(func.min(first.c.metric_name))
        .where(first.c.machine_id == machines.c.id)
        .scalar_subquery()
        .label("metric_name"),
    ).where(machines.c.id.in_(list(machine_ids)))
    pairs = anchor.cte("pairs", recursive=True)
    following = readings.alias("following")
    pairs = pairs.union_all(
        select(
            pairs.c.machine_id,
            select(func.min(following.c.metric_name))
            .where(following.c.machine_id == pairs.c.machine_id, following.c.metric_name > pairs.c.metric_name)
            .scalar_subquery(),
        ).where(pairs.c.metric_name.is_not(None))
    )
    newest = readings.alias("newest")
    newest_id = (
        select(newest.c.id)
        .where(newest.c.machine_id == pairs.c.machine_id, newest.c.metric_name == pairs.c.metric_name)
        .order_by(newest.c.ts.desc(), newest.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = await conn.execute(
        select(
            readings.c.machine_id,
            readings.c.metric_name,
            readings.c.value,
            readings.c.unit,
            readings.c.ts,
            readings.c.received_at,
        )
        .select_from(pairs.join(readings, readings.c.id == newest_id))
        .where(pairs.c.metric_name.is_not(None))
        .order_by(readings.c.machine_id, readings.c.metric_name)
    )
    found: dict[str, list[StoredReading]] = {machine_id: [] for machine_id in machine_ids}
    for row in rows:
        found[row[0]].append(StoredReading(*row))
    return found


# SQLite allows 500 terms in a compound SELECT; well below it, a statement stays short to compile and send.
_SERIES_PER_STATEMENT = 200

# PostgreSQL (shared mode: every ingest batch's refresh): one statement of fixed text for any number of series, so
# SQLAlchemy compiles it once and asyncpg prepares it once per connection. Built per batch as a UNION ALL of one
# SELECT per series (the SQLite shape below) it cost more than the per-pair state upserts it replaced: 3 rules on
# 10 machines, ~1.8 ms of CPU and ~6 ms of wall time a batch.
_POSTGRESQL_NEWEST = text(
    "SELECT s.machine_id, s.metric_name,"
    " (SELECT max(r.ts) FROM readings AS r WHERE r.machine_id = s.machine_id AND r.metric_name = s.metric_name)"
    " FROM unnest(CAST(:machine_ids AS varchar[]), CAST(:metric_names AS varchar[])) AS s (machine_id, metric_name)"
)


async def newest_of_series(conn: AsyncConnection, *, series: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The measurement time of the newest stored reading of each (machine, metric) series that has one.

    One index seek per series (`max(ts)` of one series is the last entry of its range in the readings index); a
    GROUP BY over the series would read their whole history."""
    wanted = sorted(set(series))
    found: dict[tuple[str, str], int] = {}
    if not wanted:
        return found
    if conn.dialect.name == "postgresql":
        rows = await conn.execute(
            _POSTGRESQL_NEWEST, {"machine_ids": [m for m, _ in wanted], "metric_names": [n for _, n in wanted]}
        )
        return {(machine_id, metric): ts for machine_id, metric, ts in rows if ts is not None}
    for start in range(0, len(wanted), _SERIES_PER_STATEMENT):
        chunk = wanted[start : start + _SERIES_PER_STATEMENT]
        parts = [
            select(
                literal(position, Integer),
                select(func.max(readings.c.ts))
                .where(readings.c.machine_id == machine_id, readings.c.metric_name == metric_name)
                .scalar_subquery(),
            )
            for position, (machine_id, metric_name) in enumerate(chunk)
        ]
        rows = await conn.execute(parts[0] if len(parts) == 1 else union_all(*parts))
        found.update((chunk[position], ts) for position, ts in rows if ts is not None)
    return found


async def series_before(
    conn: AsyncConnection, *, machine_id: str, metric_name: str, before: int | None, up_to: int | None, limit: int
) -> tuple[list[int], list[float]]:
    """The newest `limit` readings of one series measured before `before` (exclusive) and up to `up_to`
    (inclusive), oldest first, as (timestamps, values): what a predictive rule's detector is rebuilt from."""
    query = select(readings.c.ts, readings.c.value).where(
        readings.c.machine_id == machine_id, readings.c.metric_name == metric_name
    )
    if before is not None:
        query = query.where(readings.c.ts < before)
    if up_to is not None:
        query = query.where(readings.c.ts <= up_to)
    rows = list(await conn.execute(query.order_by(readings.c.ts.desc(), readings.c.id.desc()).limit(limit)))
    rows.reverse()
    return [row[0] for row in rows], [row[1] for row in rows]


async def series_between(
    conn: AsyncConnection, *, machine_id: str, metric_name: str, start: int, end: int, limit: int
) -> tuple[list[int], list[float]]:
    """The first `limit` readings of one series measured in [start, end), oldest first, as (timestamps, values)."""
    rows = await conn.execute(
        select(readings.c.ts, readings.c.value)
        .where(
            readings.c.machine_id == machine_id,
            readings.c.metric_name == metric_name,
            readings.c.ts >= start,
            readings.c.ts < end,
        )
        .order_by(readings.c.ts, readings.c.id)
        .limit(limit)
    )
    stamps: list[int] = []
    values: list[float] = []
    for ts, value in rows:
        stamps.append(ts)
        values.append(value)
    return stamps, values
