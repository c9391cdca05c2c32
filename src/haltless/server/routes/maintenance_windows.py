"""Recurring maintenance windows: operators create, edit and delete; everyone reads. docs/maintenance.md"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from haltless.core.maintenance_windows import (
    MAX_DURATION_SECONDS,
    Frequency,
    Window,
    next_occurrence,
    occurrence,
    schedule_error,
)
from haltless.core.timefmt import format_micros
from haltless.errors import InvalidRequest, NotFound
from haltless.server.http.security import Operator, State, Viewer
from haltless.server.schemas.base import JsonEnum, Name, StrictBody, Tag
from haltless.server.service import resource_verbs as verbs
from haltless.server.service.resource_verbs import Resource
from haltless.server.state import AppState
from haltless.store import machines
from haltless.store import maintenance_windows as store

router = APIRouter(prefix="/api/v1/maintenance-windows", tags=["maintenance windows"])

_DAYS = "weekly windows: the weekdays it starts on (mon tue wed thu fri sat sun)"
_START = "local time of day it starts, HH:MM (in `timezone`)"
_ZONE = "IANA time zone of start_time, e.g. Europe/Berlin; daylight saving follows it"
Comment = Annotated[str, Field(max_length=500)]


class WindowCreate(StrictBody):
    name: Name
    machine_id: str | None = Field(default=None, description="one machine; or give `tag`")
    tag: Tag | None = Field(default=None, description="every machine with this tag; or give `machine_id`")
    frequency: Annotated[Frequency, JsonEnum] = Field(description="daily or weekly")
    days: list[str] = Field(default_factory=list, max_length=7, description=_DAYS)
    start_time: str = Field(max_length=5, description=_START)
    duration_seconds: float = Field(description=f"real seconds it lasts, > 0 and ≤ {MAX_DURATION_SECONDS:g}")
    timezone: str = Field(max_length=64, description=_ZONE)
    enabled: bool = True
    comment: Comment = ""


class WindowUpdate(StrictBody):
    """Only the fields sent change; `machine_id` and `tag` may swap (exactly one must remain)."""

    name: Name | None = None
    machine_id: str | None = None
    tag: Tag | None = None
    frequency: Annotated[Frequency, JsonEnum] | None = None
    days: list[str] | None = Field(default=None, max_length=7)
    start_time: str | None = Field(default=None, max_length=5)
    duration_seconds: float | None = None
    timezone: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    comment: Comment | None = None


class WindowOut(BaseModel):
    id: str
    name: str
    machine_id: str | None
    tag: str | None
    frequency: Frequency
    days: list[str]
    start_time: str
    duration_seconds: float
    timezone: str
    enabled: bool
    comment: str
    created_by: str
    created_at: str
    updated_at: str
    active: bool = Field(description="an occurrence is on now")
    next_start: str | None = Field(description="start of the occurrence on now, else of the next one")
    next_end: str | None = Field(description="its end")


def _out(stored: store.StoredWindow, now: int) -> WindowOut:
    w = stored.window
    upcoming = next_occurrence(w, now)
    return WindowOut(
        id=w.id,
        name=stored.name,
        machine_id=w.machine_id,
        tag=w.tag,
        frequency=w.frequency,
        days=list(w.days),
        start_time=w.start_time,
        duration_seconds=w.duration_seconds,
        timezone=w.timezone,
        enabled=w.enabled,
        comment=stored.comment,
        created_by=stored.created_by,
        created_at=format_micros(stored.created_at),
        updated_at=format_micros(stored.updated_at),
        active=occurrence(w, now) is not None,
        next_start=format_micros(upcoming[0]) if upcoming else None,
        next_end=format_micros(upcoming[1]) if upcoming else None,
    )


async def _checked(state: AppState, window: Window) -> Window:
    """The window with its machine's canonical id; a 422 naming what is wrong otherwise."""
    if (window.machine_id is None) == (window.tag is None):
        raise InvalidRequest(
            "machine_id, tag: give exactly one (a window covers one machine or every machine of a tag)"
        )
    error = schedule_error(window.frequency, window.days, window.start_time, window.duration_seconds, window.timezone)
    if error:
        raise InvalidRequest(error)
    if window.machine_id is not None:
        async with state.engine.connect() as conn:
            try:
                found = await machines.of_tenant(conn, tenant_id=window.tenant_id, machine_id=window.machine_id)
            except NotFound:
                raise InvalidRequest("machine_id: no such machine in this tenant") from None
        window = replace(window, machine_id=found.id)
    return window


