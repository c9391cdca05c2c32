"""Alert rules (admin writes, everyone reads) and alerts (operators acknowledge and resolve)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.alerts import OPEN_STATES, StoredAlert
from haltless.core.anomaly import Sensitivity
from haltless.core.fleet import Fleet
from haltless.core.models import Principal
from haltless.core.plan import Plan
from haltless.core.planners import alerts as alert_planner
from haltless.core.planners import lifecycle, no_data
from haltless.core.planners import rules as rule_planner
from haltless.core.predictive import KIND_FIELDS, kind_error
from haltless.core.readings import normalize_uuid
from haltless.core.rules import Condition, Rule, RuleKind, Severity
from haltless.core.timefmt import TimestampError, format_micros, parse_timestamp, to_micros
from haltless.errors import InvalidRequest, NotFound
from haltless.server.http.security import Admin, Operator, State, Viewer
from haltless.server.schemas.alerts import (
    AlertActionIn,
    AlertHistoryEntryOut,
    AlertOut,
    AlertPage,
    AlertRuleCreate,
    AlertRuleOut,
    AlertRuleUpdate,
    AlertShelveIn,
)
from haltless.server.state import AppState
from haltless.store import accounts, machines
from haltless.store import alert_history as history_store
from haltless.store import alerts as alert_store

# A user's action on an alert, bound to its user and input: (fleet, the alert as read, now) -> (plan, the alert after).
AlertPlanner = Callable[[Fleet, StoredAlert | None, int], tuple[Plan, StoredAlert]]

rules_router = APIRouter(prefix="/api/v1/alert-rules", tags=["alert rules"])
alerts_router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


def _rule_out(rule: Rule, created_at: int, updated_at: int) -> AlertRuleOut:
    return AlertRuleOut(
        id=rule.id,
        name=rule.name,
        metric_name=rule.metric_name,
        machine_id=rule.machine_id,
        kind=rule.kind,
        # An anomaly rule stores `score >= the sensitivity's threshold` there; it is not the client's to see.
        condition=None if rule.kind is RuleKind.ANOMALY else rule.condition,
        threshold=None if rule.kind is RuleKind.ANOMALY or rule.condition is Condition.NO_DATA else rule.threshold,
        sensitivity=Sensitivity(rule.sensitivity) if rule.sensitivity else None,
        horizon_seconds=rule.horizon_seconds,
        window_readings=rule.window_readings,
        severity=rule.severity,
        for_seconds=rule.for_seconds,
        hysteresis=rule.hysteresis,
        enabled=rule.enabled,
        message=rule.message,
        flap_threshold=rule.flap_threshold,
        flap_window_seconds=rule.flap_window_seconds,
        created_at=format_micros(created_at),
        updated_at=format_micros(updated_at),
    )


def _time(value: int | None) -> str | None:
    return format_micros(value) if value is not None else None


def _alert_out(alert: StoredAlert) -> AlertOut:
    return AlertOut(
        id=alert.id,
        rule_id=alert.rule_id,
        machine_id=alert.machine_id,
        metric_name=alert.metric_name,
        severity=alert.severity,
        message=alert.message,
        metric_value=alert.metric_value,
        threshold_value=alert.threshold_value,
        state=alert.state,
        created_at=format_micros(alert.created_at),
        acknowledged_at=_time(alert.acknowledged_at),
        acknowledged_by=alert.acknowledged_by,
        resolved_at=_time(alert.resolved_at),
        resolved_by=alert.resolved_by,
        resolution=alert.resolution,
        predicted_crossing_at=_time(alert.predicted_crossing_at),
        acknowledge_comment=alert.acknowledge_comment,
        shelved_until=_time(alert.shelved_until),
        flapping=alert.flapping,
    )


async def _machine_of_tenant(conn: AsyncConnection, tenant_id: str, machine_id: str | None) -> str | None:
    """The canonical id of a machine of the tenant; another tenant's machine is as unknown as none."""
    if machine_id is None:
        return None
    try:
        return (await machines.of_tenant(conn, tenant_id=tenant_id, machine_id=machine_id)).id
    except NotFound:
        # A body field, so 422 (the API contract documents no 404 here; tests/test_alerts.py holds it).
        raise InvalidRequest("machine_id: no such machine in this tenant") from None


