"""Shelving and escalation against the real dispatcher, driven by one ManualClock (the app's and the
dispatcher's): a shelved alert gets no reminders or escalation until its shelf ends, then they resume; an
escalation is audited and can raise the alert's severity, which the socket and the machine's status show."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from haltless.core.clock import ManualClock
from tests.conftest import RunningServer, Tenant, next_event
from tests.notifications.conftest import WebhookReceiver, run_cycle
from tests.notifications.test_delivery import SECRET, _policy, _reading, _webhook
from tests.test_alerts import _socket


@pytest.fixture
def app_clock() -> ManualClock:
    return ManualClock(time.time_ns() // 1000)


@pytest.fixture
def server(server_factory: Callable[..., RunningServer], app_clock: ManualClock) -> RunningServer:
    """Webhooks may reach loopback; the app and its dispatcher run on `app_clock`; machines never go offline."""
    running = server_factory(
        clock=app_clock, ws_heartbeat_interval=30.0, webhook_allow_networks="127.0.0.0/8", offline_after=86_400
    )
    running.state.notifier.clock = app_clock.now_us
    return running


async def _boss(tenant: Tenant, receiver: WebhookReceiver) -> str:
    created = await tenant.http.post(
        "/api/v1/notification-channels",
        json={"name": "Boss", "type": "webhook", "webhook": {"url": receiver.url + "/boss", "secret": SECRET}},
    )
    assert created.status_code == 201, created.text
    boss: str = created.json()["id"]
    return boss


async def _warning_rule(tenant: Tenant) -> None:
    body = {"name": "warm", "metric_name": "temperature", "condition": ">", "threshold": 85.0, "severity": "warning"}
    assert (await tenant.http.post("/api/v1/alert-rules", json=body)).status_code == 201


def _sent(receiver: WebhookReceiver) -> list[tuple[str, str, list[str]]]:
    out = []
    for request in receiver.requests:
        body: dict[str, Any] = orjson.loads(request.body)
        out.append((request.path, body["kind"], [a["alert_id"] for a in body["alerts"]]))
    return out


async def test_a_shelved_alert_waits_for_its_shelf_then_escalates_and_is_raised(
    server: RunningServer, tenant: Tenant, app_clock: ManualClock, receiver: WebhookReceiver
) -> None:
    hook, boss = await _webhook(tenant, receiver), await _boss(tenant, receiver)
    policy = await _policy(
        tenant,
        [hook],
        group_wait=0,
        matchers={"kinds": ["firing"]},
        repeat_interval=120,
        escalate_after=300,
        escalation_channel_ids=[boss],
        escalation_severity="critical",
    )
    assert policy["escalation_severity"] == "critical"
    await _warning_rule(tenant)
    shelved_machine, plain_machine = await tenant.add_machine("Kiln 1"), await tenant.add_machine("Kiln 2")
    ws = await _socket(server, tenant)
    await tenant.ingest([_reading(shelved_machine, 99.0), _reading(plain_machine, 99.0)])
    await run_cycle(server)
    alerts = (await tenant.http.get("/api/v1/alerts", params={"state": "open"})).json()["items"]
    by_machine = {a["machine_id"]: a["id"] for a in alerts}
    shelved, plain = by_machine[shelved_machine], by_machine[plain_machine]
    response = await tenant.http.post(
        f"/api/v1/alerts/{shelved}/shelve", json={"duration_seconds": 600, "comment": "waiting for parts"}
    )
    assert response.status_code == 200, response.text
    assert [(path, kind, sorted(ids)) for path, kind, ids in _sent(receiver)] == [
        ("/hook", "firing", sorted([shelved, plain]))
    ]

    for _ in range(4):  # 120 s steps up to 480 s: the unshelved alert's reminders and escalation only
        app_clock.advance(120)
        await run_cycle(server)
    follow_ups = [(path, kind, ids) for path, kind, ids in _sent(receiver)[1:]]
    assert all(ids == [plain] for _, _, ids in follow_ups), follow_ups
    assert ("/hook/boss", "escalated", [plain]) in follow_ups
    assert [k for _, k, _ in follow_ups].count("reminder") == 4
    assert (await tenant.http.get(f"/api/v1/alerts/{shelved}")).json()["severity"] == "warning"

    # The shelf ends at 600 s: what fell due meanwhile goes out at once, and the escalation raises the severity.
    before = len(receiver.requests)
    app_clock.advance(119)
    await run_cycle(server)
    assert len(receiver.requests) == before  # 599 s: still shelved
    app_clock.advance(1)
    await run_cycle(server)
    resumed = _sent(receiver)[before:]
    assert sorted((path, kind) for path, kind, ids in resumed if shelved in ids) == [
        ("/hook", "reminder"),
        ("/hook/boss", "escalated"),
    ]
    assert (await tenant.http.get(f"/api/v1/alerts/{shelved}")).json()["severity"] == "critical"
    assert (await tenant.http.get(f"/api/v1/machines/{shelved_machine}")).json()["status"] == "critical"
    escalated = await next_event(ws, only="alert_escalated")
    assert (escalated["alert_id"], escalated["previous_severity"], escalated["severity"]) == (
        plain,
        "warning",
        "critical",
    )
    assert escalated["policy_id"] == policy["id"]
    escalated = await next_event(ws, only="alert_escalated")
    assert (escalated["alert_id"], escalated["severity"]) == (shelved, "critical")

    history = (await tenant.http.get(f"/api/v1/alerts/{shelved}/history")).json()
    assert [(e["kind"], e["actor"]) for e in history] == [
        ("opened", "system"),
        ("shelved", history[1]["actor"]),
        ("escalated", "system"),
        ("severity_raised", "system"),
    ]
    assert history[1]["comment"] == "waiting for parts" and history[1]["actor_email"] == tenant.admin_email
    assert history[2]["details"] == {"policy_id": policy["id"], "channel_ids": [boss]}
    assert history[2]["comment"] == "unacknowledged for 300 s: sent to 1 escalation channel"
    assert history[3]["details"] == {"from": "warning", "to": "critical", "policy_id": policy["id"]}
    await ws.close()


async def test_unshelving_resumes_reminders_at_once(
    server: RunningServer, tenant: Tenant, app_clock: ManualClock, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    await _policy(tenant, [hook], group_wait=0, matchers={"kinds": ["firing"]}, repeat_interval=60)
    await _warning_rule(tenant)
    machine = await tenant.add_machine("Oven 3")
    await tenant.ingest([_reading(machine, 99.0)])
    await run_cycle(server)
    [alert] = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    assert (
        await tenant.http.post(f"/api/v1/alerts/{alert['id']}/shelve", json={"duration_seconds": 3600})
    ).status_code == 200
    app_clock.advance(300)
    await run_cycle(server)
    assert [kind for _, kind, _ in _sent(receiver)] == ["firing"]
    assert (await tenant.http.post(f"/api/v1/alerts/{alert['id']}/unshelve")).status_code == 200
    await run_cycle(server)
    assert [kind for _, kind, _ in _sent(receiver)] == ["firing", "reminder"]


async def test_escalation_severity_needs_escalation(
    server: RunningServer, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    for body in (
        {"name": "x", "channel_ids": [hook], "escalation_severity": "critical"},
        {
            "name": "x",
            "channel_ids": [hook],
            "escalate_after": 60,
            "escalation_channel_ids": [hook],
            "escalation_severity": "fatal",
        },
    ):
        response = await tenant.http.post("/api/v1/notification-policies", json=body)
        assert response.status_code == 422, (body, response.text)
    ok = await _policy(tenant, [hook], escalate_after=60, escalation_channel_ids=[hook], escalation_severity="warning")
    cleared = await tenant.http.patch(f"/api/v1/notification-policies/{ok['id']}", json={"escalation_severity": None})
    assert cleared.status_code == 200 and cleared.json()["escalation_severity"] is None
