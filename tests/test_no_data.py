"""`no_data` rules (issue 17): no reading of the metric for `for_seconds` opens an alert, the next reading resolves
it; a shorter gap raises nothing. Driven by the app's injected clock; across restarts and several processes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from haltless.core.clock import ManualClock
from haltless.server.clock import SystemClock
from tests.conftest import RunningServer, Tenant, start_server, wait_until

# The clock moves less than the access tokens' 15 minutes in every test (tokens follow the same clock).
FOR_SECONDS = 60.0


async def _pass(server: RunningServer) -> None:
    """Wait for a no_data pass that started after now (so it saw the clock as it is)."""
    watcher = server.state.no_data
    assert watcher is not None
    mark = watcher.passes_started
    await wait_until(lambda: watcher.passes_finished > mark, "a no_data pass")


async def _rule(tenant: Tenant, **extra: Any) -> dict[str, Any]:
    body = {"name": "Temperature silent", "metric_name": "temperature", "condition": "no_data", **extra}
    body.setdefault("for_seconds", FOR_SECONDS)
    response = await tenant.http.post("/api/v1/alert-rules", json=body)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


async def _read(tenant: Tenant, machine_id: str, metric: str = "temperature") -> None:
    reading = {"machine_id": machine_id, "metric_name": metric, "value": 20.0, "unit": "celsius"}
    response = await tenant.ingest([reading])
    assert response.status_code == 202, response.text


async def _alerts(tenant: Tenant) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    return items


async def test_silence_longer_than_for_seconds_alerts_and_the_next_reading_resolves(
    server_factory: Any, tenant_factory: Any
) -> None:
    clock = ManualClock(SystemClock().now_us())
    running = server_factory(clock=clock)
    tenant: Tenant = await tenant_factory(running)
    machine = await tenant.add_machine()
    other = await tenant.add_machine("Other")
    rule = await _rule(tenant)
    assert (rule["condition"], rule["threshold"], rule["for_seconds"]) == ("no_data", None, FOR_SECONDS)
    await _read(tenant, machine)

    # Gaps shorter than for_seconds, again and again: nothing (the pending period restarts at each reading).
    for _ in range(3):
        clock.advance(FOR_SECONDS - 1)
        await _pass(running)
        assert await _alerts(tenant) == []
        await _read(tenant, machine)
    await _read(tenant, other, "pressure")  # another metric does not feed the rule

    clock.advance(FOR_SECONDS)
    await _pass(running)
    alerts = await _alerts(tenant)
    # `other` never sent temperature: it is not watched.
    assert [(a["machine_id"], a["state"], a["metric_name"]) for a in alerts] == [(machine, "active", "temperature")]
    alert = alerts[0]
    assert (alert["metric_value"], alert["threshold_value"]) == (FOR_SECONDS, FOR_SECONDS)
    assert alert["message"] == "Temperature: no reading for 60 s"
    assert alert["rule_id"] == rule["id"]

    clock.advance(300)  # one alert per silence, however long it lasts
    await _pass(running)
    assert len(await _alerts(tenant)) == 1

    await _read(tenant, machine)
    resolved = await _alerts(tenant)
    assert [(a["state"], a["resolution"]) for a in resolved] == [("resolved", "cleared")]
    # Watching goes on from that reading.
    clock.advance(FOR_SECONDS)
    await _pass(running)
    assert [a["state"] for a in await _alerts(tenant)] == ["active", "resolved"]


async def test_maintenance_is_no_gap(server_factory: Any, tenant_factory: Any) -> None:
    clock = ManualClock(SystemClock().now_us())
    running = server_factory(clock=clock)
    tenant: Tenant = await tenant_factory(running)
    machine = await tenant.add_machine()
    await _rule(tenant)
    await _read(tenant, machine)
    assert (await tenant.http.patch(f"/api/v1/machines/{machine}", json={"maintenance": True})).status_code == 200
    clock.advance(5 * FOR_SECONDS)
    await _pass(running)
    assert await _alerts(tenant) == []
    assert (await tenant.http.patch(f"/api/v1/machines/{machine}", json={"maintenance": False})).status_code == 200
    clock.advance(FOR_SECONDS - 1)  # a fresh for_seconds from the end of maintenance
    await _pass(running)
    assert await _alerts(tenant) == []
    clock.advance(1)
    await _pass(running)
    assert len(await _alerts(tenant)) == 1


async def test_a_restart_counts_its_downtime_as_no_gap_and_keeps_watching(
    server_factory: Any, tenant_factory: Any
) -> None:
    clock = ManualClock(SystemClock().now_us())
    first = server_factory(clock=clock)
    tenant: Tenant = await tenant_factory(first)
    machine = await tenant.add_machine()
    await _rule(tenant)
    await _read(tenant, machine)
    clock.advance(60)
    first.stop()

    clock.advance(600)  # down for ten minutes: the agents buffered, this is no silence of the sensor
    second = start_server(first.settings, port=first.port, clock=clock)
    try:
        await _pass(second)
        assert await _alerts(tenant) == []
        clock.advance(FOR_SECONDS - 1)
        await _pass(second)
        assert await _alerts(tenant) == []
        clock.advance(1)
        await _pass(second)
        assert len(await _alerts(tenant)) == 1
    finally:
        second.stop()


async def test_two_processes_open_one_alert(database_backend: str, server_factory: Any, tenant_factory: Any) -> None:
    """Shared mode: the reading arrives at one process, both watch, one alert opens."""
    if database_backend != "postgresql":
        pytest.skip("several server processes share a PostgreSQL database; SQLite is one process's")
    clock = ManualClock(SystemClock().now_us())
    shared = {"bus_url": "redis://127.0.0.1:6379/0", "bus_prefix": f"nodata-{uuid.uuid4().hex[:10]}"}
    first, second = server_factory(clock=clock, **shared), server_factory(clock=clock, **shared)
    tenant: Tenant = await tenant_factory(first)
    machine = await tenant.add_machine()
    await _rule(tenant)
    await _read(tenant, machine)
    clock.advance(FOR_SECONDS)
    for _ in range(3):
        await _pass(second)
        await _pass(first)
    assert [a["state"] for a in await _alerts(tenant)] == ["active"]


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ({"for_seconds": 0}, "for_seconds: no_data rules need for_seconds > 0"),
        ({"threshold": 5.0}, "threshold: not a parameter of no_data rules"),
        ({"kind": "forecast", "horizon_seconds": 60}, "condition: no_data is a condition of threshold rules"),
    ],
)
async def test_no_data_rule_validation(
    server: RunningServer, tenant: Tenant, extra: dict[str, Any], detail: str
) -> None:
    body = {"name": "r", "metric_name": "temperature", "condition": "no_data", "for_seconds": 60, **extra}
    response = await tenant.http.post("/api/v1/alert-rules", json=body)
    assert response.status_code == 422, response.text
    assert detail in response.text
