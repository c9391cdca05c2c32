"""Notifications end to end: alerts from real readings reach a real webhook receiver and SMTP server."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from haltless.core.clock import ManualClock
from tests.conftest import RunningServer, Tenant, start_server, wait_until
from tests.notifications.conftest import SMTP_PASSWORD, SMTP_USER, MailRelay, WebhookReceiver, run_cycle

SECRET = "whsec-0123456789abcdef"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


async def _webhook(tenant: Tenant, receiver: WebhookReceiver, **extra: Any) -> str:
    body = {"name": "Ops hook", "type": "webhook", "webhook": {"url": receiver.url, "secret": SECRET, **extra}}
    response = await tenant.http.post("/api/v1/notification-channels", json=body)
    assert response.status_code == 201, response.text
    channel_id: str = response.json()["id"]
    return channel_id


async def _email(tenant: Tenant, relay: MailRelay, password: str = SMTP_PASSWORD) -> str:
    body = {
        "name": "Ops mail",
        "type": "email",
        "email": {
            "host": "127.0.0.1",
            "port": relay.port,
            "security": "none",
            "username": SMTP_USER,
            "password": password,
            "from_address": "haltless@plant.example",
            "to_addresses": ["oncall@plant.example"],
        },
    }
    response = await tenant.http.post("/api/v1/notification-channels", json=body)
    assert response.status_code == 201, response.text
    channel_id: str = response.json()["id"]
    return channel_id


async def _policy(tenant: Tenant, channel_ids: list[str], **extra: Any) -> dict[str, Any]:
    body = {"name": "Everything", "channel_ids": channel_ids, "is_default": True, **extra}
    response = await tenant.http.post("/api/v1/notification-policies", json=body)
    assert response.status_code == 201, response.text
    policy: dict[str, Any] = response.json()
    return policy


async def _rule(tenant: Tenant, metric: str = "temperature", threshold: float = 85.0) -> str:
    body = {
        "name": f"{metric} high",
        "metric_name": metric,
        "condition": ">",
        "threshold": threshold,
        "severity": "critical",
    }
    response = await tenant.http.post("/api/v1/alert-rules", json=body)
    assert response.status_code == 201, response.text
    rule_id: str = response.json()["id"]
    return rule_id


def _reading(machine_id: str, value: float, metric: str = "temperature") -> dict[str, Any]:
    return {"machine_id": machine_id, "metric_name": metric, "value": value, "unit": "u"}


async def _notifications(tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = await tenant.http.get("/api/v1/notifications", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_burst_of_200_alerts_is_one_notification_per_channel(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver, smtp_relay: MailRelay
) -> None:
    """50 machines × 4 rules breaching within 2 s → after group_wait, one webhook and one email with all 200."""
    hook = await _webhook(tenant, receiver)
    mail = await _email(tenant, smtp_relay)
    await _policy(tenant, [hook, mail], group_by="none", group_wait=30)
    metrics = ["temperature", "pressure", "vibration", "current"]
    for metric in metrics:
        await _rule(tenant, metric, threshold=10.0)
    machines = [await tenant.add_machine(f"Press {n}") for n in range(50)]

    for half in (machines[:25], machines[25:]):
        response = await tenant.ingest([_reading(m, 50.0, metric) for m in half for metric in metrics])
        assert response.json()["accepted"] == 100, response.text
        clock.advance(1)
    await run_cycle(server)
    assert await _notifications(tenant) == []  # group_wait has not passed

    clock.advance(30)
    await run_cycle(server)
    sent = await _notifications(tenant)
    assert sorted((n["channel_id"], n["state"], len(n["alerts"])) for n in sent) == sorted(
        [(hook, "delivered", 200), (mail, "delivered", 200)]
    )
    assert len(receiver.requests) == 1
    body = orjson.loads(receiver.requests[0].body)
    assert body["kind"] == "firing"
    assert len(body["alerts"]) == 200
    assert {a["machine_id"] for a in body["alerts"]} == set(machines)
    assert len(smtp_relay.messages) == 1


async def test_receiver_down_for_ten_minutes_gets_everything_after(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    """503 with Retry-After for 10 simulated minutes; then every notification arrives, duplicates share the key."""
    hook = await _webhook(tenant, receiver)
    await _policy(tenant, [hook], group_by="machine", group_wait=0)
    await _rule(tenant)
    machines = [await tenant.add_machine(f"Mill {n}") for n in range(3)]
    receiver.status, receiver.retry_after = 503, "45"

    await tenant.ingest([_reading(m, 90.0) for m in machines])
    for _ in range(20):  # 10 minutes in 30 s steps
        await run_cycle(server)
        clock.advance(30)
    pending = await _notifications(tenant)
    assert len(pending) == 3
    assert {n["state"] for n in pending} == {"pending"}
    assert all(n["attempts"] >= 2 and n["last_error"] == "webhook answered 503" for n in pending)

    receiver.status = 200
    for _ in range(30):
        if {n["state"] for n in await _notifications(tenant)} == {"delivered"}:
            break
        clock.advance(60)
        await run_cycle(server)
    final = await _notifications(tenant)
    assert {n["state"] for n in final} == {"delivered"}
    delivered = receiver.delivered()
    keys = [r.headers["idempotency-key"] for r in delivered]
    assert set(keys) == {n["id"] for n in final}
    for request in receiver.requests:  # every try of a notification carries the same key and id
        assert request.headers["idempotency-key"] == orjson.loads(request.body)["notification_id"]


def _verification_recipe() -> dict[str, Any]:
    """The Python recipe of docs/notifications.md, run as written."""
    text = DOCS.read_text()
    match = re.search(r"<!-- signature-recipe -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match is not None, "docs/notifications.md lost its signature recipe"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "recipe", "exec"), namespace)
    return namespace


async def test_webhook_body_headers_and_signature_follow_the_contract(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    await _policy(tenant, [hook], group_wait=0)
    rule_id = await _rule(tenant)
    machine = await tenant.add_machine("Lathe 7")
    await tenant.ingest([_reading(machine, 91.5)])
    await run_cycle(server)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    body = orjson.loads(request.body)
    assert list(body) == ["notification_id", "kind", "tenant_id", "sent_at", "alerts"]
    assert body["tenant_id"] == tenant.tenant_id
    assert request.headers["idempotency-key"] == body["notification_id"]
    alert = body["alerts"][0]
    assert list(alert) == [
        "alert_id",
        "machine_id",
        "severity",
        "message",
        "metric_value",
        "threshold_value",
        "created_at",
        "machine_name",
        "metric_name",
        "state",
        "url",
    ]
    assert (alert["machine_name"], alert["metric_value"], alert["state"]) == ("Lathe 7", 91.5, "active")
    assert rule_id  # the rule that opened it

    verify = _verification_recipe()["verify"]
    assert verify(SECRET, request.headers, request.body)
    assert not verify("another-secret-123456", request.headers, request.body)
    assert not verify(SECRET, request.headers, request.body + b" ")


async def test_email_carries_the_alert_and_a_wrong_password_fails_clearly(
    server: RunningServer, tenant: Tenant, clock: ManualClock, smtp_relay: MailRelay
) -> None:
    good = await _email(tenant, smtp_relay)
    bad = await _email(tenant, smtp_relay, password="not-the-password")
    await _policy(tenant, [good, bad], group_wait=0)
    await _rule(tenant)
    machine = await tenant.add_machine("Furnace <2>")
    await tenant.ingest([_reading(machine, 97.25)])
    await run_cycle(server)

    assert len(smtp_relay.messages) == 1
    message = smtp_relay.messages[0]
    assert "FIRING" in message["Subject"]
    assert smtp_relay.envelopes[0][1] == ["oncall@plant.example"]
    parts = {
        part.get_content_type(): part.get_payload(decode=True) for part in message.walk() if not part.is_multipart()
    }
    text = parts["text/plain"].decode()  # type: ignore[union-attr]
    html = parts["text/html"].decode()  # type: ignore[union-attr]
    assert "Furnace <2>" in text and "97.25" in text and "critical" in text
    assert "Furnace &lt;2&gt;" in html

    by_channel = {n["channel_id"]: n for n in await _notifications(tenant)}
    assert by_channel[good]["state"] == "delivered"
    assert by_channel[bad]["state"] == "failed", by_channel[bad]["last_error"]
    assert by_channel[bad]["last_error"].startswith("SMTP authentication failed: 535")
    failed = await _notifications(tenant, state="failed")
    assert [n["channel_id"] for n in failed] == [bad]


async def test_future_silence_holds_alerts_inside_and_not_outside(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    await _policy(tenant, [hook], group_wait=0, matchers={"kinds": ["firing"]})
    await _rule(tenant)
    machine = await tenant.add_machine("Press 9")
    start = clock.now_us() + 3600 * 1_000_000
    silence = await tenant.http.post(
        "/api/v1/silences",
        json={
            "matchers": {"machine_ids": [machine]},
            "starts_at": _iso(start),
            "ends_at": _iso(start + 3600 * 1_000_000),
            "comment": "planned rebuild",
        },
    )
    assert silence.status_code == 201, silence.text
    assert silence.json()["active"] is False

    fired: dict[str, list[str]] = {}
    for phase, offset in (("before", 600), ("inside", 3600 + 1800), ("after", 7200 + 1800)):
        clock.set(start - 3600 * 1_000_000 + offset * 1_000_000)
        await tenant.ingest([_reading(machine, 90.0)])
        await run_cycle(server)
        alerts = (await tenant.http.get("/api/v1/alerts", params={"state": "open"})).json()["items"]
        fired[phase] = [a["id"] for a in alerts]
        clock.advance(60)
        await tenant.ingest([_reading(machine, 20.0)])  # clears: resolved
        await run_cycle(server)

    notified = [a["alert_id"] for r in receiver.delivered() for a in orjson.loads(r.body)["alerts"]]
    assert notified == [*fired["before"], *fired["after"]]
    assert len(fired["inside"]) == 1  # recorded all the same
    shown = (await tenant.http.get(f"/api/v1/silences/{silence.json()['id']}")).json()
    assert shown["silenced_alert_ids"] == fired["inside"]
    marked = (await tenant.http.get(f"/api/v1/alerts/{fired['inside'][0]}/notification-status")).json()
    assert marked["silenced"] is True
    assert [(c["kind"], c["state"], c["silence_id"]) for c in marked["changes"]] == [
        ("firing", "silenced", shown["id"]),
        ("resolved", "silenced", shown["id"]),
    ]
    plain = (await tenant.http.get(f"/api/v1/alerts/{fired['before'][0]}/notification-status")).json()
    assert plain["silenced"] is False
    assert [c["state"] for c in plain["changes"]] == ["routed", "unrouted"]  # the policy takes firing only


def _iso(micros: int) -> str:
    from haltless.core.timefmt import format_micros

    return format_micros(micros)


async def test_another_tenant_cannot_see_or_use_channels(
    server: RunningServer, tenant: Tenant, tenant_factory: Any, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    policy = await _policy(tenant, [hook])
    other: Tenant = await tenant_factory()
    for method, path in (
        ("GET", f"/api/v1/notification-channels/{hook}"),
        ("PATCH", f"/api/v1/notification-channels/{hook}"),
        ("DELETE", f"/api/v1/notification-channels/{hook}"),
        ("POST", f"/api/v1/notification-channels/{hook}/test"),
        ("GET", f"/api/v1/notification-policies/{policy['id']}"),
        ("DELETE", f"/api/v1/notification-policies/{policy['id']}"),
    ):
        response = await other.http.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path, response.text)
    assert (await other.http.get("/api/v1/notification-channels")).json() == []
    used = await other.http.post("/api/v1/notification-policies", json={"name": "x", "channel_ids": [hook]})
    assert used.status_code == 422
    assert receiver.requests == []


async def test_secrets_are_write_only(
    server: RunningServer, tenant: Tenant, receiver: WebhookReceiver, smtp_relay: MailRelay
) -> None:
    hook = await _webhook(tenant, receiver)
    mail = await _email(tenant, smtp_relay)
    listed = (await tenant.http.get("/api/v1/notification-channels")).text
    assert SECRET not in listed and SMTP_PASSWORD not in listed
    shown = (await tenant.http.get(f"/api/v1/notification-channels/{hook}")).json()
    assert shown["webhook"]["has_secret"] is True
    renamed = await tenant.http.patch(f"/api/v1/notification-channels/{mail}", json={"name": "Night shift"})
    assert renamed.json()["email"]["has_password"] is True


async def test_channel_test_reports_the_outcome(
    server: RunningServer, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    tested = await tenant.http.post(f"/api/v1/notification-channels/{hook}/test")
    assert tested.json() == {"ok": True, "error": None}
    assert orjson.loads(receiver.requests[0].body)["kind"] == "test"
    receiver.status = 500
    tested = await tenant.http.post(f"/api/v1/notification-channels/{hook}/test")
    assert tested.json() == {"ok": False, "error": "webhook answered 500"}


async def test_default_network_policy_refuses_loopback(
    server_factory: Any, tenant_factory: Any, receiver: WebhookReceiver
) -> None:
    plain = server_factory()
    tenant: Tenant = await tenant_factory(plain)
    hook = await _webhook(tenant, receiver)
    tested = await tenant.http.post(f"/api/v1/notification-channels/{hook}/test")
    assert tested.json()["ok"] is False
    assert "127.0.0.1 is in 127.0.0.0/8" in tested.json()["error"]
    assert receiver.requests == []


async def test_unacknowledged_alert_escalates_at_n_minutes_and_acknowledged_one_does_not(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    boss = await tenant.http.post(
        "/api/v1/notification-channels",
        json={"name": "Boss", "type": "webhook", "webhook": {"url": receiver.url + "/boss", "secret": SECRET}},
    )
    await _policy(
        tenant,
        [hook],
        group_wait=0,
        matchers={"kinds": ["firing"]},
        escalate_after=300,
        escalation_channel_ids=[boss.json()["id"]],
    )
    await _rule(tenant)
    ignored, handled = await tenant.add_machine("Kiln 1"), await tenant.add_machine("Kiln 2")
    await tenant.ingest([_reading(ignored, 99.0), _reading(handled, 99.0)])
    await run_cycle(server)
    alerts = (await tenant.http.get("/api/v1/alerts", params={"state": "open"})).json()["items"]
    by_machine = {a["machine_id"]: a["id"] for a in alerts}
    acknowledged = await tenant.http.post(f"/api/v1/alerts/{by_machine[handled]}/acknowledge")
    assert acknowledged.status_code == 200

    clock.advance(299)
    await run_cycle(server)
    assert [r.path for r in receiver.requests] == ["/hook"]
    clock.advance(1)
    await run_cycle(server)
    escalations = [orjson.loads(r.body) for r in receiver.requests if r.path == "/hook/boss"]
    assert [(e["kind"], [a["alert_id"] for a in e["alerts"]]) for e in escalations] == [
        ("escalated", [by_machine[ignored]])
    ]


async def test_outbox_survives_a_restart_between_commit_and_delivery(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    """The change is committed with its outbox row; a server stopped before sending delivers after restart."""
    hook = await _webhook(tenant, receiver)
    await _policy(tenant, [hook], group_wait=30)
    await _rule(tenant)
    machine = await tenant.add_machine("Saw 3")
    await tenant.ingest([_reading(machine, 95.0)])
    await run_cycle(server)
    server.stop()
    assert receiver.requests == []

    again = start_server(server.settings, port=server.port)
    try:
        again.state.notifier.clock = clock.now_us
        clock.advance(30)
        await run_cycle(again)
        assert len(receiver.delivered()) == 1
        assert orjson.loads(receiver.requests[0].body)["alerts"][0]["machine_name"] == "Saw 3"
    finally:
        again.stop()


async def test_chat_formats_render_the_same_content(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    slack = await _webhook(tenant, receiver, format="slack")
    teams = await _webhook(tenant, receiver, format="teams")
    await _policy(tenant, [slack, teams], group_wait=0)
    await _rule(tenant)
    machine = await tenant.add_machine("Pump 4")
    await tenant.ingest([_reading(machine, 88.0)])
    await run_cycle(server)
    bodies = [orjson.loads(r.body) for r in receiver.requests]
    (card,) = [b for b in bodies if "@type" in b]
    (text,) = [b for b in bodies if "@type" not in b]
    assert card["@type"] == "MessageCard" and "Pump 4" in card["title"]
    assert "Pump 4" in text["text"] and "88" in text["text"]
    assert all(r.headers["x-haltless-signature"].startswith("sha256=") for r in receiver.requests)


async def test_bad_policies_and_silences_are_422s(
    server: RunningServer, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    for body in (
        {"name": "x", "channel_ids": []},
        {"name": "x", "channel_ids": [hook], "group_by": "planet"},
        {"name": "x", "channel_ids": [hook], "escalate_after": 60},
        {"name": "x", "channel_ids": ["not-a-channel"]},
        {"name": "x", "channel_ids": [hook], "group_wait": -1},
    ):
        response = await tenant.http.post("/api/v1/notification-policies", json=body)
        assert response.status_code == 422, (body, response.text)
        assert "detail" in response.json()
    for silence in (
        {"matchers": {}, "ends_at": "2999-01-01T00:00:00Z", "comment": "x"},
        {"matchers": {"tags": ["a"]}, "ends_at": "2000-01-01T00:00:00Z", "comment": "x"},
        {"matchers": {"tags": ["a"]}, "ends_at": "tomorrow", "comment": "x"},
        {
            "matchers": {"tags": ["a"]},
            "starts_at": "2999-01-02T00:00:00Z",
            "ends_at": "2999-01-01T00:00:00Z",
            "comment": "x",
        },
    ):
        response = await tenant.http.post("/api/v1/silences", json=silence)
        assert response.status_code == 422, (silence, response.text)
    webhook_missing_secret = {"name": "x", "type": "webhook", "webhook": {"url": receiver.url}}
    assert (await tenant.http.post("/api/v1/notification-channels", json=webhook_missing_secret)).status_code == 422

    # URLs the pattern takes but no delivery could use (the channel's /test answered 500 on the first).
    for url, problem in (
        ("http://[", "Invalid IPv6 URL"),
        ("http://example.com:99999/hook", "out of range"),
        ("https://:443/hook", "names no host"),
    ):
        channel = {"name": "x", "type": "webhook", "webhook": {"url": url, "secret": "s" * 16}}
        response = await tenant.http.post("/api/v1/notification-channels", json=channel)
        assert response.status_code == 422, (url, response.text)
        assert "webhook.url" in response.json()["detail"] and problem in response.json()["detail"], response.text


async def test_finished_notifications_are_forgotten_after_the_retention(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    await _policy(tenant, [hook], group_wait=0)
    await _rule(tenant)
    machine = await tenant.add_machine("Old press")
    await tenant.ingest([_reading(machine, 95.0)])
    await run_cycle(server)
    assert [n["state"] for n in await _notifications(tenant)] == ["delivered"]
    clock.advance(29 * 86_400)
    await run_cycle(server)
    assert len(await _notifications(tenant)) == 1
    clock.advance(2 * 86_400)
    await run_cycle(server)
    assert await _notifications(tenant) == []


async def test_smtp_allow_networks_keeps_relays_inside(
    server_factory: Any, tenant_factory: Any, smtp_relay: MailRelay
) -> None:
    fenced = server_factory(smtp_allow_networks="192.0.2.0/24")
    tenant: Tenant = await tenant_factory(fenced)
    mail = await _email(tenant, smtp_relay)
    tested = await tenant.http.post(f"/api/v1/notification-channels/{mail}/test")
    assert tested.json() == {"ok": False, "error": "refused: 127.0.0.1 is outside HALTLESS_SMTP_ALLOW_NETWORKS"}
    assert smtp_relay.messages == []


async def test_an_alert_is_sent_when_its_change_commits_not_at_the_next_poll(
    server_factory: Any, tenant_factory: Any, receiver: WebhookReceiver
) -> None:
    """The dispatcher is woken once the alert's transaction has committed: woken before, it found no outbox row
    yet and slept until its next poll (an hour here), so a group_wait=0 alert waited for the poll, not for nothing."""
    running = server_factory(webhook_allow_networks="127.0.0.0/8", notification_poll_interval=3600.0)
    tenant: Tenant = await tenant_factory(running)
    await _policy(tenant, [await _webhook(tenant, receiver)], group_by="machine", group_wait=0)
    await _rule(tenant)
    for sent in range(1, 4):
        machine_id = await tenant.add_machine(f"Press {sent}")
        response = await tenant.ingest([_reading(machine_id, 90.0)])
        assert response.status_code == 202, response.text
        await wait_until(partial(_delivered, receiver, sent), f"notification {sent} (the poll is an hour away)")


def _delivered(receiver: WebhookReceiver, count: int) -> bool:
    return len(receiver.delivered()) == count
