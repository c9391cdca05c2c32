"""Request bodies take JSON types as they are: no string read as a boolean or a number (server/schemas/)."""

from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD, RunningServer, Tenant

RULE = {"name": "hot", "metric_name": "temperature", "condition": ">", "threshold": 80.0}


async def test_string_is_not_a_boolean(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    for value in ("yes", "true", 1, 0):
        response = await tenant.http.patch(f"/api/v1/machines/{machine_id}", json={"maintenance": value})
        assert response.status_code == 422, value
        assert "maintenance: Input should be a valid boolean" in response.json()["detail"]
    ok = await tenant.http.patch(f"/api/v1/machines/{machine_id}", json={"maintenance": True})
    assert ok.status_code == 200
    assert ok.json()["maintenance"] is True
    disabled = await tenant.http.post("/api/v1/alert-rules", json={**RULE, "enabled": "false"})
    assert disabled.status_code == 422


async def test_string_is_not_a_number_but_an_integer_is(server: RunningServer, tenant: Tenant) -> None:
    bad: list[dict[str, Any]] = [
        {**RULE, "threshold": "5"},
        {**RULE, "threshold": True},
        {**RULE, "for_seconds": "10"},
        {**RULE, "hysteresis": "1.5"},
    ]
    for body in bad:
        response = await tenant.http.post("/api/v1/alert-rules", json=body)
        assert response.status_code == 422, body
        assert "Input should be a valid number" in response.json()["detail"], body
    created = await tenant.http.post("/api/v1/alert-rules", json={**RULE, "threshold": 5, "for_seconds": 10})
    assert created.status_code == 201, created.text
    assert created.json()["threshold"] == 5.0
    assert created.json()["for_seconds"] == 10.0
    rule_id = created.json()["id"]
    assert (await tenant.http.patch(f"/api/v1/alert-rules/{rule_id}", json={"threshold": "6"})).status_code == 422
    updated = await tenant.http.patch(f"/api/v1/alert-rules/{rule_id}", json={"threshold": 6, "severity": "critical"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["threshold"] == 6.0


async def test_enums_are_named_by_their_json_value_only(server: RunningServer, tenant: Tenant) -> None:
    user = {"email": "someone@example.com", "password": PASSWORD}
    for role in (1, True, "VIEWER", "root"):
        assert (await tenant.http.post("/api/v1/users", json={**user, "role": role})).status_code == 422, role
    assert (await tenant.http.post("/api/v1/alert-rules", json={**RULE, "condition": 1})).status_code == 422
    created = await tenant.http.post("/api/v1/users", json={**user, "role": "operator"})
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "operator"


async def test_number_is_not_a_string(server: RunningServer, tenant: Tenant) -> None:
    for body in ({"name": 5}, {"name": "Press", "tags": ["line-1", 2]}, {"name": "Press", "location": 3}):
        response = await tenant.http.post("/api/v1/machines", json=body)
        assert response.status_code == 422, body
        assert "Input should be a valid string" in response.json()["detail"], body
