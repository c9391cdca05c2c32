"""Retention: readings older than `HALTLESS_RETENTION_DAYS` are deleted in small batches in the background."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.core.clock import Clock
from haltless.store.tables import readings

log = logging.getLogger("haltless.retention")

# One short write transaction per batch, then a pause: ingestion (one writer at a time on SQLite)
# never waits for more than one batch.
PRUNE_BATCH_ROWS = 5000
PRUNE_PAUSE_SECONDS = 0.05
PRUNE_PERIOD_SECONDS = 600.0


async def prune_readings(
    engine: AsyncEngine, *, older_than_us: int, batch_rows: int = PRUNE_BATCH_ROWS, pause: float = PRUNE_PAUSE_SECONDS
) -> int:
    """Delete readings measured before `older_than_us`, `batch_rows` per transaction; returns how many."""
    total = 0
    while True:
        # Oldest first through the ts index; ids in a subquery so the DELETE works the same on both databases.
        batch = select(readings.c.id).where(readings.c.ts < older_than_us).order_by(readings.c.ts).limit(batch_rows)
        async with engine.begin() as conn:
            deleted = (await conn.execute(delete(readings).where(readings.c.id.in_(batch.scalar_subquery())))).rowcount
        total += deleted
        if deleted < batch_rows:
            return total
        await asyncio.sleep(pause)


class RetentionPruner:
    """Retention passes: the server runs `prune_pass` at start and then every `period` seconds
    (server/service/background.py; a failed pass, e.g. the database briefly locked, is retried next period)."""

    def __init__(
        self, engine: AsyncEngine, clock: Clock, *, retention_days: float, period: float = PRUNE_PERIOD_SECONDS
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._retention_us = int(retention_days * 86_400 * 1_000_000)
        self.period = period

    async def prune_now(self) -> int:
        """One pass: delete everything older than the retention window."""
        cutoff = self._clock.now_us() - self._retention_us
        return await prune_readings(self._engine, older_than_us=cutoff)

    async def prune_pass(self) -> None:
        """`prune_now`, saying what it removed."""
        if deleted := await self.prune_now():
            log.info("retention removed %d readings", deleted)
