"""Recurring maintenance windows, and which window put a machine into maintenance."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.maintenance_windows import Frequency, MachineView, Window
from haltless.store.tables import machines, maintenance_windows


@dataclass(frozen=True, slots=True)
class StoredWindow:
    window: Window
    name: str
    comment: str
    created_by: str
    created_at: int
    updated_at: int


def _stored(row: Any) -> StoredWindow:
    r = row._mapping
    window = Window(
        id=r["id"],
        tenant_id=r["tenant_id"],
        machine_id=r["machine_id"],
        tag=r["tag"],
        frequency=Frequency(r["frequency"]),
        days=tuple(r["days"] or ()),
        start_time=r["start_time"],
        duration_seconds=r["duration_seconds"],
        timezone=r["timezone"],
        enabled=bool(r["enabled"]),
    )
    return StoredWindow(window, r["name"], r["comment"], r["created_by"], r["created_at"], r["updated_at"])


def values_of(window: Window) -> dict[str, Any]:
    return {
        "machine_id": window.machine_id,
        "tag": window.tag,
        "frequency": window.frequency.value,
        "days": list(window.days),
        "start_time": window.start_time,
        "duration_seconds": window.duration_seconds,
        "timezone": window.timezone,
        "enabled": window.enabled,
    }


async def insert_window(conn: AsyncConnection, stored: StoredWindow) -> None:
    window = stored.window
    await conn.execute(
        insert(maintenance_windows).values(
            id=window.id,
            tenant_id=window.tenant_id,
            name=stored.name,
            comment=stored.comment,
            created_by=stored.created_by,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            **values_of(window),
        )
    )


async def update_window(conn: AsyncConnection, stored: StoredWindow) -> None:
    await conn.execute(
        update(maintenance_windows)
        .where(maintenance_windows.c.id == stored.window.id)
        .values(name=stored.name, comment=stored.comment, updated_at=stored.updated_at, **values_of(stored.window))
    )


async def delete_window(conn: AsyncConnection, window_id: str) -> None:
    await conn.execute(delete(maintenance_windows).where(maintenance_windows.c.id == window_id))


async def get_window(conn: AsyncConnection, *, tenant_id: str, window_id: str) -> StoredWindow | None:
    row = (
        await conn.execute(
            select(maintenance_windows).where(
                maintenance_windows.c.id == window_id, maintenance_windows.c.tenant_id == tenant_id
            )
        )
    ).first()
    return None if row is None else _stored(row)


async def list_windows(conn: AsyncConnection, *, tenant_id: str) -> list[StoredWindow]:
    """A tenant's windows, oldest first."""
    rows = await conn.execute(
        select(maintenance_windows)
        .where(maintenance_windows.c.tenant_id == tenant_id)
        .order_by(maintenance_windows.c.created_at, maintenance_windows.c.id)
    )
    return [_stored(row) for row in rows]


async def enabled_windows(conn: AsyncConnection) -> list[StoredWindow]:
    """Every tenant's enabled windows (the scheduler's), oldest first."""
    rows = await conn.execute(
        select(maintenance_windows)
        .where(maintenance_windows.c.enabled.is_(True))
        .order_by(maintenance_windows.c.created_at, maintenance_windows.c.id)
    )
    return [_stored(row) for row in rows]


async def machine_views(conn: AsyncConnection, tenant_ids: Iterable[str]) -> dict[str, list[MachineView]]:
    """Per tenant: the machines of `tenant_ids`, and every machine a window put into maintenance."""
    wanted = sorted(set(tenant_ids))
    condition: ColumnElement[bool] = machines.c.maintenance_window_id.is_not(None)
    if wanted:
        condition = or_(condition, machines.c.tenant_id.in_(wanted))
    rows = await conn.execute(
        select(
            machines.c.tenant_id,
            machines.c.id,
            machines.c.tags,
            machines.c.maintenance,
            machines.c.maintenance_window_id,
        ).where(condition)
    )
    views: dict[str, list[MachineView]] = defaultdict(list)
    for tenant_id, machine_id, tags, maintenance, window_id in rows:
        views[tenant_id].append(MachineView(machine_id, tuple(tags or ()), bool(maintenance), window_id))
    return views


async def set_window_owner(conn: AsyncConnection, machine_ids: Iterable[str], window_id: str | None) -> None:
    """Record which window put these machines into maintenance (None: a user decides about their maintenance)."""
    ids = sorted(set(machine_ids))
    if ids:
        await conn.execute(update(machines).where(machines.c.id.in_(ids)).values(maintenance_window_id=window_id))


def new_id() -> str:
    return str(uuid.uuid4())
