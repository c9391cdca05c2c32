"""Flap detection end to end (issue 17, done-when): a value oscillating ±0.5 % around a threshold at 1 Hz for one
simulated hour reaches each channel at most once, as one `flapping` alert; without flap detection it would not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from haltless.core.clock import ManualClock
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, next_event, start_server
from tests.notifications.conftest import WebhookReceiver, run_cycle

THRESHOLD = 100.0


def _value(second: int) -> float:
    """±0.5 % around the threshold, crossing it every reading (1 Hz)."""
    return THRESHOLD * (1.005 if second % 2 == 0 else 0.995)


async def _setup(tenant: Tenant, receiver: WebhookReceiver, flap_threshold: int | None) -> tuple[str, str]:
    for path in ("a", "b"):  # two channels, one receiver: told apart by the query string
        body = {
            "name": f"Hook {path}",
            "type": "webhook",
            "webhook": {"url": f"{receiver.url}?{path}", "secret": "s" * 16},
        }
        created = await tenant.http.post("/api/v1/notification-channels", json=body)
        assert created.status_code == 201, created.text
    channels = [c["id"] for c in (await tenant.http.get("/api/v1/notification-channels")).json()]
    # The default grouping: the first change of a group waits 30 s, a group is sent at most every 5 minutes.
    policy = await tenant.http.post(
        "/api/v1/notification-policies", json={"name": "All", "channel_ids": channels, "is_default": True}
    )
    assert policy.status_code == 201, policy.text
    rule: dict[str, Any] = {"name": "Hot", "metric_name": "temperature", "condition": ">", "threshold": THRESHOLD}
    if flap_threshold is None:
        rule["flap_threshold"] = None
    created_rule = await tenant.http.post("/api/v1/alert-rules", json=rule)
    assert created_rule.status_code == 201, created_rule.text
    out = created_rule.json()
    assert (out["flap_threshold"], out["flap_window_seconds"]) == (flap_threshold, 600.0)
    return out["id"], await tenant.add_machine("Extruder")


async def _oscillate(server: RunningServer, tenant: Tenant, clock: ManualClock, machine: str, seconds: int) -> None:
    """`seconds` readings at 1 Hz (measurement time), the dispatcher's clock moving along: 5 s batches for the
    first minute (the flap builds up across several batches and cycles), then one batch a minute."""
    start = datetime.now(UTC) - timedelta(seconds=seconds + 5)
    sent = 0
    while sent < seconds:
        size = 5 if sent < 60 else 60
        batch = [
            {
                "machine_id": machine,
                "metric_name": "temperature",
                "value": _value(n),
                "unit": "celsius",
                "timestamp": (start + timedelta(seconds=n)).isoformat(),
            }
            for n in range(sent, min(seconds, sent + size))
        ]
        response = await tenant.ingest(batch)
        assert response.status_code == 202 and response.json()["accepted"] == len(batch), response.text
        sent += len(batch)
        clock.advance(len(batch))
        await run_cycle(server)
    clock.advance(60)  # past every group_wait
    await run_cycle(server)


def _per_channel(receiver: WebhookReceiver) -> dict[str, list[dict[str, Any]]]:
    bodies: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    for request in receiver.delivered():
        bodies[request.path.rpartition("?")[2]].append(orjson.loads(request.body))
    return bodies


async def test_an_hour_of_flapping_is_at_most_one_notification_per_channel(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    rule_id, machine = await _setup(tenant, receiver, flap_threshold=3)
    ws = await connect(server.ws_url, open_timeout=EVENT_TIMEOUT)
    await ws.send(tenant.access_token)
    # The first heartbeat: the socket has joined the hub before the first reading.
    assert (await next_event(ws, skip_heartbeats=False))["type"] == "heartbeat"
    await _oscillate(server, tenant, clock, machine, 3600)

    for channel, bodies in _per_channel(receiver).items():
        assert len(bodies) <= 1, (channel, [b["kind"] for b in bodies])
        # … and exactly one: the flap is announced, as one firing alert whose state says it is flapping.
        assert [(b["kind"], [a["state"] for a in b["alerts"]]) for b in bodies] == [("firing", ["flapping"])]
    alerts = (await tenant.http.get("/api/v1/alerts", params={"rule_id": rule_id})).json()["items"]
    # Three plain alerts opened and cleared (their notifications were superseded before group_wait ended), then the
    # fourth opened flapping and stays open while the value keeps crossing.
    assert [(a["state"], a["flapping"]) for a in alerts] == [("active", True)] + [("resolved", False)] * 3
    flapping = alerts[0]
    assert body_alert_id(receiver) == flapping["id"]
    event = await next_event(ws, only="alert_flapping", timeout=EVENT_TIMEOUT)
    assert (event["alert_id"], event["machine_id"], event["rule_id"]) == (flapping["id"], machine, rule_id)
    assert event["alerts_in_window"] == 4
    await ws.close()


def body_alert_id(receiver: WebhookReceiver) -> str:
    alert_id: str = orjson.loads(receiver.delivered()[0].body)["alerts"][0]["alert_id"]
    return alert_id


async def test_without_flap_detection_the_same_oscillation_notifies_again_and_again(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    """The control: the scenario above is one that floods channels when flap detection is off (ten minutes)."""
    _, machine = await _setup(tenant, receiver, flap_threshold=None)
    await _oscillate(server, tenant, clock, machine, 600)
    for bodies in _per_channel(receiver).values():
        assert len(bodies) > 2
        assert {b["kind"] for b in bodies} == {"firing", "resolved"}
    alerts = (await tenant.http.get("/api/v1/alerts", params={"limit": 1000})).json()["items"]
    assert len(alerts) == 300
    assert not any(a["flapping"] for a in alerts)


@pytest.mark.parametrize("field", ["flap_threshold", "flap_window_seconds"])
async def test_flap_settings_are_validated(server: RunningServer, tenant: Tenant, field: str) -> None:
    base = {"name": "r", "metric_name": "temperature", "condition": ">", "threshold": 1.0}
    response = await tenant.http.post("/api/v1/alert-rules", json={**base, field: 0})
    assert response.status_code == 422
    assert field in response.text


async def test_a_flap_survives_a_restart(server: RunningServer, tenant: Tenant) -> None:
    """The flap detector's memory is stored with the rule's state: after a restart the flapping alert stays open
    while the value keeps crossing, and clears after a calm window, with no new alert."""
    rule = await tenant.http.post(
        "/api/v1/alert-rules",
        json={"name": "Hot", "metric_name": "temperature", "condition": ">", "threshold": THRESHOLD},
    )
    assert rule.status_code == 201, rule.text
    machine = await tenant.add_machine("Extruder")
    start = datetime.now(UTC) - timedelta(hours=1)

    async def send(seconds: range, value: float | None = None) -> None:
        batch = [
            {
                "machine_id": machine,
                "metric_name": "temperature",
                "value": _value(n) if value is None else value,
                "unit": "celsius",
                "timestamp": (start + timedelta(seconds=n)).isoformat(),
            }
            for n in seconds
        ]
        response = await tenant.ingest(batch)
        assert response.status_code == 202, response.text

    async def alerts() -> list[tuple[str, bool]]:
        items = (await tenant.http.get("/api/v1/alerts")).json()["items"]
        return [(a["state"], a["flapping"]) for a in items]

    await send(range(10))
    assert await alerts() == [("active", True)] + [("resolved", False)] * 3
    server.stop()
    again = start_server(server.settings, port=server.port)
    try:
        await send(range(10, 30))
        assert await alerts() == [("active", True)] + [("resolved", False)] * 3
        # The last crossing reading (t = 29 s) cleared: calm since then, across another restart.
        await send(range(30, 31), THRESHOLD * 0.99)
        again.stop()
        again = start_server(server.settings, port=server.port)
        await send(range(628, 629), THRESHOLD * 0.99)
        assert await alerts() == [("active", True)] + [("resolved", False)] * 3
        await send(range(629, 630), THRESHOLD * 0.99)  # a whole window (600 s) without a breach
        assert await alerts() == [("resolved", True)] + [("resolved", False)] * 3
    finally:
        again.stop()
