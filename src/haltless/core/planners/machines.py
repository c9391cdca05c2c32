"""Planning machine CRUD: a machine joins the fleet `offline`, edits are written, a deletion forgets it."""

from __future__ import annotations

from typing import Any

from haltless.core.fleet import Fleet
from haltless.core.health import MachineHealth
from haltless.core.models import MachineStatus
from haltless.core.plan import NewMachine, Plan
from haltless.core.planners.maintenance import plan_maintenance


def plan_add(fleet: Fleet, machine: NewMachine) -> Plan:
    """Register a machine; it is `offline` until its first reading."""
    plan = Plan(fleet.tenant_id, machine.created_at, machines_added=[machine])
    plan.health[machine.id] = MachineHealth(machine.id, fleet.tenant_id, MachineStatus.OFFLINE)
    return plan


def plan_edit(fleet: Fleet, machine_id: str, values: dict[str, Any], maintenance: bool | None, now_us: int) -> Plan:
    """Change name, location or tags (`values`), and enter or leave maintenance (None: leave it as it is)."""
    plan = plan_maintenance(fleet, machine_id, maintenance, now_us) if maintenance is not None else None
    plan = plan or Plan(fleet.tenant_id, now_us)
    if values:
        plan.machine_edits[machine_id] = dict(values)
    return plan


def plan_remove(fleet: Fleet, machine_id: str, now_us: int) -> Plan:
    """Delete a machine; its readings, rule states, alerts and the rules bound to it go with it."""
    return Plan(fleet.tenant_id, now_us, machines_removed=[machine_id])
