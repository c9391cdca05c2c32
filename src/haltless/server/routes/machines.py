"""Machines CRUD and latest values."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.models import MachineStatus, Role
from haltless.core.names import shown
from haltless.core.plan import NewMachine
from haltless.core.planners import machines as machine_planner
from haltless.core.timefmt import format_micros
from haltless.errors import Conflict, PermissionDenied
from haltless.server.http.security import Admin, Operator, State, Viewer
from haltless.server.routes.machines_latest import INCLUDE_PATTERN, FleetPage, fleet_page, latest_reading, parse_include
from haltless.server.schemas.machines import MachineCreate, MachineLatest, MachineOut, MachineUpdate
from haltless.server.state import AppState
from haltless.store import machines, readings
from haltless.store.machines import Machine
from haltless.store.maintenance_windows import set_window_owner

router = APIRouter(prefix="/api/v1/machines", tags=["machines"])

# Far beyond any fleet, and well inside the 64-bit integers both databases take for OFFSET.
MAX_OFFSET = 1_000_000_000


def _out(machine: Machine) -> MachineOut:
    return MachineOut(
        id=machine.id,
        name=machine.name,
        location=machine.location,
        tags=machine.tags,
        status=machine.status,
        maintenance=machine.maintenance,
        last_seen_at=format_micros(machine.last_seen_at) if machine.last_seen_at is not None else None,
        created_at=format_micros(machine.created_at),
    )


async def _get(state: AppState, tenant_id: str, machine_id: str) -> Machine:
    async with state.engine.connect() as conn:
        return await machines.of_tenant(conn, tenant_id=tenant_id, machine_id=machine_id)


def _name_taken(name: str) -> Conflict:
    return Conflict(f'a machine named "{shown(name)}" exists already; machine names are unique, choose another')


async def _refuse_taken_name(conn: AsyncConnection, tenant_id: str, name: str, machine_id: str | None) -> None:
    existing = await machines.named(conn, tenant_id=tenant_id, name=name)
    if existing is not None and existing.id != machine_id:
        raise _name_taken(name)


@router.post("", status_code=201, response_model=MachineOut)
async def create_machine(body: MachineCreate, principal: Admin, state: State) -> MachineOut:
    """Register a machine; it is `offline` until its first reading. Names are unique per tenant (409)."""
    try:
        async with state.changes.for_tenant(principal.tenant_id, (), refresh=False) as tx:
            await _refuse_taken_name(tx.conn, principal.tenant_id, body.name, None)
            new = NewMachine(machines.new_id(), principal.tenant_id, body.name, body.location, body.tags, tx.now_us)
            tx.apply(machine_planner.plan_add(tx.fleet, new))
    except IntegrityError:
        # Another request took the name between the check and the insert (another process: no shared lock).
        raise _name_taken(body.name) from None
    return _out(
        Machine(new.id, new.tenant_id, new.name, new.location, new.tags, MachineStatus.OFFLINE, None, new.created_at)
    )


@router.get("", response_model=FleetPage, response_model_exclude_unset=True)
async def list_machines(
    principal: Viewer,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Machines to skip (past the last: no items).")] = 0,
    include: Annotated[
        str | None,
        # The pattern documents the rule; `parse_include` applies it, with an answer that names the unknown value.
        Query(
            description="`latest`: each machine's newest value per metric",
            json_schema_extra={"pattern": INCLUDE_PATTERN},
        ),
    ] = None,
) -> FleetPage:
    """The tenant's machines, ordered by name; `include=latest` adds each one's newest value per metric."""
    with_latest = "latest" in parse_include(include)
    async with state.engine.connect() as conn:
        items, total = await machines.list_page(conn, tenant_id=principal.tenant_id, limit=limit, offset=offset)
        latest = (
            await readings.latest_per_machine_metric(conn, machine_ids=[m.id for m in items]) if with_latest else None
        )
    return fleet_page([_out(m) for m in items], latest, total=total, limit=limit, offset=offset)


@router.get("/{machine_id}", response_model=MachineOut)
async def get_machine(machine_id: str, principal: Viewer, state: State) -> MachineOut:
    return _out(await _get(state, principal.tenant_id, machine_id))


@router.patch("/{machine_id}", response_model=MachineOut)
async def update_machine(machine_id: str, body: MachineUpdate, principal: Operator, state: State) -> MachineOut:
    """Change name, location or tags (admin), or enter/leave maintenance (operator); omitted fields stay."""
    values: dict[str, Any] = body.model_dump(exclude_unset=True)
    maintenance = values.pop("maintenance", None)
    if values and principal.role is not None and not principal.role.allows(Role.ADMIN):
        raise PermissionDenied("changing name, location or tags needs the admin role")
    if "name" in values and values["name"] is None:
        del values["name"]
    if "tags" in values and values["tags"] is None:
        values["tags"] = []
    try:
        async with state.changes.for_tenant(principal.tenant_id, refresh=False) as tx:
            machine = await machines.of_tenant(tx.conn, tenant_id=principal.tenant_id, machine_id=machine_id)
            if "name" in values:
                await _refuse_taken_name(tx.conn, principal.tenant_id, values["name"], machine.id)
            await tx.refresh([machine.id])
            if maintenance is not None:  # a user's decision: no maintenance window ends it (docs/maintenance.md)
                await set_window_owner(tx.conn, [machine.id], None)
            tx.apply(machine_planner.plan_edit(tx.fleet, machine.id, values, maintenance, tx.now_us))
    except IntegrityError:
        if "name" not in values:
            raise
        raise _name_taken(values["name"]) from None
    return _out(await _get(state, principal.tenant_id, machine.id))


@router.delete("/{machine_id}", status_code=204, response_class=Response)
async def delete_machine(machine_id: str, principal: Admin, state: State) -> Response:
    """Delete a machine and all of its readings."""
    async with state.changes.for_tenant(principal.tenant_id, refresh=False) as tx:
        machine = await machines.of_tenant(tx.conn, tenant_id=principal.tenant_id, machine_id=machine_id)
        tx.apply(machine_planner.plan_remove(tx.fleet, machine.id, tx.now_us))
    return Response(status_code=204)


@router.get("/{machine_id}/latest", response_model=MachineLatest)
async def latest(machine_id: str, principal: Viewer, state: State) -> MachineLatest:
    """The newest reading (by measurement time) of each metric of the machine."""
    machine = await _get(state, principal.tenant_id, machine_id)
    async with state.engine.connect() as conn:
        rows = (await readings.latest_per_machine_metric(conn, machine_ids=[machine.id]))[machine.id]
    return MachineLatest(machine_id=machine.id, readings=[latest_reading(r) for r in rows])
