"""Planning maintenance: entering it suppresses alerting, and the status follows."""

from __future__ import annotations

from dataclasses import replace

from haltless.core.fleet import Fleet
from haltless.core.plan import Plan
from haltless.core.planners.draft import Draft
from haltless.errors import NotFound


def plan_maintenance(fleet: Fleet, machine_id: str, maintenance: bool, now_us: int) -> Plan:
    """Enter or leave maintenance; the status follows (one machine_status event). No change: an empty plan."""
    plan = Plan(fleet.tenant_id, now_us)
    draft = Draft(fleet, plan)
    health = draft.health(machine_id)
    if health is None:
        raise NotFound("machine not found")
    if health.maintenance == maintenance:
        del plan.health[machine_id]
        return plan
    health.maintenance = maintenance
    plan.maintenance_changes[machine_id] = maintenance
    if maintenance:
        # Suppression also forgets breaches in progress: for_seconds restarts after maintenance.
        for key, state in fleet.states.items():
            if key[1] == machine_id and state.breach_since is not None and state.open_alert_id is None:
                plan.states[key] = replace(state, breach_since=None)
    draft.restatus(health, now_us)
    return plan