WINDOWS: Resource[store.StoredWindow] = Resource(
    "maintenance window",
    read=lambda conn, tenant_id, item_id: store.get_window(conn, tenant_id=tenant_id, window_id=item_id),
    update=store.update_window,
    delete=lambda conn, stored: store.delete_window(conn, stored.window.id),
)


@router.post("", status_code=201, response_model=WindowOut)
async def create_window(body: WindowCreate, principal: Operator, state: State) -> WindowOut:
    """A recurring window; the scheduler puts the machines it covers into maintenance while it is on."""
    now = state.clock.now_us()
    window = Window(
        id=store.new_id(),
        tenant_id=principal.tenant_id,
        machine_id=body.machine_id,
        tag=body.tag,
        frequency=body.frequency,
        days=tuple(body.days),
        start_time=body.start_time,
        duration_seconds=body.duration_seconds,
        timezone=body.timezone,
        enabled=body.enabled,
    )
    window = await _checked(state, window)
    stored = store.StoredWindow(window, body.name, body.comment, principal.subject_id, now, now)
    await verbs.write(state.engine, lambda conn: store.insert_window(conn, stored))
    return _out(stored, now)


@router.get("", response_model=list[WindowOut])
async def list_windows(principal: Viewer, state: State) -> list[WindowOut]:
    """The tenant's windows, oldest first."""
    now = state.clock.now_us()
    async with state.engine.connect() as conn:
        return [_out(s, now) for s in await store.list_windows(conn, tenant_id=principal.tenant_id)]


@router.get("/{window_id}", response_model=WindowOut)
async def get_window(window_id: str, principal: Viewer, state: State) -> WindowOut:
    return _out(await verbs.get(state.engine, WINDOWS, principal.tenant_id, window_id), state.clock.now_us())


@router.patch("/{window_id}", response_model=WindowOut)
async def update_window(window_id: str, body: WindowUpdate, principal: Operator, state: State) -> WindowOut:
    """Change any field; the scheduler applies the new schedule on its next pass (within a second)."""

    async def change(old: store.StoredWindow) -> store.StoredWindow:
        changes: dict[str, Any] = body.model_dump(exclude_unset=True)
        for name in ("name", "frequency", "days", "start_time", "duration_seconds", "timezone", "enabled", "comment"):
            if name in changes and changes[name] is None:
                raise InvalidRequest(f"{name}: may not be null")
        name = changes.pop("name", old.name)
        comment = changes.pop("comment", old.comment)
        if "days" in changes:
            changes["days"] = tuple(changes["days"])
        if changes.get("frequency") == Frequency.DAILY and "days" not in changes:
            changes["days"] = ()
        window = await _checked(state, replace(old.window, **changes))
        return store.StoredWindow(window, name, comment, old.created_by, old.created_at, state.clock.now_us())

    stored = await verbs.patch(state.engine, WINDOWS, principal.tenant_id, window_id, change)
    return _out(stored, stored.updated_at)


@router.delete("/{window_id}", status_code=204, response_class=Response)
async def delete_window(window_id: str, principal: Operator, state: State) -> Response:
    """Delete a window; machines it has in maintenance leave it on the scheduler's next pass."""
    await verbs.delete(state.engine, WINDOWS, principal.tenant_id, window_id)
    return Response(status_code=204)
