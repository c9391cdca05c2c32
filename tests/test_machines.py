"""Machines CRUD, scoping to the caller's tenant, latest values."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import RunningServer, Tenant


async def test_machine_crud(server: RunningServer, tenant: Tenant) -> None:
    created = await tenant.http.post(
        "/api/v1/machines", json={"name": "Lathe 7", "location": "Hall 2", "tags": ["cnc"]}
    )
    assert created.status_code == 201
    machine = created.json()
    assert machine["status"] == "offline"
    assert machine["last_seen_at"] is None
    assert machine["created_at"].endswith("Z")
    machine_id = machine["id"]

    patched = await tenant.http.patch(f"/api/v1/machines/{machine_id}", json={"location": "Hall 3"})
    assert patched.status_code == 200
    assert patched.json()["location"] == "Hall 3"
    assert patched.json()["name"] == "Lathe 7"
    assert patched.json()["tags"] == ["cnc"]

    listing = await tenant.http.get("/api/v1/machines")
    assert [m["id"] for m in listing.json()["items"]] == [machine_id]
    assert listing.json()["total"] == 1

    assert (await tenant.http.delete(f"/api/v1/machines/{machine_id}")).status_code == 204
    assert (await tenant.http.get(f"/api/v1/machines/{machine_id}")).status_code == 404


async def test_bad_machine_bodies_are_422(server: RunningServer, tenant: Tenant) -> None:
    for body in ({}, {"name": ""}, {"name": "x" * 201}, {"name": "ok", "tags": "cnc"}, {"name": "ok", "colour": 1}):
        response = await tenant.http.post("/api/v1/machines", json=body)
        assert response.status_code == 422, body
        assert isinstance(response.json()["detail"], str)


async def test_other_tenants_machines_are_404(server: RunningServer, tenant_factory: Any) -> None:
    a: Tenant = await tenant_factory()
    b: Tenant = await tenant_factory()
    foreign = await b.add_machine("B's press")
    for method, path in (
        ("GET", f"/api/v1/machines/{foreign}"),
        ("PATCH", f"/api/v1/machines/{foreign}"),
        ("DELETE", f"/api/v1/machines/{foreign}"),
        ("GET", f"/api/v1/machines/{foreign}/latest"),
        ("GET", f"/api/v1/machines/{uuid.uuid4()}"),
        ("GET", "/api/v1/machines/not-a-uuid"),
    ):
        response = await a.http.request(method, path, json={"name": "mine"} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "machine not found"}
    assert (await a.http.get("/api/v1/machines")).json()["items"] == []
    assert (await b.http.get(f"/api/v1/machines/{foreign}")).json()["name"] == "B's press"


async def test_latest_picks_newest_measurement_per_metric(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    await tenant.ingest(
        [
            {"machine_id": machine_id, "metric_name": "t", "value": 2.0, "timestamp": "2026-01-01T00:00:02Z"},
            # Arrives later but was measured earlier: it must not become the latest.
            {"machine_id": machine_id, "metric_name": "t", "value": 1.0, "timestamp": "2026-01-01T00:00:01Z"},
            {"machine_id": machine_id, "metric_name": "rpm", "value": 1500, "timestamp": "2026-01-01T00:00:00Z"},
        ]
    )
    await tenant.ingest(
        [{"machine_id": machine_id, "metric_name": "t", "value": 0.5, "timestamp": "2025-12-31T23:59:59Z"}]
    )
    latest = (await tenant.http.get(f"/api/v1/machines/{machine_id}/latest")).json()
    assert latest["machine_id"] == machine_id
    assert [(r["metric_name"], r["value"], r["timestamp"]) for r in latest["readings"]] == [
        ("rpm", 1500.0, "2026-01-01T00:00:00Z"),
        ("t", 2.0, "2026-01-01T00:00:02Z"),
    ]


async def test_deleting_a_machine_deletes_its_readings(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    await tenant.ingest([{"machine_id": machine_id, "metric_name": "t", "value": 1, "reading_id": "keep-me"}])
    assert (await tenant.http.delete(f"/api/v1/machines/{machine_id}")).status_code == 204
    again = await tenant.add_machine()
    # The reading id is free again because its reading went with the machine.
    response = await tenant.ingest([{"machine_id": again, "metric_name": "t", "value": 1, "reading_id": "keep-me"}])
    assert response.json()["accepted"] == 1


async def test_nul_characters_are_422_not_500(server: RunningServer, tenant: Tenant) -> None:
    """PostgreSQL text cannot hold NUL; every backend answers the same clear 422."""
    machine_id = await tenant.add_machine()
    cases = [
        ("POST", "/api/v1/machines", {"name": "Press\x00"}),
        ("POST", "/api/v1/machines", {"name": "Press", "location": "Hall\x00"}),
        ("POST", "/api/v1/machines", {"name": "Press", "tags": ["a\x00"]}),
        ("PATCH", f"/api/v1/machines/{machine_id}", {"name": "x\x00"}),
        ("POST", "/api/v1/users", {"email": "a\x00@b.c", "password": "long-enough-pw", "role": "viewer"}),
        ("POST", "/api/v1/alert-rules", {"name": "r\x00", "metric_name": "t", "condition": ">", "threshold": 1}),
        (
            "POST",
            "/api/v1/alert-rules",
            {"name": "r", "metric_name": "t", "condition": ">", "threshold": 1, "message": "hot\x00"},
        ),
        ("POST", "/api/v1/auth/login", {"email": "a\x00@b.c", "password": "whatever"}),
    ]
    for method, path, body in cases:
        response = await tenant.http.request(method, path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert "NUL" in response.json()["detail"]


async def test_machine_names_are_unique_per_tenant(server: RunningServer, tenant_factory: Any) -> None:
    """A second "Press 1" in a tenant is refused with 409 (create and rename); another tenant may use the name."""
    a, b = await tenant_factory(), await tenant_factory()
    first = await a.add_machine("Press 1")
    other = await a.add_machine("Press 2")
    again = await a.http.post("/api/v1/machines", json={"name": "Press 1"})
    assert again.status_code == 409
    assert (
        again.json()["detail"] == 'a machine named "Press 1" exists already; machine names are unique, choose another'
    )
    renamed = await a.http.patch(f"/api/v1/machines/{other}", json={"name": "Press 1"})
    assert renamed.status_code == 409
    assert "Press 1" in renamed.json()["detail"]
    # Renaming a machine to its own name, and another tenant's "Press 1", are fine.
    assert (await a.http.patch(f"/api/v1/machines/{first}", json={"name": "Press 1"})).status_code == 200
    await b.add_machine("Press 1")
    listing = (await a.http.get("/api/v1/machines")).json()
    assert sorted(m["name"] for m in listing["items"]) == ["Press 1", "Press 2"]
