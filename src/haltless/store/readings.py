"""Stored sensor readings: batch insert with idempotent reading ids, latest values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.readings import Reading
from haltless.store.tables import readings


@dataclass(frozen=True, slots=True)
class StoredReading:
    machine_id: str
    metric_name: str
    value: float
    unit: str
    ts: int
    received_at: int


async def seen_reading_ids(conn: AsyncConnection, *, tenant_id: str, reading_ids: Sequence[str]) -> set[str]:
    """Which of `reading_ids` are already stored for the tenant."""
    found: set[str] = set()
    for start in range(0, len(reading_ids), 500):
        chunk = reading_ids[start : start + 500]
        rows = await conn.execute(
            select(readings.c.reading_id).where(readings.c.tenant_id == tenant_id, readings.c.reading_id.in_(chunk))
        )
        found.update(row[0] for row in rows)
    return found


async def insert_many(conn: AsyncConnection, *, tenant_id: str, batch: Sequence[Reading], received_at: int) -> None:
    """Insert a batch in the caller's transaction (executemany: one statement, many rows)."""
    if not batch:
        return
    await conn.execute(
        readings.insert(),
        [
            {
                "tenant_id": tenant_id,
                "machine_id": r.machine_id,
                "metric_name": r.metric_name,
                "value": r.value,
                "unit": r.unit,
                "ts": r.ts,
                "received_at": received_at,
                "reading_id": r.reading_id,
            }
            for r in batch
        ],
    )


async def latest_per_metric(conn: AsyncConnection, *, machine_id: str) -> list[StoredReading]:
    """The newest reading (by measurement time) of each metric of one machine."""
    ranked = (
        select(
            readings.c.machine_id,
            readings.c.metric_name,
            readings.c.value,
            readings.c.unit,
            readings.c.ts,
            readings.c.received_at,
            func.row_number()
            .over(partition_by=readings.c.metric_name, order_by=(readings.c.ts.desc(), readings.c.id.desc()))
            .label("rank"),
        )
        .where(readings.c.machine_id == machine_id)
        .subquery()
    )
    rows = await conn.execute(
        select(
            ranked.c.machine_id,
            ranked.c.metric_name,
            ranked.c.value,
            ranked.c.unit,
            ranked.c.ts,
            ranked.c.received_at,
        )
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.metric_name)
    )
    return [StoredReading(*row) for row in rows]
