"""Sensor history: keyset-paged raw points and epoch-aligned buckets, computed in SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from haltless.core.history import BucketPoint, RawPoint
from haltless.store.tables import readings

# Rows per keyset query when streaming an export, and buckets per aggregate query: small enough that
# memory stays flat and no read holds the database for long, large enough that round trips don't dominate.
EXPORT_PAGE_ROWS = 10_000
EXPORT_PAGE_BUCKETS = 2000


async def _fetch_all(conn: AsyncConnection, query: Select[*tuple[Any, ...]]) -> Sequence[Sequence[Any]]:
    """All rows of a read, fetched by the bare driver.

    Hot path of history pages and exports: SQLAlchemy still builds and compiles the statement for the
    connection's dialect, but its per-row result processing cost ~30% on 10,000-row pages
    (bench/history.py); the driver's own bulk fetch returns plain tuples (asyncpg: Records) directly.
    """
    # render_postcompile: expanding parameters (IN lists) become plain placeholders the driver understands.
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    driver: Any = (await conn.get_raw_connection()).driver_connection
    if conn.dialect.name == "postgresql":
        rows: Sequence[Sequence[Any]] = await driver.fetch(str(compiled), *params)
        return rows
    rows = await driver.execute_fetchall(str(compiled), params)
    return rows


async def snapshot_id(conn: AsyncConnection) -> int:
    """The highest reading id now stored; pages bounded by it never see later arrivals."""
    value = (await conn.execute(select(func.max(readings.c.id)))).scalar()
    return int(value or 0)


def _raw_select(
    machine_id: str, metric_name: str, start_us: int, end_us: int, after: tuple[int, int] | None, upto_id: int
) -> Select[str, int, float, str, int]:
    # Columns in RawPoint's field order, so each row becomes a point with one C-level tuple copy.
    query = select(readings.c.metric_name, readings.c.ts, readings.c.value, readings.c.unit, readings.c.id).where(
        readings.c.machine_id == machine_id,
        readings.c.metric_name == metric_name,
        readings.c.ts < end_us,
        readings.c.id <= upto_id,
    )
    if after is None:
        query = query.where(readings.c.ts >= start_us)
    else:
        # `ts >= t` alone bounds the index range; the OR only trims the rows sharing the cursor's timestamp.
        ts, row_id = after
        query = query.where(readings.c.ts >= ts, (readings.c.ts > ts) | (readings.c.id > row_id))
    return query.order_by(readings.c.ts, readings.c.id)


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
    streams: list[list[RawPoint]] = []
    for name in metric_names:
        rows = await _fetch_all(conn, _raw_select(machine_id, name, start_us, end_us, after, upto_id).limit(limit))
        streams.append(list(map(RawPoint._make, rows)))
    if len(streams) == 1:
        return streams[0]
    merged = heapq.merge(*streams, key=lambda p: (p.ts, p.id))
    return [point for _, point in zip(range(limit), merged, strict=False)]


def _bucket_select(
    machine_id: str, metric_name: str, start_us: int, end_us: int, interval_us: int
) -> Select[int, float, float, float, int, float]:
    # Integer arithmetic on microseconds aligns buckets to the UTC epoch identically in SQLite and PostgreSQL.
    bucket = readings.c.ts - readings.c.ts % interval_us
    ranked = (
        select(
            bucket.label("bucket"),
            readings.c.value,
            func.row_number()
            .over(partition_by=bucket, order_by=(readings.c.ts.desc(), readings.c.id.desc()))
            .label("rank"),
        )
        .where(
            readings.c.machine_id == machine_id,
            readings.c.metric_name == metric_name,
            readings.c.ts >= start_us,
            readings.c.ts < end_us,
        )
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
        rows = await conn.execute(_bucket_select(machine_id, name, start_us, end_us, interval_us))
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
        after = (page[-1].ts, page[-1].id)


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