async def _rule(conn: AsyncConnection, tenant_id: str, rule_id: str) -> tuple[Rule, int, int]:
    normalized = normalize_uuid(rule_id)
    found = None
    if normalized is not None:
        found = await alert_store.get_rule(conn, tenant_id=tenant_id, rule_id=normalized)
    if found is None:
        raise NotFound("alert rule not found")
    return found


def _with_kind(rule: Rule) -> Rule:
    """An anomaly rule is stored as `score >= the sensitivity's threshold` (the columns are not nullable)."""
    if rule.kind is not RuleKind.ANOMALY:
        return rule
    sensitivity = Sensitivity(rule.sensitivity or Sensitivity.MEDIUM)
    return replace(rule, sensitivity=sensitivity.value, condition=Condition.GE, threshold=sensitivity.threshold)


@rules_router.post("", status_code=201, response_model=AlertRuleOut)
async def create_rule(body: AlertRuleCreate, principal: Admin, state: State) -> AlertRuleOut:
    """Create a rule; it applies to readings that arrive from now on (anomaly and forecast rules learn from the
    stored history of their metric)."""
    error = no_data.rule_error(body.kind, body.condition, body.threshold is not None, body.for_seconds)
    if error is None and body.condition is not Condition.NO_DATA:
        fields = {name: getattr(body, name) for name in KIND_FIELDS}
        error = kind_error(body.kind, fields, creating=True, hysteresis=body.hysteresis)
    if error:
        raise InvalidRequest(error)
    async with state.changes.for_tenant(principal.tenant_id, (), refresh=False) as tx:
        rule = _with_kind(
            Rule(
                id=alert_store.new_id(),
                tenant_id=principal.tenant_id,
                name=body.name,
                metric_name=body.metric_name,
                machine_id=await _machine_of_tenant(tx.conn, principal.tenant_id, body.machine_id),
                condition=body.condition or Condition.GE,
                threshold=body.threshold if body.threshold is not None else 0.0,
                severity=body.severity,
                for_seconds=body.for_seconds,
                hysteresis=body.hysteresis,
                enabled=body.enabled,
                message=body.message,
                kind=body.kind,
                sensitivity=body.sensitivity.value if body.sensitivity else None,
                horizon_seconds=body.horizon_seconds,
                window_readings=body.window_readings,
                flap_threshold=body.flap_threshold,
                flap_window_seconds=body.flap_window_seconds,
            )
        )
        tx.apply(rule_planner.plan_create(tx.fleet, rule, tx.now_us))
    return _rule_out(rule, tx.now_us, tx.now_us)


@rules_router.get("", response_model=list[AlertRuleOut])
async def list_rules(principal: Viewer, state: State) -> list[AlertRuleOut]:
    """Every rule of the tenant, oldest first."""
    async with state.engine.connect() as conn:
        return [_rule_out(*row) for row in await alert_store.list_rules(conn, tenant_id=principal.tenant_id)]


@rules_router.get("/{rule_id}", response_model=AlertRuleOut)
async def get_rule(rule_id: str, principal: Viewer, state: State) -> AlertRuleOut:
    async with state.engine.connect() as conn:
        return _rule_out(*await _rule(conn, principal.tenant_id, rule_id))


