"""Recurring maintenance windows end to end (issue 17): CRUD with clear 422s, and a scheduler on the injected
clock that puts machines into maintenance and back, across a daylight-saving change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from haltless.core.clock import ManualClock
from tests.conftest import RunningServer, Tenant, login, wait_until

S = 1_000_000


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * S)


async def _pass(server: RunningServer) -> None:
    """Wait for a scheduler pass that started after now (so it saw the clock as it is)."""
    scheduler = server.state.windows
    assert scheduler is not None
    mark = scheduler.passes_started
    await wait_until(lambda: scheduler.passes_finished > mark, "a maintenance window pass")


async def _jump(server: RunningServer, tenant: Tenant, clock: ManualClock, when: str) -> None:
    """Move the app's clock and log in again (access tokens follow the same clock), then let a pass run."""
    clock.set(at(when))
    pair = await login(server.base_url, tenant.admin_email)
    tenant.http.headers["Authorization"] = f"Bearer {pair['access_token']}"
    await _pass(server)


async def _machine(tenant: Tenant, machine_id: str) -> dict[str, Any]:
    machine: dict[str, Any] = (await tenant.http.get(f"/api/v1/machines/{machine_id}")).json()
    return machine


async def _create(tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await tenant.http.post("/api/v1/maintenance-windows", json={"name": "Nightly", **body})
    assert response.status_code == 201, response.text
    window: dict[str, Any] = response.json()
    return window


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(at("2027-03-27T23:00:00+00:00"))


@pytest.fixture
def running(server_factory: Any, clock: ManualClock) -> RunningServer:
    server: RunningServer = server_factory(clock=clock)
    return server


async def test_a_daily_window_across_the_spring_clock_change(
    running: RunningServer, tenant_factory: Any, clock: ManualClock
) -> None:
    """01:00–05:00 Europe/Berlin daily: 00:00–04:00 UTC on 2027-03-28 (CET), 23:00–03:00 UTC the next night (CEST).

    (In the future on purpose: access tokens' expiry is also checked against the real time, see the report.)"""
    tenant: Tenant = await tenant_factory(running)
    press = await tenant.add_machine("Press")
    by_hand = await tenant.add_machine("Kept by hand")
    await tenant.http.patch(f"/api/v1/machines/{press}", json={"tags": ["press"]})
    await tenant.http.patch(f"/api/v1/machines/{by_hand}", json={"tags": ["press"], "maintenance": True})
    window = await _create(
        tenant, tag="press", frequency="daily", start_time="01:00", duration_seconds=4 * 3600, timezone="Europe/Berlin"
    )
    assert (window["active"], window["next_start"], window["next_end"]) == (
        False,
        "2027-03-28T00:00:00Z",
        "2027-03-28T04:00:00Z",
    )

    await _jump(running, tenant, clock, "2027-03-27T23:59:59+00:00")
    assert (await _machine(tenant, press))["maintenance"] is False
    await _jump(running, tenant, clock, "2027-03-28T00:00:00+00:00")
    machine = await _machine(tenant, press)
    assert (machine["maintenance"], machine["status"]) == (True, "maintenance")
    shown = (await tenant.http.get(f"/api/v1/maintenance-windows/{window['id']}")).json()
    assert (shown["active"], shown["next_start"]) == (True, "2027-03-28T00:00:00Z")

    await _jump(running, tenant, clock, "2027-03-28T03:59:59+00:00")
    assert (await _machine(tenant, press))["maintenance"] is True
    await _jump(running, tenant, clock, "2027-03-28T04:00:00+00:00")
    machine = await _machine(tenant, press)
    assert (machine["maintenance"], machine["status"]) == (False, "offline")  # it never sent a reading
    # A user's maintenance is the user's: the window's end does not take the machine out.
    assert (await _machine(tenant, by_hand))["maintenance"] is True

    # Summer time from now on: the same 01:00 is an hour earlier in UTC.
    await _jump(running, tenant, clock, "2027-03-28T22:59:59+00:00")
    assert (await _machine(tenant, press))["maintenance"] is False
    await _jump(running, tenant, clock, "2027-03-28T23:00:00+00:00")
    assert (await _machine(tenant, press))["maintenance"] is True

    # Deleting the window while it is on lets its machines go on the next pass.
    assert (await tenant.http.delete(f"/api/v1/maintenance-windows/{window['id']}")).status_code == 204
    await _pass(running)
    assert (await _machine(tenant, press))["maintenance"] is False
    assert (await _machine(tenant, by_hand))["maintenance"] is True


async def test_a_weekly_window_of_one_machine_and_its_edits(
    running: RunningServer, tenant_factory: Any, clock: ManualClock
) -> None:
    tenant: Tenant = await tenant_factory(running)
    mill = await tenant.add_machine("Mill")
    window = await _create(
        tenant,
        machine_id=mill,
        frequency="weekly",
        days=["sun"],
        start_time="00:30",
        duration_seconds=1800,
        timezone="UTC",
        comment="spindle check",
    )
    assert (window["machine_id"], window["tag"], window["days"], window["comment"]) == (
        mill,
        None,
        ["sun"],
        "spindle check",
    )
    await _jump(running, tenant, clock, "2027-03-28T00:45:00+00:00")  # a Sunday
    assert (await _machine(tenant, mill))["maintenance"] is True
    disabled = await tenant.http.patch(f"/api/v1/maintenance-windows/{window['id']}", json={"enabled": False})
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["active"] is False
    await _pass(running)
    assert (await _machine(tenant, mill))["maintenance"] is False
    moved = await tenant.http.patch(
        f"/api/v1/maintenance-windows/{window['id']}", json={"enabled": True, "days": ["mon"]}
    )
    assert moved.json()["next_start"] == "2027-03-29T00:30:00Z"
    listed = (await tenant.http.get("/api/v1/maintenance-windows")).json()
    assert [w["id"] for w in listed] == [window["id"]]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone: unknown time zone 'Mars/Olympus_Mons'"),
        ({"duration_seconds": 0}, "duration_seconds: must be more than 0"),
        ({"duration_seconds": 8 * 86_400}, "duration_seconds: must be more than 0 and at most 604800"),
        ({"start_time": "25:00"}, "start_time: '25:00' is not a time of day as HH:MM"),
        ({"frequency": "weekly"}, "days: a weekly window needs at least one weekday"),
        ({"frequency": "weekly", "days": ["funday"]}, "days: unknown weekday(s) 'funday'"),
        ({"days": ["mon"]}, "days: a daily window takes no days"),
        ({"machine_id": None}, "machine_id, tag: give exactly one"),
        ({"tag": "press"}, "machine_id, tag: give exactly one"),
        ({"machine_id": "00000000-0000-4000-8000-000000000000"}, "machine_id: no such machine in this tenant"),
        ({"frequency": "hourly"}, "frequency"),
    ],
)
async def test_bad_windows_are_422_with_a_clear_detail(
    server: RunningServer, tenant: Tenant, change: dict[str, Any], detail: str
) -> None:
    machine = await tenant.add_machine()
    body = {
        "name": "w",
        "machine_id": machine,
        "frequency": "daily",
        "start_time": "01:00",
        "duration_seconds": 3600,
        "timezone": "Europe/Berlin",
        **change,
    }
    response = await tenant.http.post("/api/v1/maintenance-windows", json=body)
    assert response.status_code == 422, response.text
    assert detail in response.text


