"""The alert lifecycle over a real server, socket and database: acknowledge with a comment, shelve and unshelve,
and the audit trail of every transition (`GET /api/v1/alerts/{id}/history`)."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningServer, Tenant, next_event
from tests.test_alerts import _events, _reading, _rule, _socket

ACK_FIELDS = ["type", "alert_id", "machine_id", "acknowledged_by", "acknowledged_at", "event_id"]


async def _user_id(tenant: Tenant, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    me = (await tenant.http.get("/api/v1/auth/me", headers=headers)).json()
    user_id: str = me["user_id"]
    return user_id


async def _history(tenant: Tenant, alert_id: str) -> list[dict[str, Any]]:
    response = await tenant.http.get(f"/api/v1/alerts/{alert_id}/history")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


async def test_acknowledge_with_and_without_a_comment(server: RunningServer, tenant: Tenant) -> None:
    first, second = await tenant.add_machine(), await tenant.add_machine()
    await _rule(tenant)
    ws = await _socket(server, tenant)
    await tenant.ingest([_reading(first, 90.0), _reading(second, 91.0)])
    events = await _events(ws, 6)
    ids = {e["machine_id"]: e["alert_id"] for e in events if e["type"] == "alert"}

    # No body: exactly as before (API.md), and the event's shape is unchanged.
    plain = await tenant.http.post(f"/api/v1/alerts/{ids[first]}/acknowledge")
    assert plain.status_code == 200, plain.text
    assert (plain.json()["state"], plain.json()["acknowledge_comment"]) == ("acknowledged", None)
    event = await next_event(ws)
    assert list(event) == ACK_FIELDS

    said = await tenant.http.post(f"/api/v1/alerts/{ids[second]}/acknowledge", json={"comment": "  on my way  "})
    assert said.status_code == 200, said.text
    assert said.json()["acknowledge_comment"] == "on my way"
    event = await next_event(ws)
    assert event["type"] == "alert_acknowledged" and event["comment"] == "on my way"
    shown = (await tenant.http.get(f"/api/v1/alerts/{ids[second]}")).json()
    assert (shown["acknowledged_by"], shown["acknowledge_comment"]) == (await _user_id(tenant), "on my way")
    listed = (await tenant.http.get("/api/v1/alerts", params={"state": "acknowledged"})).json()["items"]
    assert {a["id"]: a["acknowledged_by_email"] for a in listed} == {
        ids[first]: tenant.admin_email,
        ids[second]: tenant.admin_email,
    }

    for bad in ({"comment": ""}, {"comment": 5}, {"comment": "a\nb"}, {"note": "x"}, {"comment": "x" * 1001}):
        refused = await tenant.http.post(f"/api/v1/alerts/{ids[first]}/acknowledge", json=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert "detail" in refused.json()
    await ws.close()


async def test_every_transition_is_in_the_history_with_its_actor(server: RunningServer, tenant: Tenant) -> None:
    machine = await tenant.add_machine()
    await _rule(tenant)
    ws = await _socket(server, tenant)
    await tenant.ingest([_reading(machine, 90.0, timestamp="2026-01-05T10:30:05Z")])
    _, alert, _ = await _events(ws, 3)
    alert_id = alert["alert_id"]
    operator = await tenant.add_user("operator")
    as_operator = {"Authorization": f"Bearer {operator['access_token']}"}

    acked = await tenant.http.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"comment": "looking"})
    assert acked.status_code == 200
    shelved = await tenant.http.post(
        f"/api/v1/alerts/{alert_id}/shelve",
        json={"duration_seconds": 3600, "comment": "parts arrive at noon"},
        headers=as_operator,
    )
    assert shelved.status_code == 200, shelved.text
    assert shelved.json()["shelved_until"] is not None
    unshelved = await tenant.http.post(f"/api/v1/alerts/{alert_id}/unshelve")
    assert unshelved.status_code == 200 and unshelved.json()["shelved_until"] is None
    resolved = await tenant.http.post(f"/api/v1/alerts/{alert_id}/resolve", json={"comment": "bearing replaced"})
    assert resolved.status_code == 200
    assert [e["type"] for e in await _events(ws, 5)] == [
        "alert_acknowledged",
        "alert_shelved",
        "alert_unshelved",
        "alert_resolved",
        "machine_status",
    ]

    history = await _history(tenant, alert_id)
    admin, operator_id = await _user_id(tenant), await _user_id(tenant, operator["access_token"])
    assert [(e["kind"], e["comment"]) for e in history] == [
        ("opened", None),
        ("acknowledged", "looking"),
        ("shelved", "parts arrive at noon"),
        ("unshelved", None),
        ("resolved", "bearing replaced"),
    ]
    assert [e["actor"] for e in history][:2] == ["system", admin]
    assert history[0]["actor_email"] is None and history[1]["actor_email"] == tenant.admin_email
    assert history[2]["actor"] == operator_id and history[2]["actor_email"].startswith("operator-")
    assert history[0]["details"] == {"severity": "critical"}
    assert history[2]["details"] == {"until": shelved.json()["shelved_until"]}
    assert history[4]["details"] == {"resolution": "manual"}
    assert history[0]["at"] == "2026-01-05T10:30:05Z"  # opened: the measurement time of the reading
    assert [e["at"] for e in history[1:]] == sorted(e["at"] for e in history[1:])
    await ws.close()


async def test_an_automatic_resolution_is_the_systems(server: RunningServer, tenant: Tenant) -> None:
    machine = await tenant.add_machine()
    await _rule(tenant)
    await tenant.ingest([_reading(machine, 90.0)])
    await tenant.ingest([_reading(machine, 80.0)])
    [alert] = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    history = await _history(tenant, alert["id"])
    assert [(e["kind"], e["actor"], e["details"]) for e in history] == [
        ("opened", "system", {"severity": "critical"}),
        ("resolved", "system", {"resolution": "cleared"}),
    ]


async def test_history_and_actions_are_the_tenants_own(
    server: RunningServer, tenant: Tenant, tenant_factory: Any
) -> None:
    machine = await tenant.add_machine()
    await _rule(tenant)
    await tenant.ingest([_reading(machine, 90.0)])
    [alert] = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    other: Tenant = await tenant_factory()
    for method, path, body in (
        ("GET", f"/api/v1/alerts/{alert['id']}/history", None),
        ("POST", f"/api/v1/alerts/{alert['id']}/shelve", {"duration_seconds": 60}),
        ("POST", f"/api/v1/alerts/{alert['id']}/unshelve", None),
        ("POST", f"/api/v1/alerts/{alert['id']}/acknowledge", {"comment": "mine now"}),
        ("GET", "/api/v1/alerts/not-a-uuid/history", None),
    ):
        response = await other.http.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
    assert [e["kind"] for e in await _history(tenant, alert["id"])] == ["opened"]


async def test_shelve_input_and_state_are_checked(server: RunningServer, tenant: Tenant) -> None:
    machine = await tenant.add_machine()
    await _rule(tenant)
    await tenant.ingest([_reading(machine, 90.0)])
    [alert] = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    path = f"/api/v1/alerts/{alert['id']}/shelve"
    for bad in (
        {},
        {"duration_seconds": 0},
        {"duration_seconds": -5},
        {"duration_seconds": 8 * 86400},
        {"duration_seconds": "60"},
        {"duration_seconds": 60, "comment": ""},
    ):
        refused = await tenant.http.post(path, json=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert "detail" in refused.json()
    viewer = await tenant.add_user("viewer")
    denied = await tenant.http.post(
        path, json={"duration_seconds": 60}, headers={"Authorization": f"Bearer {viewer['access_token']}"}
    )
    assert denied.status_code == 403
    # Viewers read the history.
    seen = await tenant.http.get(
        f"/api/v1/alerts/{alert['id']}/history", headers={"Authorization": f"Bearer {viewer['access_token']}"}
    )
    assert seen.status_code == 200
    await tenant.http.post(f"/api/v1/alerts/{alert['id']}/resolve")
    late = await tenant.http.post(path, json={"duration_seconds": 60})
    assert late.status_code == 409 and late.json()["detail"] == "alert is already resolved"
    # Unshelving an alert that is not shelved changes nothing (and is not audited).
    machine2 = await tenant.add_machine()
    await tenant.ingest([_reading(machine2, 95.0)])
    opened = (await tenant.http.get("/api/v1/alerts", params={"state": "open"})).json()["items"][0]
    assert (await tenant.http.post(f"/api/v1/alerts/{opened['id']}/unshelve")).status_code == 200
    assert [e["kind"] for e in await _history(tenant, opened["id"])] == ["opened"]