@rules_router.patch("/{rule_id}", response_model=AlertRuleOut)
async def update_rule(rule_id: str, body: AlertRuleUpdate, principal: Admin, state: State) -> AlertRuleOut:
    """Edit a rule. Changing what it means (metric, machine, condition, threshold, severity, for_seconds,
    hysteresis, sensitivity, horizon_seconds, window_readings) or disabling it resolves its open alerts; name and
    message edits keep them. The kind cannot change."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    # The rule is read inside the change: two concurrent edits of one rule both take effect.
    async with state.changes.for_tenant(principal.tenant_id) as tx:
        old, created_at, _ = await _rule(tx.conn, principal.tenant_id, rule_id)
        kind = changes.pop("kind", old.kind)
        if kind != old.kind:
            raise InvalidRequest(f"kind: cannot change ({old.kind.value}); delete the rule and create a {kind} rule")
        hysteresis = changes.get("hysteresis")
        error = kind_error(
            old.kind,
            {name: changes[name] for name in KIND_FIELDS if name in changes},
            creating=False,
            hysteresis=old.hysteresis if hysteresis is None else hysteresis,
        )
        if error:
            raise InvalidRequest(error)
        for required in (
            "name",
            "metric_name",
            "condition",
            "threshold",
            "severity",
            "for_seconds",
            "hysteresis",
            "enabled",
        ):
            if required in changes and changes[required] is None:
                raise InvalidRequest(f"{required}: may not be null")
        if "machine_id" in changes:
            changes["machine_id"] = await _machine_of_tenant(tx.conn, principal.tenant_id, changes["machine_id"])
        if "flap_window_seconds" in changes and changes["flap_window_seconds"] is None:
            raise InvalidRequest("flap_window_seconds: may not be null")
        new = _with_kind(replace(old, **changes))
        error = no_data.update_error(old, new, changes.get("threshold") is not None)
        if error:
            raise InvalidRequest(error)
        tx.apply(rule_planner.plan_update(tx.fleet, old, new, tx.now_us))
    return _rule_out(new, created_at, tx.now_us)


@rules_router.delete("/{rule_id}", status_code=204, response_class=Response)
async def delete_rule(rule_id: str, principal: Admin, state: State) -> Response:
    """Delete a rule; its open alerts are resolved (`rule_deleted`) and stay in the alert history."""
    async with state.changes.for_tenant(principal.tenant_id) as tx:
        rule, _, _ = await _rule(tx.conn, principal.tenant_id, rule_id)
        tx.apply(rule_planner.plan_delete(tx.fleet, rule, tx.now_us))
    return Response(status_code=204)


StateFilter = Literal["active", "acknowledged", "resolved", "open"]
# The alert list's cursor: (created_at, id) of the last alert of the previous page, signed (core/cursors.py).
ALERTS_CURSOR = "alerts/1"


AlertStateQuery = Annotated[StateFilter | None, Query(alias="state", description="open = active or acknowledged")]
CreatedFrom = Annotated[str | None, Query(description="Alerts opened at or after this time (ISO 8601, Z or offset).")]
CreatedBefore = Annotated[str | None, Query(description="Alerts opened before this time (ISO 8601, Z or offset).")]
UuidQuery = Annotated[str | None, Query(json_schema_extra={"format": "uuid"})]
# The CSV export's bound: far beyond a plant's alert history for any range a person asks for.
MAX_EXPORTED_ALERTS = 100_000


@dataclass(frozen=True, slots=True)
class _AlertFilter:
    states: tuple[str, ...] | None
    machine_id: str | None
    severity: str | None
    rule_id: str | None
    created_from: int | None
    created_before: int | None


def _moment(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return to_micros(parse_timestamp(text))
    except TimestampError as exc:
        raise InvalidRequest(f"{name}: {exc}") from None


def _alert_filter(
    alert_state: str | None,
    machine_id: str | None,
    severity: Severity | None,
    rule_id: str | None,
    start: str | None,
    end: str | None,
) -> _AlertFilter:
    states: tuple[str, ...] | None = None
    if alert_state == "open":
        states = OPEN_STATES
    elif alert_state is not None:
        states = (alert_state,)
    machine = normalize_uuid(machine_id) if machine_id is not None else None
    if machine_id is not None and machine is None:
        raise InvalidRequest("machine_id: must be a UUID")
    rule = normalize_uuid(rule_id) if rule_id is not None else None
    if rule_id is not None and rule is None:
        raise InvalidRequest("rule_id: must be a UUID")
    created_from, created_before = _moment("start", start), _moment("end", end)
    if created_from is not None and created_before is not None and created_before <= created_from:
        raise InvalidRequest("end: must be after start")
    return _AlertFilter(states, machine, severity.value if severity else None, rule, created_from, created_before)


async def _select_alerts(
    conn: AsyncConnection, tenant_id: str, wanted: _AlertFilter, after: tuple[int, str] | None, limit: int
) -> list[StoredAlert]:
    return await alert_store.list_alerts(
        conn,
        tenant_id=tenant_id,
        states=wanted.states,
        machine_id=wanted.machine_id,
        severity=wanted.severity,
        rule_id=wanted.rule_id,
        after=after,
        limit=limit,
        created_from=wanted.created_from,
        created_before=wanted.created_before,
    )


async def _emails(conn: AsyncConnection, tenant_id: str) -> dict[str, str]:
    return {user.id: user.email for user in await accounts.list_users(conn, tenant_id)}


def _with_emails(alert: StoredAlert, emails: dict[str, str]) -> AlertOut:
    out = _alert_out(alert)
    out.acknowledged_by_email = emails.get(alert.acknowledged_by or "")
    out.resolved_by_email = emails.get(alert.resolved_by or "")
    return out


@alerts_router.get("", response_model=AlertPage)
async def list_alerts(
    principal: Viewer,
    state: State,
    alert_state: AlertStateQuery = None,
    machine_id: UuidQuery = None,
    severity: Severity | None = None,
    rule_id: UuidQuery = None,
    start: CreatedFrom = None,
    end: CreatedBefore = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> AlertPage:
    """Alerts of the tenant, newest first; pass `next_cursor` back as `cursor` for the next page."""
    wanted = _alert_filter(alert_state, machine_id, severity, rule_id, start, end)
    after = None
    if cursor is not None:
        after = cast("tuple[int, str]", tuple(state.cursors.decode(ALERTS_CURSOR, cursor, (int, str))))
    async with state.engine.connect() as conn:
        items = await _select_alerts(conn, principal.tenant_id, wanted, after, limit + 1)
        emails = await _emails(conn, principal.tenant_id)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = state.cursors.encode(ALERTS_CURSOR, (items[-1].created_at, items[-1].id)) if more and items else None
    return AlertPage(items=[_with_emails(a, emails) for a in items], next_cursor=next_cursor)


_CSV_COLUMNS = (
    "id",
    "created_at",
    "machine_id",
    "machine_name",
    "rule_id",
    "metric_name",
    "severity",
    "state",
    "metric_value",
    "threshold_value",
    "message",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "resolution",
)


@alerts_router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV with a header row, newest alert first."}},
)
async def export_alerts(
    principal: Viewer,
    state: State,
    alert_state: AlertStateQuery = None,
    machine_id: UuidQuery = None,
    severity: Severity | None = None,
    rule_id: UuidQuery = None,
    start: CreatedFrom = None,
    end: CreatedBefore = None,
) -> Response:
    """The alerts `GET /api/v1/alerts` lists for the same filters, all at once as CSV (at most 100,000), with
    machine names and the emails of who acknowledged and resolved them."""
    wanted = _alert_filter(alert_state, machine_id, severity, rule_id, start, end)
    async with state.engine.connect() as conn:
        items = await _select_alerts(conn, principal.tenant_id, wanted, None, MAX_EXPORTED_ALERTS)
        emails = await _emails(conn, principal.tenant_id)
        names = {
            m.id: m.name
            for m in (await machines.list_page(conn, tenant_id=principal.tenant_id, limit=1_000_000, offset=0))[0]
        }
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for alert in items:
        writer.writerow(
            (
                alert.id,
                format_micros(alert.created_at),
                alert.machine_id,
                names.get(alert.machine_id, ""),
                alert.rule_id or "",
                alert.metric_name,
                alert.severity.value,
                alert.state,
                repr(alert.metric_value),
                repr(alert.threshold_value),
                alert.message,
                _time(alert.acknowledged_at) or "",
                emails.get(alert.acknowledged_by or "", alert.acknowledged_by or ""),
                _time(alert.resolved_at) or "",
                emails.get(alert.resolved_by or "", alert.resolved_by or ""),
                alert.resolution or "",
            )
        )
    return Response(
        text.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="haltless-alerts.csv"'},
    )


def _alert_id(alert_id: str) -> str:
    normalized = normalize_uuid(alert_id)
    if normalized is None:
        raise NotFound("alert not found")
    return normalized


@alerts_router.get("/{alert_id}", response_model=AlertOut)
async def get_alert(alert_id: str, principal: Viewer, state: State) -> AlertOut:
    async with state.engine.connect() as conn:
        alert = await alert_store.get_alert(conn, tenant_id=principal.tenant_id, alert_id=_alert_id(alert_id))
    if alert is None:
        raise NotFound("alert not found")
    return _alert_out(alert)


async def _alert_action(state: AppState, principal: Principal, alert_id: str, planner: AlertPlanner) -> AlertOut:
    """A user's action on an alert, as one change: the alert is read inside it."""
    async with state.changes.for_tenant(principal.tenant_id, refresh=False) as tx:
        alert = await alert_store.get_alert(tx.conn, tenant_id=principal.tenant_id, alert_id=_alert_id(alert_id))
        if alert is not None:
            await tx.refresh([alert.machine_id])
        plan, after = planner(tx.fleet, alert, tx.now_us)
        tx.apply(plan)
    return _alert_out(after)


