"""Sensor history: keyset-paged raw points and epoch-aligned buckets, computed in SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
import heapq
from collections.abc import AsyncIterator, Sequence
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from haltless.core.history import BucketPoint, RawPoint
from haltless.store.tables import readings

# Rows per keyset query when streaming an export, and buckets per aggregate query: small enough that
# memory stays flat and no read holds the database for long, large enough that round trips don't dominate.
EXPORT_PAGE_ROWS = 10_000
EXPORT_PAGE_BUCKETS = 2000


async def _fetch_all(conn: AsyncConnection, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
    """All rows of a read, fetched by the bare driver.

    Hot path of history pages and exports: SQLAlchemy's per-row result processing was a large share of a page
    (docs/benchmarks.md, "Hot-path choices"); the driver's own bulk fetch returns plain tuples (asyncpg: Records)
    directly.
    """
    driver: Any = (await conn.get_raw_connection()).driver_connection
    if conn.dialect.name == "postgresql":
        rows: Sequence[Sequence[Any]] = await driver.fetch(sql, *params)
        return rows
    rows = await driver.execute_fetchall(sql, params)
    return rows


async def snapshot_id(conn: AsyncConnection) -> int:
    """The highest reading id now stored; pages bounded by it never see later arrivals."""
    value = (await conn.execute(select(func.max(readings.c.id)))).scalar()
    return int(value or 0)


def _raw_select(resume: bool) -> Select[str, int, float, str, int]:
    # Columns in RawPoint's order: the driver's rows are the points, with no per-row conversion.
    query = select(readings.c.metric_name, readings.c.ts, readings.c.value, readings.c.unit, readings.c.id).where(
        readings.c.machine_id == bindparam("machine_id"),
        readings.c.metric_name == bindparam("metric_name"),
        readings.c.ts < bindparam("end_us"),
        readings.c.id <= bindparam("upto_id"),
    )
    if resume:
        # `ts >= t` alone bounds the index range; the OR only trims the rows sharing the cursor's timestamp.
        after_ts = bindparam("after_ts", type_=readings.c.ts.type)
        query = query.where(
            readings.c.ts >= after_ts, (readings.c.ts > after_ts) | (readings.c.id > bindparam("after_id"))
        )
    else:
        query = query.where(readings.c.ts >= bindparam("start_us"))
    return query.order_by(readings.c.ts, readings.c.id).limit(bindparam("limit"))


@functools.lru_cache(maxsize=8)
def _raw_sql(dialect: Dialect, resume: bool) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The raw-page statement in the dialect's SQL, its parameter names in placeholder order, and the values
    the compiler fixed itself (SQLite's `OFFSET 0`).

    Compiled once per dialect and shape: building and compiling it per page was a measured cost of every page.
    """
    compiled = _raw_select(resume).compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params)


async def raw_page(
    conn: AsyncConnection,
    *,
    machine_id: str,
    metric_names: Sequence[str],
    start_us: int,
    end_us: int,
    after: tuple[int, int] | None,
    upto_id: int,
    limit: int,
) -> list[RawPoint]:
    """Up to `limit` readings in [start, end) after the (ts, id) position, ordered by (ts, id), ids ≤ `upto_id`."""
    # One index-ordered query per metric, merged here: an IN over metrics would make the database sort the
    # whole range before it could apply LIMIT.
    sql, keys, fixed = _raw_sql(conn.dialect, after is not None)
    streams: list[list[RawPoint]] = []
    for name in metric_names:
        values = {
            **fixed,
            "machine_id": machine_id,
            "metric_name": name,
            "start_us": start_us,
            "end_us": end_us,
            "upto_id": upto_id,
            "after_ts": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        }
        rows = await _fetch_all(conn, sql, [values[key] for key in keys])
        streams.append(cast("list[RawPoint]", rows))
    if len(streams) == 1:
        return streams[0]
    merged = heapq.merge(*streams, key=itemgetter(1, 4))  # (ts, id)
    return [point for _, point in zip(range(limit), merged, strict=False)]


