"""Alert rules, alerts, and the rule engine's persisted state."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, tuple_, union, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.alerts import OPEN_STATES
from haltless.core.alerts import AlertState as AlertState  # re-exported: its home is core.alerts
from haltless.core.alerts import StoredAlert as StoredAlert
from haltless.core.rules import IDLE, Condition, Rule, RuleKind, RuleState, Severity
from haltless.store.tables import alert_rules, alerts, machines, readings, rule_states, tenants


def _rule(row: Any) -> Rule:
    r = row._mapping
    return Rule(
        id=r["id"],
        tenant_id=r["tenant_id"],
        name=r["name"],
        metric_name=r["metric_name"],
        machine_id=r["machine_id"],
        condition=Condition(r["condition"]),
        threshold=r["threshold"],
        severity=Severity(r["severity"]),
        for_seconds=r["for_seconds"],
        hysteresis=r["hysteresis"],
        enabled=bool(r["enabled"]),
        message=r["message"],
        kind=RuleKind(r["kind"]),
        sensitivity=r["sensitivity"],
        horizon_seconds=r["horizon_seconds"],
        window_readings=r["window_readings"],
        flap_threshold=r["flap_threshold"],
        flap_window_seconds=r["flap_window_seconds"],
    )


def _alert(row: Any) -> StoredAlert:
    r = row._mapping
    return StoredAlert(
        r["id"],
        r["tenant_id"],
        r["rule_id"],
        r["machine_id"],
        r["metric_name"],
        Severity(r["severity"]),
        r["message"],
        r["metric_value"],
        r["threshold_value"],
        AlertState(r["state"]),
        r["created_at"],
        r["acknowledged_at"],
        r["acknowledged_by"],
        r["resolved_at"],
        r["resolved_by"],
        r["resolution"],
        r["predicted_crossing_at"],
        r["acknowledge_comment"],
        r["shelved_until"],
        bool(r["flapping"]),
    )


def rule_values(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "tenant_id": rule.tenant_id,
        "name": rule.name,
        "metric_name": rule.metric_name,
        "machine_id": rule.machine_id,
        "condition": rule.condition.value,
        "threshold": rule.threshold,
        "severity": rule.severity.value,
        "for_seconds": rule.for_seconds,
        "hysteresis": rule.hysteresis,
        "enabled": rule.enabled,
        "message": rule.message,
        "kind": rule.kind.value,
        "sensitivity": rule.sensitivity,
        "horizon_seconds": rule.horizon_seconds,
        "window_readings": rule.window_readings,
        "flap_threshold": rule.flap_threshold,
        "flap_window_seconds": rule.flap_window_seconds,
    }


async def insert_rule(conn: AsyncConnection, rule: Rule, now: int) -> None:
    await conn.execute(insert(alert_rules).values(**rule_values(rule), created_at=now, updated_at=now))


async def replace_rule(conn: AsyncConnection, rule: Rule, now: int) -> None:
    values = rule_values(rule)
    del values["id"], values["tenant_id"]
    await conn.execute(update(alert_rules).where(alert_rules.c.id == rule.id).values(**values, updated_at=now))


async def delete_rule(conn: AsyncConnection, rule_id: str) -> None:
    await conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id))


async def raise_rules_revision(conn: AsyncConnection, tenant_id: str) -> None:
    """Mark the tenant's rules changed, in the transaction that changes them (shared mode reloads on a new value)."""
    await conn.execute(
        update(tenants).where(tenants.c.id == tenant_id).values(rules_revision=tenants.c.rules_revision + 1)
    )


async def rules_revision(conn: AsyncConnection, tenant_id: str) -> int | None:
    """The tenant's `rules_revision` (None: no such tenant)."""
    query = select(tenants.c.rules_revision).where(tenants.c.id == tenant_id)
    value: int | None = (await conn.execute(query)).scalar_one_or_none()
    return value