def _comment(body: AlertActionIn | None) -> str | None:
    return body.comment if body is not None else None


@alerts_router.post("/{alert_id}/acknowledge", response_model=AlertOut)
async def acknowledge(alert_id: str, principal: Operator, state: State, body: AlertActionIn | None = None) -> AlertOut:
    """Mark an open alert as taken care of, with an optional `comment`; it stays open until the value clears or
    someone resolves it. The body is optional: a bodyless request acknowledges without a comment."""
    user, comment = principal.subject_id, _comment(body)
    return await _alert_action(
        state,
        principal,
        alert_id,
        lambda fleet, alert, now: alert_planner.plan_acknowledge(fleet, alert, user, now, comment),
    )


@alerts_router.post("/{alert_id}/resolve", response_model=AlertOut)
async def resolve(alert_id: str, principal: Operator, state: State, body: AlertActionIn | None = None) -> AlertOut:
    """Close an alert by hand (optional `comment`, kept in its history); its rule opens a new one only after the
    value has cleared once."""
    user, comment = principal.subject_id, _comment(body)
    return await _alert_action(
        state,
        principal,
        alert_id,
        lambda fleet, alert, now: alert_planner.plan_resolve(fleet, alert, user, now, comment),
    )


@alerts_router.post("/{alert_id}/shelve", response_model=AlertOut)
async def shelve(alert_id: str, body: AlertShelveIn, principal: Operator, state: State) -> AlertOut:
    """Shelve (snooze) an open alert for `duration_seconds`: no reminders or escalation until then; they resume
    when the shelf ends. Shelving again sets a new end; 409 when the alert is resolved."""
    user, duration = principal.subject_id, round(body.duration_seconds * 1_000_000)
    return await _alert_action(
        state,
        principal,
        alert_id,
        lambda fleet, alert, now: lifecycle.plan_shelve(fleet, alert, user, now, duration, body.comment),
    )