async def test_roles_and_tenants(server: RunningServer, tenant: Tenant, tenant_factory: Any) -> None:
    machine = await tenant.add_machine()
    body = {
        "name": "w",
        "machine_id": machine,
        "frequency": "daily",
        "start_time": "01:00",
        "duration_seconds": 3600,
        "timezone": "UTC",
    }
    viewer = await tenant.add_user("viewer")
    operator = await tenant.add_user("operator")
    as_viewer = {"Authorization": f"Bearer {viewer['access_token']}"}
    as_operator = {"Authorization": f"Bearer {operator['access_token']}"}
    assert (await tenant.http.post("/api/v1/maintenance-windows", json=body, headers=as_viewer)).status_code == 403
    created = await tenant.http.post("/api/v1/maintenance-windows", json=body, headers=as_operator)
    assert created.status_code == 201, created.text
    window_id = created.json()["id"]
    assert (await tenant.http.get(f"/api/v1/maintenance-windows/{window_id}", headers=as_viewer)).status_code == 200
    stranger: Tenant = await tenant_factory()
    assert (await stranger.http.get(f"/api/v1/maintenance-windows/{window_id}")).status_code == 404
    assert (await stranger.http.delete(f"/api/v1/maintenance-windows/{window_id}")).status_code == 404
    foreign = {**body, "machine_id": await stranger.add_machine()}
    refused = await tenant.http.post("/api/v1/maintenance-windows", json=foreign)
    assert refused.status_code == 422
    assert (
        await tenant.http.delete(f"/api/v1/maintenance-windows/{window_id}", headers=as_operator)
    ).status_code == 204
