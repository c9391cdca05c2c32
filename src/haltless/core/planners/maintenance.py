"""Planning maintenance: entering it suppresses alerting, and the status follows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from haltless.core.fleet import Fleet
from haltless.core.plan import Plan
from haltless.core.planners.draft import Draft
from haltless.core.planners.no_data import restart_watch
from haltless.errors import NotFound


def plan_maintenance(fleet: Fleet, machine_id: str, maintenance: bool, now_us: int) -> Plan:
    """Enter or leave maintenance; the status follows (one machine_status event). No change: an empty plan."""
    plan = Plan(fleet.tenant_id, now_us)
    if not _switch(Draft(fleet, plan), machine_id, maintenance, now_us):
        raise NotFound("machine not found")
    return plan


def plan_maintenance_of(fleet: Fleet, changes: Mapping[str, bool], now_us: int) -> Plan:
    """Several machines enter or leave maintenance at once (maintenance windows); unknown machines are skipped."""
    plan = Plan(fleet.tenant_id, now_us)
    draft = Draft(fleet, plan)
    for machine_id, maintenance in changes.items():
        _switch(draft, machine_id, maintenance, now_us)
    return plan


def _switch(draft: Draft, machine_id: str, maintenance: bool, now_us: int) -> bool:
    """Plan one machine's change; False when it is not a machine of the fleet."""
    fleet, plan = draft.fleet, draft.plan
    health = draft.health(machine_id)
    if health is None:
        return False
    if health.maintenance == maintenance:
        del plan.health[machine_id]
        return True
    health.maintenance = maintenance
    plan.maintenance_changes[machine_id] = maintenance
    for key, state in fleet.states.items():
        if key[1] != machine_id:
            continue
        if maintenance and state.breach_since is not None and state.open_alert_id is None:
            # Suppression also forgets breaches in progress: for_seconds restarts after maintenance.
            plan.states[key] = replace(state, breach_since=None)
        elif not maintenance and state.seen_at is not None:
            # no_data rules watch again from now: the silence of the maintenance is no gap.
            plan.states[key] = restart_watch(state, now_us)
    draft.restatus(health, now_us)
    return True
