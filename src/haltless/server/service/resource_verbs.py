"""One helper per verb for a tenant's configured resources (channels, policies, silences, maintenance windows).

A route says what is particular to its resource (how to read, store and delete one, and what a change is); the
steps every such route shares (a 404 for an unknown or malformed id, the write transaction) are here, for the
CLI too (through service/notification_config.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from haltless.core.readings import normalize_uuid
from haltless.errors import NotFound
from haltless.store.database import begin_write

_T = TypeVar("_T")


def parse_id(value: str, what: str) -> str:
    """The canonical form of a UUID in a path; a 404 for anything else (no such `what` can have it)."""
    normalized = normalize_uuid(value)
    if normalized is None:
        raise NotFound(f"{what} not found")
    return normalized


@dataclass(frozen=True, slots=True)
class Resource(Generic[_T]):
    """What the verb helpers need to know of a kind of resource."""

    # Its name in answers: "channel not found".
    what: str
    # One of a tenant's, or None: (conn, tenant_id, id).
    read: Callable[[AsyncConnection, str, str], Awaitable[_T | None]]
    # Store a changed one; delete one.
    update: Callable[[AsyncConnection, _T], Awaitable[None]]
    delete: Callable[[AsyncConnection, _T], Awaitable[None]]


async def write(engine: AsyncEngine, action: Callable[[AsyncConnection], Awaitable[None]]) -> None:
    """Run `action` in a write transaction."""
    async with engine.begin() as conn:
        await begin_write(conn)
        await action(conn)


async def get(engine: AsyncEngine, resource: Resource[_T], tenant_id: str, raw_id: str) -> _T:
    """The tenant's resource with this id, or 404."""
    item_id = parse_id(raw_id, resource.what)
    async with engine.connect() as conn:
        found = await resource.read(conn, tenant_id, item_id)
    if found is None:
        raise NotFound(f"{resource.what} not found")
    return found


async def patch(
    engine: AsyncEngine, resource: Resource[_T], tenant_id: str, raw_id: str, change: Callable[[_T], Awaitable[_T]]
) -> _T:
    """The tenant's resource (or 404), changed by `change` and stored; returns it as stored."""
    changed = await change(await get(engine, resource, tenant_id, raw_id))
    await write(engine, lambda conn: resource.update(conn, changed))
    return changed


async def delete(engine: AsyncEngine, resource: Resource[_T], tenant_id: str, raw_id: str) -> None:
    """Delete the tenant's resource (or 404)."""
    found = await get(engine, resource, tenant_id, raw_id)
    await write(engine, lambda conn: resource.delete(conn, found))
