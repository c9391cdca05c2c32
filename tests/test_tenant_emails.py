"""Emails are unique per tenant: creating a user says nothing about other tenants, and login finds the user
by email and password across tenants (`tenant_id` only when both match users of several tenants)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import EVENT_TIMEOUT, PASSWORD, RunningServer, Tenant

LOGIN = "/api/v1/auth/login"


async def _me(base_url: str, pair: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=EVENT_TIMEOUT) as http:
        me = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
        result: dict[str, Any] = me.json()
        return result


async def test_an_email_taken_in_another_tenant_is_no_conflict(
    server: RunningServer, tenant_factory: Callable[..., Any]
) -> None:
    plant_a: Tenant = await tenant_factory()
    plant_b: Tenant = await tenant_factory()
    shared = "shift-lead@example.com"
    in_a = await plant_a.http.post("/api/v1/users", json={"email": shared, "password": PASSWORD, "role": "viewer"})
    assert in_a.status_code == 201
    # Plant B's admin learns nothing about plant A: the same email is simply a new user of B.
    in_b = await plant_b.http.post(
        "/api/v1/users", json={"email": shared.upper(), "password": "b-password-123", "role": "operator"}
    )
    assert in_b.status_code == 201, in_b.text
    again = await plant_b.http.post("/api/v1/users", json={"email": shared, "password": PASSWORD, "role": "viewer"})
    assert again.status_code == 409  # within one tenant an email is still one user
    assert "this tenant" in again.json()["detail"]

    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        as_a = await http.post(LOGIN, json={"email": shared, "password": PASSWORD})
        as_b = await http.post(LOGIN, json={"email": shared, "password": "b-password-123"})
        wrong = await http.post(LOGIN, json={"email": shared, "password": "neither-password"})
    assert as_a.status_code == as_b.status_code == 200
    assert (await _me(server.base_url, as_a.json()))["tenant_id"] == plant_a.tenant_id
    me_b = await _me(server.base_url, as_b.json())
    assert (me_b["tenant_id"], me_b["role"]) == (plant_b.tenant_id, "operator")
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "invalid email or password"


async def test_the_same_email_and_password_in_two_tenants_need_a_tenant_id(
    server: RunningServer, tenant_factory: Callable[..., Any]
) -> None:
    plant_a: Tenant = await tenant_factory()
    plant_b: Tenant = await tenant_factory()
    body = {"email": "consultant@example.com", "password": PASSWORD, "role": "viewer"}
    for plant in (plant_a, plant_b):
        assert (await plant.http.post("/api/v1/users", json=body)).status_code == 201
    credentials = {"email": body["email"], "password": PASSWORD}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        ambiguous = await http.post(LOGIN, json=credentials)
        assert ambiguous.status_code == 409
        assert plant_a.tenant_id in ambiguous.json()["detail"]
        assert plant_b.tenant_id in ambiguous.json()["detail"]
        for plant in (plant_a, plant_b):
            chosen = await http.post(LOGIN, json={**credentials, "tenant_id": plant.tenant_id.upper()})
            assert chosen.status_code == 200
            assert (await _me(server.base_url, chosen.json()))["tenant_id"] == plant.tenant_id
        for tenant_id in ("00000000-0000-4000-8000-000000000000", "not-a-tenant"):
            elsewhere = await http.post(LOGIN, json={**credentials, "tenant_id": tenant_id})
            assert elsewhere.status_code == 401
            assert elsewhere.json()["detail"] == "invalid email or password"
