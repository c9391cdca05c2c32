"""The audit trail of alert transitions (`alert_history`): appended in the transaction of each transition,
read oldest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.store.tables import alert_history


@dataclass(frozen=True, slots=True)
class Entry:
    """One transition of one alert: what happened, who did it (a user id, or "system"), when, and why."""

    tenant_id: str
    alert_id: str
    kind: str
    actor: str
    at: int  # µs
    comment: str | None = None
    details: dict[str, Any] | None = None


async def append(conn: AsyncConnection, entries: Sequence[Entry]) -> None:
    """Write entries in the caller's transaction, in the order given (ids grow with it)."""
    if not entries:
        return
    await conn.execute(
        insert(alert_history),
        [
            {
                "tenant_id": e.tenant_id,
                "alert_id": e.alert_id,
                "kind": e.kind,
                "actor": e.actor,
                "at": e.at,
                "comment": e.comment,
                "details": e.details,
            }
            for e in entries
        ],
    )


async def of_alert(conn: AsyncConnection, *, tenant_id: str, alert_id: str) -> list[Entry]:
    """An alert's entries, oldest first (another tenant's alert has none)."""
    rows = await conn.execute(
        select(alert_history)
        .where(alert_history.c.alert_id == alert_id, alert_history.c.tenant_id == tenant_id)
        .order_by(alert_history.c.id)
    )
    return [Entry(r.tenant_id, r.alert_id, r.kind, r.actor, r.at, r.comment, r.details) for r in rows]
