"""Planning the alert lifecycle beyond acknowledge and resolve: shelving (snoozing) an alert, and what an
escalation does to it (an `alert_escalated` event, and optionally a raised severity).

Every transition planned here is audited (`alert_history`) by the unit of work's persist step, in the change's
transaction, like the transitions of the other planners.
"""

from __future__ import annotations

from dataclasses import replace

from haltless.core import wire
from haltless.core.alerts import AlertState, StoredAlert
from haltless.core.fleet import Fleet
from haltless.core.plan import SYSTEM, Plan, TransitionKind
from haltless.core.planners.draft import Draft
from haltless.core.rules import Severity
from haltless.core.timefmt import format_micros
from haltless.errors import Conflict, NotFound

# Severities from least to most severe: an escalation only ever raises.
SEVERITY_ORDER = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)


def _open(alert: StoredAlert | None) -> StoredAlert:
    if alert is None:
        raise NotFound("alert not found")
    if alert.state == AlertState.RESOLVED:
        raise Conflict("alert is already resolved")
    return alert


def plan_shelve(
    fleet: Fleet, alert: StoredAlert | None, user_id: str, now_us: int, duration_us: int, comment: str | None
) -> tuple[Plan, StoredAlert]:
    """Shelve an open alert for `duration_us`: no reminders or escalation until then (shelving a shelved alert
    again sets a new end). Returns the alert after."""
    alert = _open(alert)
    plan = Plan(fleet.tenant_id, now_us)
    until = now_us + duration_us
    shelved = replace(alert, shelved_until=until)
    details = {"until": format_micros(until)}
    Draft(fleet, plan).record(TransitionKind.SHELVED, shelved, user_id, now_us, comment, details)
    plan.events.append(wire.alert_shelved(alert.id, alert.machine_id, user_id, now_us, until, comment))
    return plan, shelved


def plan_unshelve(
    fleet: Fleet, alert: StoredAlert | None, user_id: str, now_us: int, comment: str | None = None
) -> tuple[Plan, StoredAlert]:
    """Take an alert off the shelf now; reminders and escalation resume. Not shelved: nothing changes."""
    alert = _open(alert)
    plan = Plan(fleet.tenant_id, now_us)
    if not alert.shelved_at(now_us):
        return plan, alert
    unshelved = replace(alert, shelved_until=None)
    Draft(fleet, plan).record(TransitionKind.UNSHELVED, unshelved, user_id, now_us, comment)
    plan.events.append(wire.alert_unshelved(alert.id, alert.machine_id, user_id, now_us))
    return plan, unshelved


def raised(current: Severity, target: Severity | None) -> Severity:
    """The severity an escalation leaves: `target` when it is higher than `current`, else `current`."""
    if target is None or SEVERITY_ORDER.index(target) <= SEVERITY_ORDER.index(current):
        return current
    return target


def plan_escalated(
    fleet: Fleet, alert_id: str, policy_id: str, target: Severity | None, now_us: int, comment: str | None = None
) -> Plan:
    """A policy escalated an open alert (the dispatcher audited the escalation when it sent it): announce it, and
    raise the alert's severity to `target` when that is higher (audited; the machine's status follows).
    An alert no longer open: nothing to do."""
    plan = Plan(fleet.tenant_id, now_us)
    draft = Draft(fleet, plan)
    alert = draft.alert(alert_id)
    if alert is None:
        return plan
    severity = raised(alert.severity, target)
    if severity is not alert.severity:
        after = replace(alert, severity=severity)
        details = {"from": alert.severity.value, "to": severity.value, "policy_id": policy_id}
        draft.record(TransitionKind.SEVERITY_RAISED, after, SYSTEM, now_us, comment, details)
    plan.events.append(
        wire.alert_escalated(alert.id, alert.machine_id, severity.value, alert.severity.value, policy_id, now_us)
    )
    if severity is not alert.severity:
        health = draft.health(alert.machine_id)
        if health is not None:
            health.active[alert.id] = severity
            draft.restatus(health, now_us)
    return plan
