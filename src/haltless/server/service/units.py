"""The units of the metrics, remembered: checks each ingest batch against them (core/units.py decides)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.readings import Reading
from haltless.core.units import UnitCheck, UnitKey, check_units, triples_of
from haltless.store import units as unit_store

# Far beyond a fleet's (machine, metric) pairs; past it the memory starts over (the database stays the truth).
MAX_REMEMBERED_UNITS = 1_000_000


class UnitBook:
    """A metric's unit never changes once stored (machine ids are never reused), so memory may keep it."""

    def __init__(self) -> None:
        self._units: dict[UnitKey, str] = {}

    async def check(
        self,
        conn: AsyncConnection,
        batch: Sequence[Reading],
        *,
        trust_memory: bool,
        before_reads: Callable[[], Awaitable[None]] | None = None,
    ) -> UnitCheck:
        """Split the batch by unit; its `new_units` go into the plan, which registers them (server/service/changes.py).
        `before_reads` is awaited before a query (the change's write lock)."""
        if not batch:
            return UnitCheck([])
        triples = triples_of(batch)
        keys = {(machine_id, metric) for machine_id, metric, _ in triples}
        known = {key: self._units[key] for key in keys if key in self._units} if trust_memory else {}
        missing = keys - known.keys()
        if missing:
            if before_reads is not None:
                await before_reads()
            found = await unit_store.known_units(conn, keys=missing)
            # A pair with no unit yet is remembered as "" too, so a fleet that sends no units costs no query per
            # batch. Should another process register one meanwhile, a reading in another unit tries to register
            # its own, the database refuses it, and the batch is retried against the database.
            known.update({key: found.get(key, "") for key in missing})
            self._remember(known)
        return check_units(batch, known, triples)

    def committed(self, units: dict[UnitKey, str]) -> None:
        """A change that registered `units` committed: they are stored (called by the unit of work only)."""
        if units:
            self._remember(units)

    def _remember(self, units: dict[UnitKey, str]) -> None:
        if len(self._units) + len(units) > MAX_REMEMBERED_UNITS:
            self._units.clear()
        self._units.update(units)
