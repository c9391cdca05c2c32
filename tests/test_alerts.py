"""Alert rules, the alert lifecycle and machine health over a real server and socket."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from haltless.core.clock import ManualClock
from haltless.core.timefmt import format_micros
from haltless.server.clock import SystemClock
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, next_event, start_server

ALERT_FIELDS = [
    "type",
    "alert_id",
    "machine_id",
    "severity",
    "message",
    "metric_value",
    "threshold_value",
    "created_at",
]
STATUS_FIELDS = ["type", "machine_id", "old_status", "new_status", "timestamp"]


async def _socket(server: RunningServer, tenant: Tenant) -> ClientConnection:
    ws = await connect(server.ws_url, open_timeout=EVENT_TIMEOUT)
    await ws.send(tenant.access_token)
    assert orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
    return ws


async def _events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await next_event(ws) for _ in range(count)]


async def _rule(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Too hot",
        "metric_name": "temperature",
        "condition": ">",
        "threshold": 85.0,
        "severity": "critical",
    }
    body.update(overrides)
    response = await tenant.http.post("/api/v1/alert-rules", json=body)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


def _reading(machine_id: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"machine_id": machine_id, "metric_name": "temperature", "value": value, "unit": "celsius", **extra}


async def test_crossing_reading_emits_update_alert_status_in_order(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    await _rule(tenant, hysteresis=2.0)
    ws = await _socket(server, tenant)

    await tenant.ingest([_reading(machine_id, 70.0, timestamp="2026-01-05T10:30:00Z")])
    update, online = await _events(ws, 2)
    assert update["type"] == "sensor_update"
    assert list(online) == [*STATUS_FIELDS, "event_id"]
    assert (online["old_status"], online["new_status"]) == ("offline", "healthy")

    await tenant.ingest([_reading(machine_id, 87.3, timestamp="2026-01-05T10:30:05Z")])
    update, alert, status = await _events(ws, 3)
    assert update["type"] == "sensor_update"
    assert update["value"] == 87.3
    assert list(alert) == [*ALERT_FIELDS, "event_id"]
    assert alert["machine_id"] == machine_id
    assert alert["severity"] == "critical"
    assert alert["message"] == "Temperature exceeded threshold"
    assert alert["metric_value"] == 87.3
    assert alert["threshold_value"] == 85.0
    assert alert["created_at"] == "2026-01-05T10:30:05Z"
    assert list(status) == [*STATUS_FIELDS, "event_id"]
    assert (status["machine_id"], status["old_status"], status["new_status"]) == (machine_id, "healthy", "critical")

    # Still breaching, or inside the hysteresis band: nothing new beyond the reading itself. (A tenant's events
    # arrive in the order they happened, so the next batch's events coming next proves nothing came between.)
    await tenant.ingest([_reading(machine_id, 90.0), _reading(machine_id, 84.0)])
    assert [e["type"] for e in await _events(ws, 2)] == ["sensor_update", "sensor_update"]

    await tenant.ingest([_reading(machine_id, 82.0)])
    update, resolved, status = await _events(ws, 3)
    assert update["type"] == "sensor_update"
    assert resolved["type"] == "alert_resolved"
    assert resolved["alert_id"] == alert["alert_id"]
    assert resolved["resolution"] == "cleared"
    assert (status["old_status"], status["new_status"]) == ("critical", "healthy")

    listed = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    assert [(a["id"], a["state"], a["resolution"]) for a in listed] == [(alert["alert_id"], "resolved", "cleared")]
    machine = (await tenant.http.get(f"/api/v1/machines/{machine_id}")).json()
    assert machine["status"] == "healthy"
    await ws.close()


async def test_worst_active_alert_sets_status(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    await _rule(tenant, name="warm", threshold=70.0, severity="warning")
    await _rule(tenant, name="hot", threshold=85.0, severity="critical")
    await _rule(tenant, name="note", threshold=60.0, severity="info")
    await tenant.ingest([_reading(machine_id, 65.0)])
    assert (await tenant.http.get(f"/api/v1/machines/{machine_id}")).json()["status"] == "healthy"
    await tenant.ingest([_reading(machine_id, 75.0)])
    assert (await tenant.http.get(f"/api/v1/machines/{machine_id}")).json()["status"] == "warning"
    await tenant.ingest([_reading(machine_id, 90.0)])
    assert (await tenant.http.get(f"/api/v1/machines/{machine_id}")).json()["status"] == "critical"
    await tenant.ingest([_reading(machine_id, 75.0)])
    assert (await tenant.http.get(f"/api/v1/machines/{machine_id}")).json()["status"] == "warning"
    open_alerts = (await tenant.http.get("/api/v1/alerts", params={"state": "open"})).json()["items"]
    assert sorted(a["severity"] for a in open_alerts) == ["info", "warning"]


async def test_acknowledge_and_resolve(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    await _rule(tenant)
    ws = await _socket(server, tenant)
    await tenant.ingest([_reading(machine_id, 90.0)])
    _, alert, _ = await _events(ws, 3)
    alert_id = alert["alert_id"]
    viewer = await tenant.add_user("viewer")
    denied = await tenant.http.post(
        f"/api/v1/alerts/{alert_id}/acknowledge", headers={"Authorization": f"Bearer {viewer['access_token']}"}
    )
    assert denied.status_code == 403

    acked = await tenant.http.post(f"/api/v1/alerts/{alert_id}/acknowledge")
    assert acked.status_code == 200
    assert acked.json()["state"] == "acknowledged"
    event = await next_event(ws)
    assert event["type"] == "alert_acknowledged"
    assert event["alert_id"] == alert_id

    resolved = await tenant.http.post(f"/api/v1/alerts/{alert_id}/resolve")
    assert resolved.json()["state"] == "resolved"
    assert resolved.json()["resolution"] == "manual"
    resolved_event, status = await _events(ws, 2)
    assert resolved_event["type"] == "alert_resolved"
    assert (status["old_status"], status["new_status"]) == ("critical", "healthy")
    again = await tenant.http.post(f"/api/v1/alerts/{alert_id}/resolve")
    assert again.status_code == 409
    assert again.json()["detail"] == "alert is already resolved"
    assert (await tenant.http.post(f"/api/v1/alerts/{alert_id}/acknowledge")).status_code == 409

    # Resolved by hand while still too hot: no instant re-open; the value has to clear first.
    await tenant.ingest([_reading(machine_id, 95.0)])
    assert (await next_event(ws))["type"] == "sensor_update"
    await tenant.ingest([_reading(machine_id, 50.0)])
    await tenant.ingest([_reading(machine_id, 95.0)])
    kinds = [e["type"] for e in await _events(ws, 4)]
    assert kinds == ["sensor_update", "sensor_update", "alert", "machine_status"]
    await ws.close()


async def test_restart_neither_repeats_nor_forgets(
    server_factory: Any, tenant_factory: Any, make_settings: Any
) -> None:
    first = server_factory()
    tenant: Tenant = await tenant_factory(first)
    machine_id = await tenant.add_machine()
    await _rule(tenant, for_seconds=10)
    await tenant.ingest([_reading(machine_id, 90.0, timestamp="2026-01-05T10:00:00Z")])
    first.stop()

    second = start_server(first.settings, port=first.port)
    try:
        ws = await _socket(second, tenant)
        # The pending breach survived the restart: 11 s after its start the alert opens.
        await tenant.ingest([_reading(machine_id, 91.0, timestamp="2026-01-05T10:00:11Z")])
        _update, alert = await _events(ws, 2)
        assert alert["type"] == "alert"
        assert alert["created_at"] == "2026-01-05T10:00:11Z"
        await ws.close()
    finally:
        second.stop()

    third = start_server(first.settings, port=first.port)
    try:
        ws = await _socket(third, tenant)
        await tenant.ingest([_reading(machine_id, 92.0, timestamp="2026-01-05T10:00:12Z")])
        assert (await next_event(ws))["type"] == "sensor_update"
        alerts = (await tenant.http.get("/api/v1/alerts")).json()["items"]
        assert len(alerts) == 1
        assert alerts[0]["state"] == "active"
        await tenant.ingest([_reading(machine_id, 10.0, timestamp="2026-01-05T10:00:13Z")])
        kinds = [e["type"] for e in await _events(ws, 3)]
        assert kinds == ["sensor_update", "alert_resolved", "machine_status"]
        await ws.close()
    finally:
        third.stop()


async def test_restart_still_ignores_readings_older_than_those_evaluated(
    server_factory: Any, tenant_factory: Any
) -> None:
    # What is late is decided by the series' newest reading (Fleet.series_ts), which is not written per batch:
    # the restarted server must recover it from the stored readings, or this late, older breach would open an alert.
    first = server_factory()
    tenant: Tenant = await tenant_factory(first)
    machine_id = await tenant.add_machine()
    await _rule(tenant)
    await tenant.ingest([_reading(machine_id, 20.0, timestamp="2026-01-05T10:00:10Z")])
    first.stop()

    second = start_server(first.settings, port=first.port)
    try:
        ws = await _socket(second, tenant)
        await tenant.ingest([_reading(machine_id, 99.0, timestamp="2026-01-05T10:00:05Z")])
        assert (await next_event(ws))["type"] == "sensor_update"
        await tenant.ingest([_reading(machine_id, 99.0, timestamp="2026-01-05T10:00:11Z")])
        assert [e["type"] for e in await _events(ws, 3)] == ["sensor_update", "alert", "machine_status"]
        await ws.close()
    finally:
        second.stop()


async def test_a_rule_made_after_a_series_newest_reading_skips_older_ones(
    server: RunningServer, tenant: Tenant
) -> None:
    # One clock per series, not per rule: a rule created later treats a late reading as every rule of the series
    # does, and as it would after a restart.
    machine_id = await tenant.add_machine()
    await tenant.ingest([_reading(machine_id, 20.0, timestamp="2026-01-05T10:00:10Z")])
    await _rule(tenant)
    ws = await _socket(server, tenant)
    await tenant.ingest([_reading(machine_id, 99.0, timestamp="2026-01-05T10:00:05Z")])
    assert (await next_event(ws))["type"] == "sensor_update"
    await tenant.ingest([_reading(machine_id, 99.0, timestamp="2026-01-05T10:00:11Z")])
    assert [e["type"] for e in await _events(ws, 3)] == ["sensor_update", "alert", "machine_status"]
    await ws.close()


async def test_silent_machine_turns_offline_and_back(server_factory: Any, tenant_factory: Any) -> None:
    running = server_factory(offline_after=0.6)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()
    never = await tenant.add_machine("never reports")
    ws = await _socket(running, tenant)
    await tenant.ingest([_reading(machine_id, 20.0)])
    _, online = await _events(ws, 2)
    assert online["new_status"] == "healthy"
    offline = await next_event(ws)
    assert (offline["machine_id"], offline["old_status"], offline["new_status"]) == (machine_id, "healthy", "offline")
    # Exactly one event per change, none for the machine that never reported: the next events are the reading's.
    await tenant.ingest([_reading(machine_id, 20.0)])
    update, back = await _events(ws, 2)
    assert update["type"] == "sensor_update"
    assert (back["machine_id"], back["old_status"], back["new_status"]) == (machine_id, "offline", "healthy")
    assert (await tenant.http.get(f"/api/v1/machines/{never}")).json()["status"] == "offline"
    await ws.close()


async def test_offline_follows_the_injected_clock(server_factory: Any, tenant_factory: Any) -> None:
    """The app's one clock decides when a machine is silent: moving a manual clock on turns it offline."""
    clock = ManualClock(SystemClock().now_us())
    running = server_factory(offline_after=60.0, clock=clock)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()
    ws = await _socket(running, tenant)
    await tenant.ingest([_reading(machine_id, 20.0)])
    _, online = await _events(ws, 2)
    assert online["new_status"] == "healthy"
    clock.advance(60.0)
    offline = await next_event(ws)
    assert (offline["machine_id"], offline["old_status"], offline["new_status"]) == (machine_id, "healthy", "offline")
    assert offline["timestamp"] == format_micros(clock.now_us())
    await ws.close()