def _bucket_select(
    dialect: str, machine_id: str, metric_name: str, start_us: int, end_us: int, interval_us: int
) -> Select[int, float, float, float, int, float]:
    """Each bucket's count, mean, lowest and highest value, and last value: that of its newest reading (greatest
    ts, then id). Integer arithmetic on microseconds aligns buckets to the UTC epoch identically on both databases.

    Two shapes, each its database's cheaper one over a long range (docs/benchmarks.md, "Hot-path choices").
    SQLite groups the range's readings, then finds each bucket's last value by one index seek at the newest ts
    the grouping found: a window ranking each bucket's readings sorted all of them once more (1M readings of one
    series in 1-hour buckets: 1.07 s with it, 0.39 s; tests/store/test_history.py reads the plan). PostgreSQL
    sorts once for both the window and the grouping (the window's partitions are the groups, in order), and on the
    seek shape overestimates the buckets enough to compile the query (JIT): 8-55% slower there.
    """
    bucket = readings.c.ts - readings.c.ts % interval_us
    in_range = (
        readings.c.machine_id == machine_id,
        readings.c.metric_name == metric_name,
        readings.c.ts >= start_us,
        readings.c.ts < end_us,
    )
    if dialect == "postgresql":
        ranked = (
            select(
                bucket.label("bucket"),
                readings.c.value,
                func.row_number()
                .over(partition_by=bucket, order_by=(readings.c.ts.desc(), readings.c.id.desc()))
                .label("rank"),
            )
            .where(*in_range)
            .subquery()
        )
        return (
            select(
                ranked.c.bucket,
                func.avg(ranked.c.value),
                func.min(ranked.c.value),
                func.max(ranked.c.value),
                func.count(),
                func.max(case((ranked.c.rank == 1, ranked.c.value))),
            )
            .group_by(ranked.c.bucket)
            .order_by(ranked.c.bucket)
        )
    grouped = (
        select(
            bucket.label("bucket"),
            func.avg(readings.c.value).label("mean"),
            func.min(readings.c.value).label("low"),
            func.max(readings.c.value).label("high"),
            func.count().label("readings"),
            func.max(readings.c.ts).label("newest"),
        )
        .where(*in_range)
        .group_by(bucket)
        .subquery("grouped")
    )
    newest = readings.alias("newest")
    last = (
        select(newest.c.value)
        .where(
            newest.c.machine_id == machine_id,
            newest.c.metric_name == metric_name,
            newest.c.ts == grouped.c.newest,
        )
        .order_by(newest.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return select(grouped.c.bucket, grouped.c.mean, grouped.c.low, grouped.c.high, grouped.c.readings, last).order_by(
        grouped.c.bucket
    )


async def buckets(
    conn: AsyncConnection,
    *,
    machine_id: str,
    metric_names: Sequence[str],
    start_us: int,
    end_us: int,
    interval_us: int,
) -> list[BucketPoint]:
    """One point per metric and non-empty bucket of readings in [start, end), ordered by (bucket, metric_name)."""
    streams: list[list[BucketPoint]] = []
    for name in metric_names:
        rows = await conn.execute(_bucket_select(conn.dialect.name, machine_id, name, start_us, end_us, interval_us))
        streams.append(
            [
                BucketPoint(name, int(ts), float(avg), float(low), float(high), int(count), float(last))
                for ts, avg, low, high, count, last in rows
            ]
        )
    if len(streams) == 1:
        return streams[0]
    return list(heapq.merge(*streams, key=lambda p: (p.ts, p.metric_name)))


async def iter_raw(
    engine: AsyncEngine,
    *,
    machine_id: str,
    metric_names: Sequence[str],
    start_us: int,
    end_us: int,
    upto_id: int,
    page_rows: int = EXPORT_PAGE_ROWS,
) -> AsyncIterator[list[RawPoint]]:
    """Every reading of the query, page by page, each page its own short read (for streaming exports)."""
    after: tuple[int, int] | None = None
    while True:
        async with engine.connect() as conn:
            page = await raw_page(
                conn,
                machine_id=machine_id,
                metric_names=metric_names,
                start_us=start_us,
                end_us=end_us,
                after=after,
                upto_id=upto_id,
                limit=page_rows,
            )
        if page:
            yield page
        if len(page) < page_rows:
            return
        _, last_ts, _, _, last_id = page[-1]
        after = (last_ts, last_id)


async def iter_buckets(
    engine: AsyncEngine,
    *,
    machine_id: str,
    metric_names: Sequence[str],
    start_us: int,
    end_us: int,
    interval_us: int,
    page_buckets: int = EXPORT_PAGE_BUCKETS,
) -> AsyncIterator[list[BucketPoint]]:
    """Buckets of the query in time windows of `page_buckets` intervals (bucket-aligned, so none is split)."""
    window_start = start_us
    while window_start < end_us:
        window_end = min(end_us, (window_start // interval_us + page_buckets) * interval_us)
        async with engine.connect() as conn:
            page = await buckets(
                conn,
                machine_id=machine_id,
                metric_names=metric_names,
                start_us=window_start,
                end_us=window_end,
                interval_us=interval_us,
            )
        if page:
            yield page
        window_start = window_end
