"""Machines of a tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.models import MachineStatus
from haltless.core.readings import normalize_uuid
from haltless.errors import NotFound
from haltless.store.tables import machines


@dataclass(frozen=True, slots=True)
class Machine:
    id: str
    tenant_id: str
    name: str
    location: str | None
    tags: list[str]
    status: MachineStatus
    last_seen_at: int | None
    created_at: int
    maintenance: bool = False


def _machine(row: Any) -> Machine:
    r = row._mapping
    return Machine(
        r["id"],
        r["tenant_id"],
        r["name"],
        r["location"],
        list(r["tags"] or []),
        MachineStatus(r["status"]),
        r["last_seen_at"],
        r["created_at"],
        bool(r["maintenance"]),
    )


async def create(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    name: str,
    location: str | None,
    tags: list[str],
    now: int,
    machine_id: str | None = None,
) -> Machine:
    """A new machine (`machine_id`, or a new id); it starts `offline` until its first reading arrives."""
    machine_id = machine_id or new_id()
    machine = Machine(machine_id, tenant_id, name, location, tags, MachineStatus.OFFLINE, None, now)
    await conn.execute(
        machines.insert().values(
            id=machine.id,
            tenant_id=tenant_id,
            name=name,
            location=location,
            tags=tags,
            status=machine.status.value,
            last_seen_at=None,
            created_at=now,
            maintenance=False,
        )
    )
    return machine


async def of_tenant(conn: AsyncConnection, *, tenant_id: str, machine_id: str) -> Machine:
    """The tenant's machine `machine_id` (any UUID spelling), or NotFound: another tenant's is as unknown as none."""
    normalized = normalize_uuid(machine_id)
    machine = await get(conn, tenant_id=tenant_id, machine_id=normalized) if normalized is not None else None
    if machine is None:
        raise NotFound("machine not found")
    return machine


def new_id() -> str:
    return str(uuid.uuid4())


async def named(conn: AsyncConnection, *, tenant_id: str, name: str) -> Machine | None:
    """The tenant's machine called `name` (names are unique per tenant)."""
    row = (
        await conn.execute(select(machines).where(machines.c.tenant_id == tenant_id, machines.c.name == name))
    ).first()
    return _machine(row) if row else None


async def get(conn: AsyncConnection, *, tenant_id: str, machine_id: str) -> Machine | None:
    row = (
        await conn.execute(select(machines).where(machines.c.id == machine_id, machines.c.tenant_id == tenant_id))
    ).first()
    return _machine(row) if row else None


async def list_page(conn: AsyncConnection, *, tenant_id: str, limit: int, offset: int) -> tuple[list[Machine], int]:
    """One page of machines ordered by name, and the total count."""
    rows = await conn.execute(
        select(machines)
        .where(machines.c.tenant_id == tenant_id)
        .order_by(machines.c.name, machines.c.id)
        .limit(limit)
        .offset(offset)
    )
    total = (
        await conn.execute(select(func.count()).select_from(machines).where(machines.c.tenant_id == tenant_id))
    ).scalar_one()
    return [_machine(row) for row in rows], int(total)


async def update_fields(
    conn: AsyncConnection, *, tenant_id: str, machine_id: str, values: dict[str, Any]
) -> Machine | None:
    if values:
        await conn.execute(
            update(machines).where(machines.c.id == machine_id, machines.c.tenant_id == tenant_id).values(**values)
        )
    return await get(conn, tenant_id=tenant_id, machine_id=machine_id)


async def remove(conn: AsyncConnection, *, tenant_id: str, machine_id: str) -> bool:
    result = await conn.execute(delete(machines).where(machines.c.id == machine_id, machines.c.tenant_id == tenant_id))
    return result.rowcount == 1


async def existing_ids(conn: AsyncConnection, *, tenant_id: str, machine_ids: Iterable[str]) -> set[str]:
    """Which of `machine_ids` are machines of `tenant_id` (another tenant's id counts as unknown)."""
    wanted = list(set(machine_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = await conn.execute(
            select(machines.c.id).where(machines.c.tenant_id == tenant_id, machines.c.id.in_(chunk))
        )
        found.update(row[0] for row in rows)
    return found


# The statement of mark_seen on SQLite: one statement for any number of machines (their ids as a JSON array),
# so SQLite runs it in one step; an executemany would take the GIL back between machines (see
# store/readings.py on why that hurts while the event loop is busy).
_SQLITE_MARK_SEEN = (
    "UPDATE machines SET last_seen_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))"
    " AND (last_seen_at IS NULL OR last_seen_at < ?1)"
)


_POSTGRESQL_MARK_SEEN = text(
    "UPDATE machines SET last_seen_at = :seen WHERE id = ANY(:ids) AND (last_seen_at IS NULL OR last_seen_at < :seen)"
)


def sqlite_mark_seen(machine_ids: Iterable[str], seen: int) -> tuple[str, tuple[int, str], bool]:
    """mark_seen's statement on SQLite as (sql, parameters, executemany?), for a caller that runs it itself."""
    return _SQLITE_MARK_SEEN, (seen, orjson.dumps(sorted(set(machine_ids))).decode()), False


async def mark_seen(conn: AsyncConnection, *, machine_ids: Iterable[str], seen: int) -> None:
    """Advance `last_seen_at` (arrival time of the newest reading) of the machines, in one round trip."""
    wanted = sorted(set(machine_ids))
    if conn.dialect.name == "sqlite":
        # Hot path (every ingest batch, bench M4): SQLAlchemy building and compiling the IN-list UPDATE cost
        # ten times the statement. It runs on the connection of the caller's transaction all the same.
        if not conn.in_transaction():
            raise RuntimeError("mark_seen needs a transaction")
        driver: Any = (await conn.get_raw_connection()).driver_connection
        await driver.execute(*sqlite_mark_seen(wanted, seen)[:2])
        return
    if conn.dialect.name == "postgresql":
        # Hot path too: one statement of fixed text for any number of machines, so SQLAlchemy compiles it once
        # and asyncpg prepares it once per connection (the IN-list UPDATE below was built, compiled and
        # expanded anew every batch: ~0.3 ms of the event loop's ~4.5 ms a batch).
        await conn.execute(_POSTGRESQL_MARK_SEEN, {"seen": seen, "ids": wanted})
        return
    for start in range(0, len(wanted), 500):
        await conn.execute(
            update(machines)
            .where(
                machines.c.id.in_(wanted[start : start + 500]),
                (machines.c.last_seen_at.is_(None)) | (machines.c.last_seen_at < seen),
            )
            .values(last_seen_at=seen)
        )
