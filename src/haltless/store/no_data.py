"""The `no_data` watcher's question to the database when several processes share it."""

from __future__ import annotations

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.alerts import OPEN_STATES
from haltless.core.rules import Condition
from haltless.store.tables import alert_rules, alerts, machines, rule_states


async def silent_pairs(conn: AsyncConnection, *, now: int, not_before: int) -> list[tuple[str, str, str]]:
    """(tenant, rule, machine) of enabled no_data rules whose metric has been silent for `for_seconds` (counted from
    `not_before` at the earliest), on machines not in maintenance and with no open alert of the rule."""
    open_alert = exists().where(
        alerts.c.rule_id == rule_states.c.rule_id,
        alerts.c.machine_id == rule_states.c.machine_id,
        alerts.c.state.in_([s.value for s in OPEN_STATES]),
    )
    rows = await conn.execute(
        select(
            alert_rules.c.tenant_id,
            rule_states.c.rule_id,
            rule_states.c.machine_id,
            rule_states.c.seen_at,
            alert_rules.c.for_seconds,
        )
        .select_from(
            rule_states.join(alert_rules, alert_rules.c.id == rule_states.c.rule_id).join(
                machines, machines.c.id == rule_states.c.machine_id
            )
        )
        .where(
            and_(
                alert_rules.c.condition == Condition.NO_DATA.value,
                alert_rules.c.enabled.is_(True),
                rule_states.c.seen_at.is_not(None),
                machines.c.maintenance.is_(False),
                ~open_alert,
            )
        )
    )
    return [
        (tenant_id, rule_id, machine_id)
        for tenant_id, rule_id, machine_id, seen_at, for_seconds in rows
        if now - max(seen_at, not_before) >= int(for_seconds * 1_000_000)
    ]
