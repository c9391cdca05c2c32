"""Anomaly and forecast rules end to end: rules API, ingest, `alert` events on a real socket, derived series, and
a restart of a real server."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from haltless.core.timefmt import format_micros
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, next_event, start_server

START_US = 1_767_571_200_000_000  # 2026-01-05T00:00:00Z
PERIOD_US = 10_000_000
STEP_AT = 1200


def _at(index: int) -> str:
    return format_micros(START_US + index * PERIOD_US)


def _readings(machine_id: str, values: list[float], start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "machine_id": machine_id,
            "metric_name": "temperature",
            "value": value,
            "unit": "celsius",
            "timestamp": _at(start + offset),
        }
        for offset, value in enumerate(values)
    ]


def _noise(count: int = STEP_AT, seed: int = 2) -> list[float]:
    rng = random.Random(seed)
    return [round(60.0 + rng.gauss(0.0, 0.5), 3) for _ in range(count)]


async def _socket(server: RunningServer, tenant: Tenant) -> ClientConnection:
    ws = await connect(server.ws_url, open_timeout=EVENT_TIMEOUT)
    await ws.send(tenant.access_token)
    assert orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
    return ws


async def _ingest(tenant: Tenant, machine_id: str, values: list[float], start: int = 0, batch: int = 400) -> None:
    for offset in range(0, len(values), batch):
        response = await tenant.ingest(_readings(machine_id, values[offset : offset + batch], start + offset))
        assert response.status_code == 202, response.text


async def _create(tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await tenant.http.post(
        "/api/v1/alert-rules", json={"name": "watch", "metric_name": "temperature", **body}
    )
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


async def test_anomaly_rule_alerts_on_a_step_and_serves_its_score(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    rule = await _create(tenant, kind="anomaly", sensitivity="medium", severity="warning")
    assert (rule["kind"], rule["sensitivity"], rule["condition"], rule["threshold"]) == (
        "anomaly",
        "medium",
        None,
        None,
    )
    ws = await _socket(server, tenant)
    await _ingest(tenant, machine_id, _noise())
    step = [v + 5.0 for v in _noise(12, seed=9)]
    await _ingest(tenant, machine_id, step, start=STEP_AT)

    alert = await next_event(ws, only="alert")
    assert alert["created_at"] == _at(STEP_AT)
    assert alert["severity"] == "warning"
    assert alert["message"].startswith("Temperature is unusual: ")
    assert "°C where about 6" in alert["message"]
    stored = (await tenant.http.get(f"/api/v1/alerts/{alert['alert_id']}")).json()
    assert stored["rule_id"] == rule["id"] and stored["predicted_crossing_at"] is None
    await ws.close()

    derived = await tenant.http.get(
        "/api/v1/sensor-data/derived",
        params={
            "machine_id": machine_id,
            "metric_name": "temperature",
            "kind": "anomaly",
            "rule_id": rule["id"],
            "start": _at(1100),
            "end": _at(STEP_AT + 12),
        },
    )
    assert derived.status_code == 200, derived.text
    body = derived.json()
    assert body["score_threshold"] == 0.5 and not body["truncated"]
    items = body["items"]
    assert len(items) == 112 and items[0]["timestamp"] == _at(1100)
    at_step = items[STEP_AT - 1100]
    assert at_step["anomalous"] and at_step["score"] >= 0.5
    assert at_step["low"] <= at_step["expected"] <= at_step["high"] < at_step["value"]
    assert not any(item["anomalous"] for item in items[: STEP_AT - 1100])


async def test_forecast_rule_alerts_before_a_drift_crosses_and_follows_it(
    server: RunningServer, tenant: Tenant
) -> None:
    machine_id = await tenant.add_machine()
    rule = await _create(tenant, kind="forecast", condition=">", threshold=90.0, horizon_seconds=3600, severity="info")
    assert (rule["kind"], rule["horizon_seconds"], rule["sensitivity"]) == ("forecast", 3600.0, None)
    ws = await _socket(server, tenant)
    rng = random.Random(3)
    drift = [round(60.0 + rng.gauss(0.0, 0.5) + i * 0.05, 3) for i in range(560)]  # 18 °C/h, crosses near 600
    await _ingest(tenant, machine_id, drift, batch=40)

    alert = await next_event(ws, only="alert")
    assert alert["message"].startswith("Temperature will pass 90 °C in about ")
    assert alert["threshold_value"] == 90.0
    stored = (await tenant.http.get(f"/api/v1/alerts/{alert['alert_id']}")).json()
    assert stored["predicted_crossing_at"] is not None
    assert stored["predicted_crossing_at"] > alert["created_at"]
    updated = await next_event(ws, only="alert_updated")
    assert updated["alert_id"] == alert["alert_id"]
    assert updated["message"].startswith("Temperature will pass 90 °C in about ")
    await ws.close()

    derived = await tenant.http.get(
        "/api/v1/sensor-data/derived",
        params={
            "machine_id": machine_id,
            "metric_name": "temperature",
            "kind": "forecast",
            "rule_id": rule["id"],
            "start": _at(400),
            "end": _at(560),
        },
    )
    assert derived.status_code == 200, derived.text
    body = derived.json()
    assert (body["threshold"], body["direction"]) == (90.0, "above")
    latest = body["forecast"]
    assert latest["timestamp"] == _at(559) and latest["will_cross"]
    assert _at(560) < latest["crossing_at"] < _at(660)
    assert 15.0 < latest["slope_per_hour"] < 21.0


async def test_predictive_rule_parameters_are_checked_per_kind(server: RunningServer, tenant: Tenant) -> None:
    async def refused(body: dict[str, Any]) -> str:
        response = await tenant.http.post("/api/v1/alert-rules", json={"name": "x", "metric_name": "t", **body})
        assert response.status_code == 422, response.text
        detail: str = response.json()["detail"]
        return detail

    assert (await refused({"kind": "anomaly", "threshold": 3.0})).startswith(
        "threshold: not a parameter of anomaly rules"
    )
    assert await refused({"kind": "forecast", "condition": ">", "threshold": 9.0}) == (
        "horizon_seconds: required for forecast rules"
    )
    assert "horizon_seconds" in await refused(
        {"kind": "forecast", "condition": ">", "threshold": 9.0, "horizon_seconds": -5}
    )
    assert "window_readings" in await refused(
        {"kind": "forecast", "condition": ">", "threshold": 9.0, "horizon_seconds": 60, "window_readings": 4}
    )
    assert "sensitivity" in await refused({"kind": "anomaly", "sensitivity": "extreme"})
    assert (await refused({"kind": "anomaly", "hysteresis": 0.5})).startswith("hysteresis: for anomaly rules")
    assert await refused({"condition": ">"}) == "threshold: required for threshold rules"
    assert "kind" in await refused({"kind": "magic", "condition": ">", "threshold": 1.0})

    rule = await _create(tenant, kind="anomaly")
    assert rule["sensitivity"] == "medium"
    path = f"/api/v1/alert-rules/{rule['id']}"
    changed = await tenant.http.patch(path, json={"kind": "threshold", "condition": ">", "threshold": 1.0})
    assert changed.status_code == 422
    assert changed.json()["detail"].startswith("kind: cannot change (anomaly)")
    foreign = await tenant.http.patch(path, json={"horizon_seconds": 60})
    assert foreign.status_code == 422 and foreign.json()["detail"].startswith("horizon_seconds: not a parameter")
    edited = await tenant.http.patch(path, json={"sensitivity": "low", "kind": "anomaly"})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["sensitivity"], edited.json()["threshold"]) == ("low", None)
    listed = (await tenant.http.get("/api/v1/alert-rules")).json()
    assert [(r["kind"], r["sensitivity"]) for r in listed] == [("anomaly", "low")]


async def test_anomaly_detector_is_rebuilt_from_history_after_a_restart(
    server_factory: Any, tenant_factory: Any
) -> None:
    first = server_factory()
    tenant: Tenant = await tenant_factory(first)
    machine_id = await tenant.add_machine()
    await _create(tenant, kind="anomaly")
    await _ingest(tenant, machine_id, _noise())
    first.stop()

    # A new process has no detector in memory: without rebuilding from stored history it would be warming up
    # (300 readings) and the step would pass unnoticed.
    second = start_server(first.settings, port=first.port)
    try:
        ws = await _socket(second, tenant)
        await _ingest(tenant, machine_id, [v + 5.0 for v in _noise(12, seed=9)], start=STEP_AT)
        alert = await next_event(ws, only="alert")
        assert alert["created_at"] == _at(STEP_AT)
        await ws.close()
    finally:
        second.stop()