async def get_rule(conn: AsyncConnection, *, tenant_id: str, rule_id: str) -> tuple[Rule, int, int] | None:
    row = (
        await conn.execute(select(alert_rules).where(alert_rules.c.id == rule_id, alert_rules.c.tenant_id == tenant_id))
    ).first()
    if row is None:
        return None
    return _rule(row), row._mapping["created_at"], row._mapping["updated_at"]


async def list_rules(conn: AsyncConnection, *, tenant_id: str) -> list[tuple[Rule, int, int]]:
    rows = await conn.execute(
        select(alert_rules)
        .where(alert_rules.c.tenant_id == tenant_id)
        .order_by(alert_rules.c.created_at, alert_rules.c.id)
    )
    return [(_rule(row), row._mapping["created_at"], row._mapping["updated_at"]) for row in rows]


async def all_rules(conn: AsyncConnection) -> list[Rule]:
    return [_rule(row) for row in await conn.execute(select(alert_rules))]


async def rules_of_tenant(conn: AsyncConnection, tenant_id: str) -> list[Rule]:
    return [_rule(row) for row in await conn.execute(select(alert_rules).where(alert_rules.c.tenant_id == tenant_id))]


async def insert_alert(conn: AsyncConnection, alert: StoredAlert) -> None:
    await conn.execute(
        insert(alerts).values(
            id=alert.id,
            tenant_id=alert.tenant_id,
            rule_id=alert.rule_id,
            machine_id=alert.machine_id,
            metric_name=alert.metric_name,
            severity=alert.severity.value,
            message=alert.message,
            metric_value=alert.metric_value,
            threshold_value=alert.threshold_value,
            state=alert.state,
            created_at=alert.created_at,
            predicted_crossing_at=alert.predicted_crossing_at,
            flapping=alert.flapping,
        )
    )


async def update_prediction(conn: AsyncConnection, alert_id: str, *, message: str, predicted_crossing_at: int) -> None:
    """An open forecast alert's prediction moved: its message and predicted crossing time follow."""
    await conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.state.in_(OPEN_STATES))
        .values(message=message, predicted_crossing_at=predicted_crossing_at)
    )


async def resolve_alert(conn: AsyncConnection, alert_id: str, *, at: int, by: str | None, resolution: str) -> None:
    await conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.state.in_(OPEN_STATES))
        .values(state=AlertState.RESOLVED, resolved_at=at, resolved_by=by, resolution=resolution)
    )


async def acknowledge_alert(
    conn: AsyncConnection, alert_id: str, *, at: int, by: str, comment: str | None = None
) -> None:
    await conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.state == AlertState.ACTIVE)
        .values(state=AlertState.ACKNOWLEDGED, acknowledged_at=at, acknowledged_by=by, acknowledge_comment=comment)
    )


async def shelve_alert(conn: AsyncConnection, alert_id: str, *, until: int | None) -> None:
    """Shelve an open alert until `until` (µs), or take it off the shelf (None)."""
    await conn.execute(
        update(alerts).where(alerts.c.id == alert_id, alerts.c.state.in_(OPEN_STATES)).values(shelved_until=until)
    )


async def set_severity(conn: AsyncConnection, alert_id: str, severity: str) -> None:
    """An escalation raised an open alert's severity."""
    await conn.execute(
        update(alerts).where(alerts.c.id == alert_id, alerts.c.state.in_(OPEN_STATES)).values(severity=severity)
    )


