"""Planning what users do to alerts: acknowledge and resolve."""

from __future__ import annotations

from dataclasses import replace

from haltless.core import wire
from haltless.core.alerts import AlertState, Resolution, StoredAlert
from haltless.core.fleet import Fleet
from haltless.core.plan import Plan, TransitionKind
from haltless.core.planners.draft import Draft
from haltless.core.rules import resolved_by_user
from haltless.errors import Conflict, NotFound


def plan_acknowledge(
    fleet: Fleet, alert: StoredAlert | None, user_id: str, now_us: int, comment: str | None = None
) -> tuple[Plan, StoredAlert]:
    """Mark an open alert as taken care of, with the user's optional comment; acknowledging it again changes
    nothing. Returns the alert after."""
    plan = Plan(fleet.tenant_id, now_us)
    if alert is None:
        raise NotFound("alert not found")
    if alert.state == AlertState.RESOLVED:
        raise Conflict("alert is already resolved")
    if alert.state == AlertState.ACKNOWLEDGED:
        return plan, alert
    acknowledged = replace(
        alert,
        state=AlertState.ACKNOWLEDGED,
        acknowledged_at=now_us,
        acknowledged_by=user_id,
        acknowledge_comment=comment,
    )
    Draft(fleet, plan).record(TransitionKind.ACKNOWLEDGED, acknowledged, user_id, now_us, comment)
    plan.events.append(wire.alert_acknowledged(alert.id, alert.machine_id, user_id, now_us, comment))
    return plan, acknowledged


def plan_resolve(
    fleet: Fleet, alert: StoredAlert | None, user_id: str, now_us: int, comment: str | None = None
) -> tuple[Plan, StoredAlert]:
    """Resolve by hand; the rule re-arms only after the value has cleared once (no instant re-open)."""
    plan = Plan(fleet.tenant_id, now_us)
    if alert is None:
        raise NotFound("alert not found")
    if alert.state == AlertState.RESOLVED:
        raise Conflict("alert is already resolved")
    draft = Draft(fleet, plan)
    health = draft.health(alert.machine_id)
    closed = draft.resolve(
        health, alert.id, alert.severity.value, now_us, user_id, Resolution.MANUAL, alert=alert, comment=comment
    )
    assert closed is not None  # an alert was given
    if alert.rule_id is not None:
        key = (alert.rule_id, alert.machine_id)
        plan.states[key] = resolved_by_user(draft.state(key))
    if health is not None:
        draft.restatus(health, now_us)
    return plan, closed
