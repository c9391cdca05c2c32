"""Planning `no_data` rules: no reading of the metric for the rule's `for_seconds` opens an alert; the next
reading resolves it.

The clock is the server's (arrival time), as for offline detection: a reading's measurement time says nothing
about a sensor that stopped. Watching starts with the first reading of the metric after the rule was created,
enabled or changed; a machine in maintenance is not watched, and leaving maintenance starts a fresh
`for_seconds`. `not_before` (the watcher's start) makes a server that was down count its own downtime as no
gap: agents buffer while it is away, so every watched metric gets a fresh `for_seconds` after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from haltless.core import wire
from haltless.core.alerts import AlertState, Resolution, StoredAlert
from haltless.core.fleet import Fleet
from haltless.core.plan import SYSTEM, Plan, TransitionKind
from haltless.core.planners.draft import Draft
from haltless.core.rules import AlertCleared, Condition, Rule, RuleKind, RuleState

MICROS = 1_000_000


def rule_error(kind: RuleKind, condition: Condition | None, threshold_given: bool, for_seconds: float) -> str | None:
    """Why a rule's `no_data` condition is unusable (a 422 detail), or None."""
    if condition is not Condition.NO_DATA:
        return None
    if kind is not RuleKind.THRESHOLD:
        return f"condition: no_data is a condition of threshold rules, not of {kind.value} rules"
    if threshold_given:
        return "threshold: not a parameter of no_data rules (they fire when readings stop; set for_seconds)"
    if for_seconds <= 0:
        return "for_seconds: no_data rules need for_seconds > 0 (how long without a reading raises the alert)"
    return None


def update_error(old: Rule, new: Rule, threshold_given: bool) -> str | None:
    """Why an edit of a rule is unusable as far as `no_data` goes (a 422 detail), or None."""
    if new.condition is Condition.NO_DATA:
        return rule_error(new.kind, new.condition, threshold_given, new.for_seconds)
    if old.condition is Condition.NO_DATA and not threshold_given:
        return "threshold: required when the condition changes from no_data"
    return None


def seen(state: RuleState, received_at: int, newest_ts: int) -> tuple[RuleState, AlertCleared | None]:
    """Readings of the metric arrived at `received_at`: watching goes on, and an open no_data alert clears."""
    last_ts = newest_ts if state.last_ts is None or state.last_ts < newest_ts else state.last_ts
    after = RuleState(last_ts=last_ts, seen_at=received_at)
    if state.open_alert_id is not None:
        return after, AlertCleared(state.open_alert_id, 0.0, received_at)
    return after, None


def silent_since(state: RuleState, not_before: int) -> int | None:
    """Since when (µs) the watched metric has been silent, or None when it is not watched or already alerting."""
    if state.seen_at is None or state.open_alert_id is not None:
        return None
    return max(state.seen_at, not_before)


def _due(rule: Rule, state: RuleState, now_us: int, not_before: int) -> bool:
    since = silent_since(state, not_before)
    return since is not None and now_us - since >= int(rule.for_seconds * MICROS)


def due_no_data(fleet: Fleet, now_us: int, not_before: int) -> list[tuple[str, str]]:
    """The (rule, machine) pairs of the fleet whose metric has been silent for the rule's `for_seconds`."""
    due: list[tuple[str, str]] = []
    if not any(rule.condition is Condition.NO_DATA for rule in fleet.rules.values()):
        return due  # the usual fleet: nothing to look at twice a second
    for key, state in fleet.states.items():
        if state.seen_at is None:
            continue
        rule = fleet.rules.get(key[0])
        health = fleet.health.get(key[1])
        if rule is None or health is None or health.maintenance or not rule.applies_to(key[1]):
            continue
        if rule.condition is Condition.NO_DATA and _due(rule, state, now_us, not_before):
            due.append(key)
    return due


def plan_no_data(
    fleet: Fleet, keys: Iterable[tuple[str, str]], now_us: int, not_before: int, new_id: Callable[[], str]
) -> Plan:
    """Open a no_data alert for each pair of `keys` still due at `now_us` (checked again: another process may
    have seen a reading or opened the alert meanwhile)."""
    plan = Plan(fleet.tenant_id, now_us)
    draft = Draft(fleet, plan)
    due = set(due_no_data(fleet, now_us, not_before))
    for key in keys:
        if key not in due:
            continue
        rule = fleet.rules[key[0]]
        state = draft.state(key)
        health = draft.health(key[1])
        assert health is not None  # due_no_data checked it
        assert state.seen_at is not None
        silent = (now_us - max(state.seen_at, not_before)) / MICROS
        alert = StoredAlert(
            id=new_id(),
            tenant_id=fleet.tenant_id,
            rule_id=rule.id,
            machine_id=key[1],
            metric_name=rule.metric_name,
            severity=rule.severity,
            message=rule.render_message(round(silent, 1)),
            metric_value=round(silent, 3),
            threshold_value=rule.for_seconds,
            state=AlertState.ACTIVE,
            created_at=now_us,
            acknowledged_at=None,
            acknowledged_by=None,
            resolved_at=None,
            resolved_by=None,
            resolution=None,
        )
        plan.states[key] = replace(state, open_alert_id=alert.id)
        draft.record(TransitionKind.OPENED, alert, SYSTEM, now_us, details={"severity": alert.severity.value})
        health.active[alert.id] = alert.severity
        plan.events.append(
            wire.alert(
                alert.id,
                alert.machine_id,
                alert.severity.value,
                alert.message,
                alert.metric_value,
                alert.threshold_value,
                alert.created_at,
            )
        )
        draft.restatus(health, now_us)
    return plan


def resolve_seen(draft: Draft, rule: Rule, key: tuple[str, str], received_at: int, newest_ts: int) -> bool:
    """Readings arrived for a no_data (rule, machine): record them, resolve its open alert; True when one closed."""
    state, cleared = seen(draft.state(key), received_at, newest_ts)
    draft.plan.states[key] = state
    if cleared is None:
        return False
    health = draft.health(key[1])
    draft.resolve(health, cleared.alert_id, rule.severity.value, received_at, SYSTEM, Resolution.CLEARED)
    return True


def restart_watch(state: RuleState, now_us: int) -> RuleState:
    """Leaving maintenance: a watched metric gets a fresh `for_seconds` from now."""
    return replace(state, seen_at=now_us) if state.seen_at is not None else state
