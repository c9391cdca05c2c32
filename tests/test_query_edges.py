"""Query parameters at the edges a viewer can reach: the ends of time, huge offsets, hand-made cursors.

Each is a clear 422 or a correct answer, never a 500, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx

from haltless.core.cursors import INVALID_CURSOR
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, login

T0 = "2026-03-02T10:00:00Z"


async def _machine_with_readings(tenant: Tenant, count: int = 5) -> str:
    machine = await tenant.add_machine()
    readings = [
        {"machine_id": machine, "metric_name": "temp", "value": float(i), "timestamp": f"2026-03-02T10:00:0{i}Z"}
        for i in range(count)
    ]
    response = await tenant.ingest(readings)
    assert response.json()["accepted"] == count, response.text
    return machine


async def test_windows_at_the_ends_of_time_are_answered(server: RunningServer, tenant: Tenant) -> None:
    """A default end (start + 1h) past year 9999, or start (end - 1h) before year 1, stops at the last instant."""
    machine = await tenant.add_machine()
    base = {"machine_id": machine, "metric_name": "temp"}
    cases: list[tuple[dict[str, str], tuple[str, str]]] = [
        ({"start": "9999-12-31T23:30:00Z"}, ("9999-12-31T23:30:00Z", "9999-12-31T23:59:59.999999Z")),
        ({"end": "0001-01-01T00:30:00Z"}, ("0001-01-01T00:00:00Z", "0001-01-01T00:30:00Z")),
        ({"end": "0001-01-01T00:30:00Z", "interval": "1m"}, ("0001-01-01T00:00:00Z", "0001-01-01T00:30:00Z")),
        (
            {"start": "9999-12-31T23:30:00Z", "max_points": "10"},
            ("9999-12-31T23:30:00Z", "9999-12-31T23:59:59.999999Z"),
        ),
        (
            {"start": "0999-06-01T00:00:00Z", "end": "0999-06-01T00:10:00Z"},
            ("0999-06-01T00:00:00Z", "0999-06-01T00:10:00Z"),
        ),
    ]
    for params, (start, end) in cases:
        response = await tenant.http.get("/api/v1/sensor-data", params={**base, **params})
        assert response.status_code == 200, (params, response.text)
        assert (response.json()["start"], response.json()["end"], response.json()["items"]) == (start, end, [])
        export = await tenant.http.get("/api/v1/sensor-data/export", params={**base, **params})
        assert export.status_code == 200, (params, export.text)
        assert export.text.count("\r\n") == 1  # the header row
        assert "filename=" in export.headers["content-disposition"]
    for params in ({"end": "0001-01-01T00:00:00Z"}, {"start": "9999-12-31T23:59:59.999999Z"}):
        response = await tenant.http.get("/api/v1/sensor-data", params={**base, **params})
        assert response.status_code == 422
        assert response.json()["detail"] == "end must be after start"
    beyond = await tenant.http.get("/api/v1/sensor-data", params={**base, "end": "0001-01-01T00:30:00+01:00"})
    assert beyond.status_code == 422
    assert "out of range" in beyond.json()["detail"]


async def test_machine_list_offsets_beyond_any_fleet_are_422(server: RunningServer, tenant: Tenant) -> None:
    await tenant.add_machine()
    for offset in ("9223372036854775808", "614198610426563002368", "1000000001", "-1"):
        response = await tenant.http.get("/api/v1/machines", params={"offset": offset})
        assert response.status_code == 422, (offset, response.text)
        assert response.json()["detail"].startswith("offset:")
    past_the_end = await tenant.http.get("/api/v1/machines", params={"offset": 1_000_000_000, "include": "latest"})
    assert past_the_end.status_code == 200
    assert (past_the_end.json()["items"], past_the_end.json()["total"]) == ([], 1)


def _unsigned(fields: list[Any]) -> str:
    """A cursor in the unsigned format of earlier versions: anyone could write one with any fields."""
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()


async def test_hand_made_and_tampered_cursors_are_invalid(server: RunningServer, tenant: Tenant) -> None:
    machine = await _machine_with_readings(tenant)
    base = {"machine_id": machine, "metric_name": "temp", "start": T0, "end": "2026-03-02T11:00:00Z"}
    page = (await tenant.http.get("/api/v1/sensor-data", params={**base, "limit": 2})).json()
    real = page["next_cursor"]
    start, end = 1_772_445_600_000_000, 1_772_449_200_000_000
    fingerprint = "0" * 12
    crafted = [
        _unsigned([1, 2**63, 1, 2**63, start, end, fingerprint]),  # beyond 64-bit integers
        _unsigned([1, -(2**63), -1, -1, -(2**62), 2**62, fingerprint]),  # a window past any timestamp
        _unsigned([1, 0, 0, 10**30, start, end, fingerprint]),
        real[:-2] + ("AA" if not real.endswith("AA") else "BB"),  # the tag changed
        real + "x",
        "",
    ]
    if "." in real:  # the fields changed, the tag kept
        fields, tag = real.split(".")
        decoded = json.loads(base64.urlsafe_b64decode(fields + "=" * (-len(fields) % 4)))
        forged = base64.urlsafe_b64encode(json.dumps([2**62, *decoded[1:]]).encode()).rstrip(b"=").decode()
        crafted.append(f"{forged}.{tag}")
    alerts_page_cursor = await _an_alerts_cursor(tenant, machine)
    for cursor in [*crafted, alerts_page_cursor]:  # an alerts cursor is no history cursor
        response = await tenant.http.get("/api/v1/sensor-data", params={**base, "cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["detail"] == "invalid cursor; pass next_cursor of the previous page unchanged"
    for cursor in [_unsigned([2**63, "x"]), _unsigned([0, "\u0000"]), real]:  # a history cursor is no alerts cursor
        response = await tenant.http.get("/api/v1/alerts", params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["detail"] == "invalid cursor; pass next_cursor of the previous page unchanged"
    following = await tenant.http.get("/api/v1/sensor-data", params={**base, "cursor": real, "limit": 2})
    assert following.status_code == 200
    assert [p["value"] for p in following.json()["items"]] == [2.0, 3.0]


async def _an_alerts_cursor(tenant: Tenant, machine: str) -> str:
    rule = {"name": "Any", "metric_name": "temp", "condition": ">", "threshold": -1}
    assert (await tenant.http.post("/api/v1/alert-rules", json=rule)).status_code == 201
    other = await tenant.add_machine("Press 2")
    for target in (machine, other):
        await tenant.ingest([{"machine_id": target, "metric_name": "temp", "value": 5.0}])
    page = (await tenant.http.get("/api/v1/alerts", params={"limit": 1})).json()
    cursor: str = page["next_cursor"]
    assert cursor is not None
    following = await tenant.http.get("/api/v1/alerts", params={"limit": 1, "cursor": cursor})
    assert following.status_code == 200
    assert len(following.json()["items"]) == 1
    return cursor


async def test_every_process_of_a_deployment_reads_the_others_cursors(server_factory: Any, tenant_factory: Any) -> None:
    """Cursors are signed with a key derived from the JWT secret: shared by a deployment, unknown elsewhere."""
    secret = "deployment-secret-" + uuid.uuid4().hex
    first = server_factory(jwt_secret=secret)
    second = server_factory(jwt_secret=secret)  # the same database, as behind a load balancer
    tenant: Tenant = await tenant_factory(first)
    machine = await _machine_with_readings(tenant)
    params: dict[str, Any] = {
        "machine_id": machine,
        "metric_name": "temp",
        "start": T0,
        "end": "2026-03-02T11:00:00Z",
        "limit": 2,
    }
    cursor = (await tenant.http.get("/api/v1/sensor-data", params=params)).json()["next_cursor"]
    async with httpx.AsyncClient(base_url=second.base_url, headers=tenant.http.headers, timeout=EVENT_TIMEOUT) as http:
        response = await http.get("/api/v1/sensor-data", params={**params, "cursor": cursor})
        assert response.status_code == 200, response.text
        assert [p["value"] for p in response.json()["items"]] == [2.0, 3.0]
    elsewhere = server_factory(jwt_secret="another-deployment-" + uuid.uuid4().hex)
    pair = await login(elsewhere.base_url, tenant.admin_email)
    async with httpx.AsyncClient(
        base_url=elsewhere.base_url, headers={"Authorization": f"Bearer {pair['access_token']}"}, timeout=EVENT_TIMEOUT
    ) as http:
        response = await http.get("/api/v1/sensor-data", params={**params, "cursor": cursor})
        assert response.status_code == 422
        assert "invalid cursor" in response.json()["detail"]


async def test_every_paged_endpoint_answers_a_bad_cursor_alike(tenant: Tenant) -> None:
    """One codec (core/cursors.py), one answer: an empty or garbled cursor is the same 422 on every paged list."""
    machine = await _machine_with_readings(tenant, 1)
    history = {"machine_id": machine, "metric_name": "temp", "start": T0, "end": "2026-03-02T11:00:00Z"}
    for path, params in (("/api/v1/sensor-data", history), ("/api/v1/alerts", {}), ("/api/v1/notifications", {})):
        for cursor in ("", "garbage", "a.b"):
            response = await tenant.http.get(path, params={**params, "cursor": cursor})
            assert response.status_code == 422, (path, cursor, response.text)
            assert response.json()["detail"] == INVALID_CURSOR, (path, cursor)