async def shelved_until(conn: AsyncConnection, alert_ids: Iterable[str], now: int) -> dict[str, int]:
    """Of these alerts, the ones shelved at `now`: alert id -> until when (µs)."""
    wanted = sorted(set(alert_ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(alerts.c.id, alerts.c.shelved_until).where(alerts.c.id.in_(wanted), alerts.c.shelved_until > now)
    )
    return {row.id: row.shelved_until for row in rows}


async def get_alert(conn: AsyncConnection, *, tenant_id: str, alert_id: str) -> StoredAlert | None:
    row = (await conn.execute(select(alerts).where(alerts.c.id == alert_id, alerts.c.tenant_id == tenant_id))).first()
    return _alert(row) if row else None


async def open_alerts(conn: AsyncConnection, machine_ids: set[str] | None = None) -> list[StoredAlert]:
    """Open alerts, of every machine or of the given ones."""
    query = select(alerts).where(alerts.c.state.in_(OPEN_STATES))
    if machine_ids is not None:
        if not machine_ids:
            return []
        query = query.where(alerts.c.machine_id.in_(sorted(machine_ids)))
    return [_alert(row) for row in await conn.execute(query)]


async def list_alerts(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    states: Iterable[str] | None,
    machine_id: str | None,
    severity: str | None,
    rule_id: str | None,
    after: tuple[int, str] | None,
    limit: int,
    created_from: int | None = None,
    created_before: int | None = None,
) -> list[StoredAlert]:
    """Newest first, keyset-paginated on (created_at, id); optionally opened in [created_from, created_before)."""
    query = select(alerts).where(alerts.c.tenant_id == tenant_id)
    if created_from is not None:
        query = query.where(alerts.c.created_at >= created_from)
    if created_before is not None:
        query = query.where(alerts.c.created_at < created_before)
    if states is not None:
        query = query.where(alerts.c.state.in_(list(states)))
    if machine_id is not None:
        query = query.where(alerts.c.machine_id == machine_id)
    if severity is not None:
        query = query.where(alerts.c.severity == severity)
    if rule_id is not None:
        query = query.where(alerts.c.rule_id == rule_id)
    if after is not None:
        created, last_id = after
        query = query.where(
            or_(alerts.c.created_at < created, and_(alerts.c.created_at == created, alerts.c.id < last_id))
        )
    rows = await conn.execute(query.order_by(alerts.c.created_at.desc(), alerts.c.id.desc()).limit(limit))
    return [_alert(row) for row in rows]


async def load_rule_states(
    conn: AsyncConnection, machine_ids: set[str] | None = None
) -> dict[tuple[str, str], RuleState]:
    """Persisted (rule, machine) states, of every machine or of the given ones."""
    query = select(rule_states)
    if machine_ids is not None:
        if not machine_ids:
            return {}
        query = query.where(rule_states.c.machine_id.in_(sorted(machine_ids)))
    rows = await conn.execute(query)
    return {
        (r.rule_id, r.machine_id): RuleState(
            breach_since=r.breach_since,
            last_ts=r.last_ts,
            armed=bool(r.armed),
            flap_fires=tuple(r.flap_fires or ()),
            flapping=bool(r.flapping),
            calm_since=r.calm_since,
            seen_at=r.seen_at,
        )
        for r in rows
    }


async def newest_per_series(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """For every (machine, metric) series a rule watches: the measurement time of its newest stored reading, one
    index lookup per series (start-up).

    Per series, not per (rule, machine) pair: with 100 rules on 1,000 machines that was 100,000 lookups for
    4,000 series (docs/benchmarks.md, "Start-up"). Tenant-wide rules are reduced to their distinct metrics
    before they meet the machines, so the rows grow with machines × metrics, not machines × rules."""
    wide = (
        select(alert_rules.c.tenant_id, alert_rules.c.metric_name)
        .where(alert_rules.c.machine_id.is_(None))
        .distinct()
        .subquery()
    )
    series = union(
        select(machines.c.id.label("machine_id"), wide.c.metric_name).join_from(
            wide, machines, machines.c.tenant_id == wide.c.tenant_id
        ),
        select(alert_rules.c.machine_id, alert_rules.c.metric_name).where(alert_rules.c.machine_id.is_not(None)),
    ).subquery()
    newest = (
        select(func.max(readings.c.ts))
        .where(readings.c.machine_id == series.c.machine_id, readings.c.metric_name == series.c.metric_name)
        .scalar_subquery()
    )
    rows = await conn.execute(select(series.c.machine_id, series.c.metric_name, newest))
    return {(machine_id, metric): ts for machine_id, metric, ts in rows if ts is not None}


async def save_rule_states(conn: AsyncConnection, states: dict[tuple[str, str], RuleState]) -> None:
    """Upsert the given (rule, machine) states in one statement; an IDLE one (nothing pending) is deleted instead:
    no row means idle, so only the pairs with something to remember have one."""
    idle = [key for key, state in states.items() if state == IDLE]
    if idle:
        for start in range(0, len(idle), 400):
            chunk = idle[start : start + 400]
            await conn.execute(
                delete(rule_states).where(tuple_(rule_states.c.rule_id, rule_states.c.machine_id).in_(chunk))
            )
        states = {key: state for key, state in states.items() if state != IDLE}
    if not states:
        return
    rows = [
        {
            "rule_id": rule_id,
            "machine_id": machine_id,
            "breach_since": state.breach_since,
            "last_ts": state.last_ts if state.last_ts is not None else 0,
            "armed": state.armed,
            "flap_fires": list(state.flap_fires) if state.flap_fires else None,
            "flapping": state.flapping,
            "calm_since": state.calm_since,
            "seen_at": state.seen_at,
        }
        for (rule_id, machine_id), state in states.items()
    ]
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(rule_states)
    statement = statement.on_conflict_do_update(
        index_elements=[rule_states.c.rule_id, rule_states.c.machine_id],
        set_={
            "breach_since": statement.excluded.breach_since,
            "last_ts": statement.excluded.last_ts,
            "armed": statement.excluded.armed,
            "flap_fires": statement.excluded.flap_fires,
            "flapping": statement.excluded.flapping,
            "calm_since": statement.excluded.calm_since,
            "seen_at": statement.excluded.seen_at,
        },
    )
    await conn.execute(statement, rows)


async def delete_rule_states(conn: AsyncConnection, rule_id: str) -> None:
    await conn.execute(delete(rule_states).where(rule_states.c.rule_id == rule_id))


async def set_machine_status(conn: AsyncConnection, changes: Mapping[str, str]) -> None:
    for machine_id, status in changes.items():
        await conn.execute(update(machines).where(machines.c.id == machine_id).values(status=status))


async def set_maintenance(conn: AsyncConnection, machine_id: str, maintenance: bool) -> None:
    await conn.execute(update(machines).where(machines.c.id == machine_id).values(maintenance=maintenance))


async def machine_health_rows(
    conn: AsyncConnection, *, tenant_id: str | None = None, machine_ids: set[str] | None = None
) -> list[tuple[str, str, str, bool, int | None]]:
    """(id, tenant_id, status, maintenance, last_seen_at) of every machine, or of a tenant's, or of some."""
    query = select(
        machines.c.id, machines.c.tenant_id, machines.c.status, machines.c.maintenance, machines.c.last_seen_at
    )
    if tenant_id is not None:
        query = query.where(machines.c.tenant_id == tenant_id)
    if machine_ids is not None:
        if not machine_ids:
            return []
        query = query.where(machines.c.id.in_(sorted(machine_ids)))
    return [(r[0], r[1], r[2], bool(r[3]), r[4]) for r in await conn.execute(query)]


async def machines_due_offline(conn: AsyncConnection, *, deadline: int) -> list[tuple[str, str]]:
    """(tenant_id, machine_id) of machines not yet offline whose last reading arrived at or before `deadline`."""
    rows = await conn.execute(
        select(machines.c.tenant_id, machines.c.id).where(
            machines.c.last_seen_at <= deadline,
            machines.c.status.not_in(("offline", "maintenance")),
            machines.c.maintenance.is_(False),
        )
    )
    return [(r[0], r[1]) for r in rows]


def new_id() -> str:
    return str(uuid.uuid4())