async def test_maintenance_suppresses_alerts(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    await _rule(tenant)
    ws = await _socket(server, tenant)
    await tenant.ingest([_reading(machine_id, 20.0)])
    await _events(ws, 2)
    patched = await tenant.http.patch(f"/api/v1/machines/{machine_id}", json={"maintenance": True})
    assert patched.json()["status"] == "maintenance"
    assert patched.json()["maintenance"] is True
    status = await next_event(ws)
    assert (status["old_status"], status["new_status"]) == ("healthy", "maintenance")
    await tenant.ingest([_reading(machine_id, 99.0)])
    assert (await next_event(ws))["type"] == "sensor_update"
    # No alert in between: the next event is the status change of leaving maintenance.
    await tenant.http.patch(f"/api/v1/machines/{machine_id}", json={"maintenance": False})
    status = await next_event(ws)
    assert (status["old_status"], status["new_status"]) == ("maintenance", "healthy")
    assert (await tenant.http.get("/api/v1/alerts")).json()["items"] == []
    await ws.close()


async def test_editing_or_deleting_a_rule_resolves_its_alerts(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    rule = await _rule(tenant)
    ws = await _socket(server, tenant)
    await tenant.ingest([_reading(machine_id, 90.0)])
    await _events(ws, 3)
    renamed = await tenant.http.patch(f"/api/v1/alert-rules/{rule['id']}", json={"name": "Spindle hot"})
    assert renamed.json()["name"] == "Spindle hot"
    raised = await tenant.http.patch(f"/api/v1/alert-rules/{rule['id']}", json={"threshold": 95.0})
    assert raised.json()["threshold"] == 95.0
    resolved, status = await _events(ws, 2)
    assert (resolved["type"], resolved["resolution"]) == ("alert_resolved", "rule_changed")
    assert status["new_status"] == "healthy"
    await tenant.ingest([_reading(machine_id, 96.0)])
    assert [e["type"] for e in await _events(ws, 3)] == ["sensor_update", "alert", "machine_status"]
    assert (await tenant.http.delete(f"/api/v1/alert-rules/{rule['id']}")).status_code == 204
    resolved, status = await _events(ws, 2)
    assert resolved["resolution"] == "rule_deleted"
    assert (await tenant.http.get(f"/api/v1/alert-rules/{rule['id']}")).status_code == 404
    history = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    assert [a["resolution"] for a in history] == ["rule_deleted", "rule_changed"]
    await ws.close()


async def test_rule_for_one_machine_only(server: RunningServer, tenant: Tenant) -> None:
    watched, other = await tenant.add_machine("A"), await tenant.add_machine("B")
    await _rule(tenant, machine_id=watched)
    await tenant.ingest([_reading(other, 99.0), _reading(watched, 99.0)])
    alerts = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    assert [a["machine_id"] for a in alerts] == [watched]


async def test_rule_validation(server: RunningServer, tenant_factory: Any) -> None:
    tenant: Tenant = await tenant_factory()
    stranger: Tenant = await tenant_factory()
    foreign = await stranger.add_machine()
    base = {"name": "r", "metric_name": "temperature", "condition": ">", "threshold": 1.0}
    cases = [
        ({**base, "condition": "=>"}, "condition"),
        ({**base, "for_seconds": -1}, "for_seconds"),
        ({**base, "hysteresis": -0.5}, "hysteresis"),
        ({**base, "severity": "fatal"}, "severity"),
        ({**base, "machine_id": foreign}, "machine_id"),
        ({**base, "machine_id": "nope"}, "machine_id"),
        ({**base, "metric_name": "bad name"}, "metric_name"),
        ({**base, "message": "{machine} too hot"}, "placeholder"),
        ({**base, "threshold": "high"}, "threshold"),
        ({k: v for k, v in base.items() if k != "threshold"}, "threshold"),
        ({**base, "colour": "red"}, "colour"),
    ]
    for body, word in cases:
        response = await tenant.http.post("/api/v1/alert-rules", json=body)
        assert response.status_code == 422, body
        assert word in response.json()["detail"], (body, response.json())
    rule = await _rule(tenant)
    bad_patch = await tenant.http.patch(f"/api/v1/alert-rules/{rule['id']}", json={"threshold": None})
    assert bad_patch.status_code == 422
    operator = await tenant.add_user("operator")
    denied = await tenant.http.post(
        "/api/v1/alert-rules", json=base, headers={"Authorization": f"Bearer {operator['access_token']}"}
    )
    assert denied.status_code == 403
    assert (await stranger.http.get(f"/api/v1/alert-rules/{rule['id']}")).status_code == 404
    assert (await stranger.http.get("/api/v1/alert-rules")).json() == []


async def test_alert_list_filters_and_pages(server: RunningServer, tenant_factory: Any) -> None:
    tenant: Tenant = await tenant_factory()
    stranger: Tenant = await tenant_factory()
    machines = [await tenant.add_machine(f"M{i}") for i in range(5)]
    await _rule(tenant, severity="warning")
    await tenant.ingest([_reading(m, 90.0, timestamp=f"2026-01-05T10:00:0{i}Z") for i, m in enumerate(machines)])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "state": "active", "severity": "warning"}
        if cursor:
            params["cursor"] = cursor
        page = (await tenant.http.get("/api/v1/alerts", params=params)).json()
        seen += [a["machine_id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(machines))
    only = (await tenant.http.get("/api/v1/alerts", params={"machine_id": machines[2]})).json()["items"]
    assert [a["machine_id"] for a in only] == [machines[2]]
    assert (await tenant.http.get("/api/v1/alerts", params={"severity": "critical"})).json()["items"] == []
    for params in ({"state": "sleeping"}, {"cursor": "garbage"}, {"machine_id": "x"}, {"limit": 0}):
        response = await tenant.http.get("/api/v1/alerts", params=params)
        assert response.status_code == 422, params
    assert (await stranger.http.get("/api/v1/alerts")).json()["items"] == []
    alert_id = only[0]["id"]
    assert (await stranger.http.get(f"/api/v1/alerts/{alert_id}")).status_code == 404
    assert (await stranger.http.post(f"/api/v1/alerts/{alert_id}/resolve")).status_code == 404


async def test_concurrent_rule_edits_all_take_effect(server: RunningServer, tenant: Tenant) -> None:
    """Each PATCH reads the rule inside its change, so edits of different fields made at once are all kept."""
    machine_id = await tenant.add_machine()
    rule = await _rule(tenant)
    edits: list[dict[str, Any]] = [
        {"name": "Spindle too hot"},
        {"threshold": 90.5},
        {"severity": "warning"},
        {"for_seconds": 30.0},
        {"hysteresis": 1.5},
        {"message": "{metric_name} at {value}"},
        {"condition": ">="},
        {"machine_id": machine_id},
        {"metric_name": "spindle_temperature"},
        {"enabled": False},
    ]
    url = f"/api/v1/alert-rules/{rule['id']}"
    responses = await asyncio.gather(*(tenant.http.patch(url, json=edit) for edit in edits))
    assert [r.status_code for r in responses] == [200] * len(edits)
    stored = (await tenant.http.get(url)).json()
    for edit in edits:
        for field, value in edit.items():
            assert stored[field] == value, (field, stored)


async def test_alert_history_filters_by_time_and_exports_csv_with_who_acknowledged(
    server: RunningServer, tenant_factory: Any
) -> None:
    """Every alert (not only open ones) by time range, with the acknowledging user's email, and the same
    filtered list as CSV."""
    tenant: Tenant = await tenant_factory()
    stranger: Tenant = await tenant_factory()
    before = datetime.now(UTC) - timedelta(seconds=1)
    press, pump = await tenant.add_machine('Press, "big"'), await tenant.add_machine("Pump")
    rule = await _rule(tenant)
    await tenant.ingest([_reading(press, 90.0), _reading(pump, 91.0)])
    listed = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    by_machine = {a["machine_id"]: a for a in listed}
    acked = await tenant.http.post(f"/api/v1/alerts/{by_machine[press]['id']}/acknowledge")
    assert acked.status_code == 200
    await tenant.http.post(f"/api/v1/alerts/{by_machine[pump]['id']}/resolve")
    after = datetime.now(UTC) + timedelta(seconds=1)

    window = {"start": before.isoformat(), "end": after.isoformat()}
    everything = (await tenant.http.get("/api/v1/alerts", params=window)).json()["items"]
    assert {a["state"] for a in everything} == {"acknowledged", "resolved"}
    mine = next(a for a in everything if a["machine_id"] == press)
    assert mine["acknowledged_by_email"] == tenant.admin_email
    assert mine["acknowledged_at"] is not None
    earlier = {"start": "2020-01-01T00:00:00Z", "end": before.isoformat()}
    assert (await tenant.http.get("/api/v1/alerts", params=earlier)).json()["items"] == []
    for bad in ({"start": "yesterday"}, {"start": after.isoformat(), "end": before.isoformat()}):
        response = await tenant.http.get("/api/v1/alerts", params=bad)
        assert response.status_code == 422, bad
        assert response.json()["detail"].startswith(("start:", "end:"))

    export = await tenant.http.get("/api/v1/alerts/export", params={**window, "state": "acknowledged"})
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 1
    assert rows[0]["machine_name"] == 'Press, "big"'
    assert rows[0]["acknowledged_by"] == tenant.admin_email
    assert rows[0]["rule_id"] == rule["id"]
    assert rows[0]["severity"] == "critical"
    whole = list(csv.DictReader(io.StringIO((await tenant.http.get("/api/v1/alerts/export")).text)))
    assert {r["state"] for r in whole} == {"acknowledged", "resolved"}
    assert (await stranger.http.get("/api/v1/alerts/export")).text.splitlines()[1:] == []