@alerts_router.post("/{alert_id}/unshelve", response_model=AlertOut)
async def unshelve(alert_id: str, principal: Operator, state: State, body: AlertActionIn | None = None) -> AlertOut:
    """Take an alert off the shelf now; reminders and escalation resume. Not shelved: nothing changes."""
    user, comment = principal.subject_id, _comment(body)
    return await _alert_action(
        state, principal, alert_id, lambda fleet, alert, now: lifecycle.plan_unshelve(fleet, alert, user, now, comment)
    )


@alerts_router.get("/{alert_id}/history", response_model=list[AlertHistoryEntryOut])
async def alert_history_of(alert_id: str, principal: Viewer, state: State) -> list[AlertHistoryEntryOut]:
    """Every transition of the alert, oldest first: what happened, who did it (a user, or `system`), when, and the
    comment given; 404 for another tenant's alert."""
    async with state.engine.connect() as conn:
        alert = await alert_store.get_alert(conn, tenant_id=principal.tenant_id, alert_id=_alert_id(alert_id))
        if alert is None:
            raise NotFound("alert not found")
        entries = await history_store.of_alert(conn, tenant_id=principal.tenant_id, alert_id=alert.id)
        emails = await _emails(conn, principal.tenant_id)
    return [
        AlertHistoryEntryOut(
            kind=e.kind,
            actor=e.actor,
            actor_email=emails.get(e.actor),
            at=format_micros(e.at),
            comment=e.comment,
            details=e.details or {},
        )
        for e in entries
    ]
