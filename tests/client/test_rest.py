"""The REST clients against a real server: typed results, errors with the server's detail, refresh, batching."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from haltless.client import (
    UNSET,
    AsyncHaltlessClient,
    AuthenticationError,
    ConnectError,
    HaltlessClient,
    HistoryBucket,
    Machine,
    NotFound,
    PermissionDenied,
    Reading,
    SessionExpired,
    ValidationError,
)
from tests.client.helpers import wait_until_expired
from tests.conftest import EVENT_TIMEOUT, PASSWORD, RunningServer, Tenant, free_port


async def test_async_client_manages_machines_with_typed_results(server: RunningServer, tenant: Tenant) -> None:
    async with AsyncHaltlessClient(server.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        me = await client.me()
        assert (me.email, me.role, me.tenant_id) == (tenant.admin_email, "admin", tenant.tenant_id)
        created = await client.create_machine("Press 1", location="Hall 2", tags=["line-a"])
        assert isinstance(created, Machine)
        assert (created.name, created.location, created.tags, created.status) == (
            "Press 1",
            "Hall 2",
            ("line-a",),
            "offline",
        )
        renamed = await client.update_machine(created.id, name="Press 9", location=None)
        assert (renamed.name, renamed.location, renamed.tags) == ("Press 9", None, ("line-a",))
        assert (await client.update_machine(created.id, tags=UNSET)).name == "Press 9"
        page = await client.list_machines()
        assert [m.id for m in page.items] == [created.id] and page.total == 1
        assert (await client.get_machine(created.id)).name == "Press 9"
        await client.delete_machine(created.id)
        with pytest.raises(NotFound) as missing:
            await client.get_machine(created.id)
        assert missing.value.status == 404 and missing.value.detail == "machine not found"


def test_sync_client_ingests_and_reads_latest(server: RunningServer, tenant: Tenant) -> None:
    with HaltlessClient(server.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        machine = client.create_machine("Lathe")
        result = client.ingest(
            [
                Reading(machine.id, "temperature", 70.5, "celsius", reading_id="r-1"),
                {"machine_id": machine.id, "metric_name": "temperature", "value": 71.5, "unit": "celsius"},
                Reading(machine.id, "temperature", 99.0, reading_id="r-1"),
                Reading("not-a-uuid", "temperature", 1.0),
            ]
        )
        assert (result.accepted, result.duplicates, result.requests) == (2, 1, 1)
        assert [r.index for r in result.rejected] == [3] and "UUID" in result.rejected[0].detail
        latest = client.latest(machine.id)
        assert latest.by_metric["temperature"].value == 71.5
        assert latest.by_metric["temperature"].unit == "celsius"


async def test_ingest_splits_big_lists_and_keeps_rejection_indexes(server: RunningServer, tenant: Tenant) -> None:
    """25,000 readings go out as 10,000 + 10,000 + 5,000; a bad reading's index is its place in the whole list."""
    machine_id = await tenant.add_machine()
    readings = [Reading(machine_id, "vibration", float(i), reading_id=f"v-{i}") for i in range(25_000)]
    readings[17_345] = Reading(machine_id, "bad metric name!", 1.0)
    async with AsyncHaltlessClient(server.base_url, token=tenant.access_token) as client:
        result = await client.ingest(readings)
    assert (result.accepted, result.duplicates, result.requests) == (24_999, 0, 3)
    assert [r.index for r in result.rejected] == [17_345]


async def test_errors_carry_the_servers_detail(server: RunningServer, tenant: Tenant) -> None:
    viewer = await tenant.add_user("viewer")
    async with AsyncHaltlessClient(server.base_url, token=viewer["access_token"]) as client:
        with pytest.raises(PermissionDenied) as denied:
            await client.create_machine("Nope")
        assert denied.value.status == 403 and denied.value.detail
    async with AsyncHaltlessClient(server.base_url, token=tenant.access_token) as client:
        with pytest.raises(ValidationError) as invalid:
            await client.create_machine("")
        assert invalid.value.status == 422 and "name" in invalid.value.detail
    wrong = HaltlessClient(server.base_url, email=tenant.admin_email, password="wrong-password")
    with wrong, pytest.raises(AuthenticationError) as refused:
        wrong.me()
    assert refused.value.detail == "invalid email or password"


def test_unreachable_server_is_a_connect_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with HaltlessClient(url, email="a@b.c", password=PASSWORD) as client, pytest.raises(ConnectError) as failed:
        client.me()
    assert url in str(failed.value)


async def test_expired_access_token_is_refreshed_once_for_concurrent_requests(
    server_factory: Callable[..., RunningServer], tenant_factory: Callable[..., Any]
) -> None:
    """Five requests hit 401 together; one refresh serves them all (a second would revoke the session)."""
    running = server_factory(access_token_ttl=1)
    tenant: Tenant = await tenant_factory(running)
    async with AsyncHaltlessClient(running.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        await client.login()
        first = client.access_token
        assert first is not None
        await wait_until_expired(first)
        pages = await asyncio.gather(*(client.list_machines() for _ in range(5)))
        assert all(page.total == 0 for page in pages)
        assert client.access_token != first
        await wait_until_expired(client.access_token or "")
        assert (await client.me()).email == tenant.admin_email


async def test_revoked_session_raises_session_expired(
    server_factory: Callable[..., RunningServer], tenant_factory: Callable[..., Any]
) -> None:
    running = server_factory(access_token_ttl=1)
    tenant: Tenant = await tenant_factory(running)
    async with AsyncHaltlessClient(running.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        await client.login()
        async with httpx.AsyncClient(base_url=running.base_url, timeout=EVENT_TIMEOUT) as http:
            revoked = await http.post("/api/v1/auth/logout", json={"refresh_token": client.refresh_token})
            assert revoked.status_code == 204
        await wait_until_expired(client.access_token or "")
        with pytest.raises(SessionExpired) as expired:
            await client.me()
        assert expired.value.status == 401 and expired.value.detail


def test_token_without_refresh_token_expires_into_session_expired(
    server_factory: Callable[..., RunningServer],
) -> None:
    running = server_factory()
    with HaltlessClient(running.base_url, token="not.a.token") as client, pytest.raises(SessionExpired) as expired:
        client.list_machines()
    assert "no refresh token" in expired.value.detail


async def test_history_pages_raw_points_and_buckets(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    readings = [
        Reading(machine_id, "temperature", float(i), "celsius", timestamp=base + timedelta(seconds=i)) for i in range(5)
    ]
    async with AsyncHaltlessClient(server.base_url, token=tenant.access_token) as client:
        assert (await client.ingest(readings)).accepted == 5
        points = [p async for p in client.iter_history(machine_id, "temperature", start=base, limit=2)]
        assert [(p.value, p.timestamp) for p in points] == [(float(i), base + timedelta(seconds=i)) for i in range(5)]
        buckets = await client.history(machine_id, ["temperature"], start=base, interval="1h")
        assert buckets.interval == "1h"
        assert sum(b.count for b in buckets.items if isinstance(b, HistoryBucket)) == 5
    with HaltlessClient(server.base_url, token=tenant.access_token) as sync_client:
        assert len(list(sync_client.iter_history(machine_id, "temperature", start=base, limit=3))) == 5
        with pytest.raises(NotFound):
            sync_client.history(str(uuid.uuid4()), "temperature")
