"""The unit of each (machine, metric), fixed by the first reading that states one (see core/units.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.units import UnitKey
from haltless.store.tables import metric_units


async def known_units(conn: AsyncConnection, *, keys: Iterable[UnitKey]) -> dict[UnitKey, str]:
    """The stored unit of each of the (machine, metric) pairs that has one."""
    wanted = sorted(set(keys))
    found: dict[UnitKey, str] = {}
    for start in range(0, len(wanted), 400):
        chunk = wanted[start : start + 400]
        rows = await conn.execute(
            select(metric_units.c.machine_id, metric_units.c.metric_name, metric_units.c.unit).where(
                tuple_(metric_units.c.machine_id, metric_units.c.metric_name).in_(chunk)
            )
        )
        found.update(((machine_id, metric), unit) for machine_id, metric, unit in rows)
    return found


async def register(conn: AsyncConnection, *, units: Mapping[UnitKey, str]) -> None:
    """Store new units in the caller's transaction; a pair another writer stored first raises IntegrityError."""
    if units:
        await conn.execute(
            metric_units.insert(),
            [{"machine_id": m, "metric_name": metric, "unit": unit} for (m, metric), unit in units.items()],
        )


async def units_of_machine(conn: AsyncConnection, *, machine_id: str) -> dict[str, str]:
    """Metric name → unit of one machine."""
    rows = await conn.execute(
        select(metric_units.c.metric_name, metric_units.c.unit).where(metric_units.c.machine_id == machine_id)
    )
    return {metric: unit for metric, unit in rows}
