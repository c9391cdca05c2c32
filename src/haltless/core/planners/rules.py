"""Planning rule CRUD: a change of a rule's meaning closes its open alerts and forgets its pending breaches."""

from __future__ import annotations

from haltless.core.alerts import Resolution
from haltless.core.fleet import Fleet
from haltless.core.plan import SYSTEM, Plan
from haltless.core.planners.draft import Draft
from haltless.core.rules import Rule

# Fields whose change alters what a rule means: open alerts of the old meaning are resolved.
SEMANTIC_FIELDS = (
    "metric_name",
    "machine_id",
    "condition",
    "threshold",
    "severity",
    "for_seconds",
    "hysteresis",
    "sensitivity",
    "horizon_seconds",
    "window_readings",
)


def plan_create(fleet: Fleet, rule: Rule, now_us: int) -> Plan:
    """A new rule; it applies to readings that arrive from now on."""
    return Plan(fleet.tenant_id, now_us, rules_created=[rule])


def plan_update(fleet: Fleet, old: Rule, new: Rule, now_us: int) -> Plan:
    """An edited rule. A change of meaning resolves its open alerts (`rule_changed`, or `rule_disabled`) and
    forgets its pending breaches, so the new rule starts from a clean slate; re-enabling starts clean too."""
    plan = Plan(fleet.tenant_id, now_us, rules_updated=[new])
    semantic = any(getattr(old, name) != getattr(new, name) for name in SEMANTIC_FIELDS)
    disabled = old.enabled and not new.enabled
    if semantic or disabled or (new.enabled and not old.enabled):
        _close_alerts(Draft(fleet, plan), old, Resolution.RULE_DISABLED if disabled else Resolution.RULE_CHANGED)
        plan.rule_states_reset.append(old.id)
    return plan


def plan_delete(fleet: Fleet, rule: Rule, now_us: int) -> Plan:
    """A deleted rule; its open alerts are resolved with `rule_deleted` and stay in the history."""
    plan = Plan(fleet.tenant_id, now_us, rules_deleted=[rule.id], rule_states_reset=[rule.id])
    _close_alerts(Draft(fleet, plan), rule, Resolution.RULE_DELETED)
    return plan


def _close_alerts(draft: Draft, rule: Rule, resolution: Resolution) -> None:
    now_us = draft.plan.at
    for (rule_id, machine_id), state in draft.fleet.states.items():
        if rule_id != rule.id or state.open_alert_id is None:
            continue
        health = draft.health(machine_id)
        draft.resolve(health, state.open_alert_id, rule.severity.value, now_us, SYSTEM, resolution)
        if health is not None:
            draft.restatus(health, now_us)
