"""Planning offline detection: a machine whose newest reading arrived HALTLESS_OFFLINE_AFTER ago goes offline."""

from __future__ import annotations

from collections.abc import Iterable

from haltless.core.fleet import Fleet
from haltless.core.models import MachineStatus
from haltless.core.plan import Plan
from haltless.core.planners.draft import Draft

_QUIET = (MachineStatus.OFFLINE, MachineStatus.MAINTENANCE)


def due_offline(fleet: Fleet, now_us: int) -> list[str]:
    """The machines of the fleet that are due to go offline at `now_us`."""
    deadline = now_us - fleet.offline_after_us
    return [
        h.machine_id
        for h in fleet.health.values()
        if h.last_seen is not None and h.last_seen <= deadline and h.status not in _QUIET
    ]


def plan_offline(fleet: Fleet, machine_ids: Iterable[str], now_us: int) -> Plan:
    """Derive the status of `machine_ids` at `now_us`: the silent ones turn offline (a machine_status event each)."""
    plan = Plan(fleet.tenant_id, now_us)
    draft = Draft(fleet, plan)
    for machine_id in machine_ids:
        health = draft.health(machine_id)
        if health is not None:
            draft.restatus(health, now_us)
    return plan
