"""The dashboard WebSocket: auth handshake and close codes, heartbeats, event shape, isolation."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime
from typing import Any

import jwt
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, next_event

SENSOR_UPDATE_FIELDS = ["type", "machine_id", "metric_name", "value", "unit", "timestamp"]


async def _close_code(ws: ClientConnection, timeout: float = EVENT_TIMEOUT) -> int | None:
    with pytest.raises(websockets.ConnectionClosed) as info:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return info.value.rcvd.code if info.value.rcvd else None


async def _authenticated(server: RunningServer, token: str, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("open_timeout", EVENT_TIMEOUT)
    ws = await connect(server.ws_url, **kwargs)
    await ws.send(token)
    first = orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))
    assert first["type"] == "heartbeat"
    return ws


async def test_guide_flow_streams_sensor_updates_with_exact_fields(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        await ws.send(tenant.access_token)
        heartbeat = orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))
        assert list(heartbeat) == ["type", "server_time"]
        assert heartbeat["type"] == "heartbeat"
        assert heartbeat["server_time"].endswith("Z")
        await tenant.ingest(
            [
                {
                    "machine_id": machine_id,
                    "metric_name": "temperature",
                    "value": 73.2,
                    "unit": "celsius",
                    "timestamp": "2026-04-04T10:30:05Z",
                }
            ]
        )
        raw = await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT)
    event = orjson.loads(raw)
    # The guide's fields in the guide's order, then the added ordered id.
    assert list(event) == [*SENSOR_UPDATE_FIELDS, "event_id"]
    assert event.pop("event_id")
    assert event == {
        "type": "sensor_update",
        "machine_id": machine_id,
        "metric_name": "temperature",
        "value": 73.2,
        "unit": "celsius",
        "timestamp": "2026-04-04T10:30:05Z",
    }


async def test_json_object_first_message_authenticates(server: RunningServer, tenant: Tenant) -> None:
    ws = await _authenticated(server, orjson.dumps({"token": tenant.access_token}).decode())
    await ws.close()


async def test_heartbeat_follows_auth_then_repeats(server_factory: Any, tenant_factory: Any) -> None:
    fast = server_factory(ws_heartbeat_interval=0.2)
    tenant: Tenant = await tenant_factory(fast)
    ws = await _authenticated(fast, tenant.access_token)
    stamps = []
    for _ in range(3):
        beat = orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))
        assert beat["type"] == "heartbeat"
        stamps.append(datetime.fromisoformat(beat["server_time"]).timestamp())
    # Periodic, not a burst: the server stamps each beat at least an interval after the one before (a lower
    # bound, which a slow machine cannot break). At the default 15 s the three would not come within the wait.
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert all(gap >= 0.15 for gap in gaps), gaps
    await ws.close()


@pytest.mark.parametrize(
    "token_kind", ["garbage", "refresh", "expired", "wrong_key", "json_without_token", "bad_json", "empty"]
)
async def test_bad_tokens_close_4001(server: RunningServer, tenant: Tenant, token_kind: str) -> None:
    now = int(time.time())
    claims = jwt.decode(tenant.access_token, options={"verify_signature": False})
    secret = server.settings.jwt_secret or ""
    tokens = {
        "garbage": "not.a.token",
        "refresh": tenant.tokens["refresh_token"],
        "expired": jwt.encode({**claims, "iat": now - 60, "exp": now - 1}, secret, algorithm="HS256"),
        "wrong_key": jwt.encode(claims, "x" * 40, algorithm="HS256"),
        "json_without_token": '{"access_token": "abc"}',
        "bad_json": '{"token": ',
        "empty": "   ",
    }
    async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        await ws.send(tokens[token_kind])
        assert await _close_code(ws) == 4001


async def test_silent_socket_closes_4002(server_factory: Any) -> None:
    running = server_factory(ws_auth_timeout=0.2)
    async with connect(running.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        assert await _close_code(ws) == 4002


async def test_token_in_url_is_ignored(server_factory: Any, tenant_factory: Any) -> None:
    running = server_factory(ws_auth_timeout=0.3)
    tenant: Tenant = await tenant_factory(running)
    async with connect(f"{running.ws_url}?token={tenant.access_token}", open_timeout=EVENT_TIMEOUT) as ws:
        # A valid token in the URL authenticates nothing: the socket still waits for the first message.
        assert await _close_code(ws) == 4002


async def test_too_many_pending_closes_4003(server_factory: Any, tenant_factory: Any) -> None:
    running = server_factory(ws_max_pending=2, ws_auth_timeout=EVENT_TIMEOUT)
    tenant: Tenant = await tenant_factory(running)
    waiting = [await connect(running.ws_url, open_timeout=EVENT_TIMEOUT) for _ in range(2)]
    async with connect(running.ws_url, open_timeout=EVENT_TIMEOUT) as third:
        assert await _close_code(third) == 4003
    # The pending ones are still allowed to authenticate, and then free their slots.
    for ws in waiting:
        await ws.send(tenant.access_token)
        assert orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
    ws = await _authenticated(running, tenant.access_token)
    for conn in [*waiting, ws]:
        await conn.close()


async def test_binary_first_frame_closes_1003(server: RunningServer, tenant: Tenant) -> None:
    async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        await ws.send(tenant.access_token.encode())
        assert await _close_code(ws) == 1003


async def test_oversized_first_frame_closes_1009(server: RunningServer) -> None:
    async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        await ws.send("x" * (17 * 1024))
        assert await _close_code(ws) == 1009


async def test_tenants_are_isolated(server: RunningServer, tenant_factory: Any) -> None:
    a: Tenant = await tenant_factory()
    b: Tenant = await tenant_factory()
    ma, mb = await a.add_machine(), await b.add_machine()
    ws_a = await _authenticated(server, a.access_token)
    ws_b = await _authenticated(server, b.access_token)
    await a.ingest([{"machine_id": ma, "metric_name": "t", "value": 1.0}])
    await b.ingest([{"machine_id": mb, "metric_name": "t", "value": 2.0}])
    assert (await next_event(ws_a, only="sensor_update"))["machine_id"] == ma
    assert (await next_event(ws_b, only="sensor_update"))["machine_id"] == mb
    await a.ingest([{"machine_id": ma, "metric_name": "t", "value": 3.0}])
    assert (await next_event(ws_a, only="sensor_update"))["value"] == 3.0
    # b's next event is its own, never a's.
    await b.ingest([{"machine_id": mb, "metric_name": "t", "value": 4.0}])
    assert (await next_event(ws_b, only="sensor_update"))["value"] == 4.0
    await ws_a.close()
    await ws_b.close()


async def test_events_of_a_machine_arrive_in_measurement_order(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    ws = await _authenticated(server, tenant.access_token)
    stamps = ["2026-01-01T00:00:03Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]
    await tenant.ingest([{"machine_id": machine_id, "metric_name": "t", "value": 1, "timestamp": s} for s in stamps])
    received = [(await next_event(ws, only="sensor_update"))["timestamp"] for _ in stamps]
    assert received == sorted(stamps)
    await ws.close()


async def test_duplicates_are_not_broadcast_again(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    ws = await _authenticated(server, tenant.access_token)
    reading = {"machine_id": machine_id, "metric_name": "t", "value": 1.0, "reading_id": "once"}
    await tenant.ingest([reading])
    await tenant.ingest([reading])
    await tenant.ingest([{**reading, "reading_id": "twice", "value": 2.0}])
    assert (await next_event(ws, only="sensor_update"))["value"] == 1.0
    assert (await next_event(ws, only="sensor_update"))["value"] == 2.0
    await ws.close()


async def test_disallowed_origin_is_refused_at_upgrade(server_factory: Any, tenant_factory: Any) -> None:
    running = server_factory(allowed_origins="https://dash.example.com")
    tenant: Tenant = await tenant_factory(running)
    with pytest.raises(websockets.InvalidStatus) as info:
        await connect(running.ws_url, origin="https://evil.example.com", open_timeout=EVENT_TIMEOUT)  # type: ignore[arg-type]
    assert info.value.response.status_code == 403
    allowed = await _authenticated(running, tenant.access_token, origin="https://dash.example.com")
    same = await _authenticated(running, tenant.access_token, origin=f"http://127.0.0.1:{running.port}")
    scripted = await _authenticated(running, tenant.access_token)
    for ws in (allowed, same, scripted):
        await ws.close()


async def test_cors_allows_listed_origin_only(server_factory: Any, tenant_factory: Any) -> None:
    running = server_factory(allowed_origins="https://dash.example.com")
    tenant: Tenant = await tenant_factory(running)
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = await tenant.http.options("/api/v1/auth/refresh", headers={"Origin": "https://dash.example.com", **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://dash.example.com"
    bad = await tenant.http.options("/api/v1/auth/refresh", headers={"Origin": "https://evil.example.com", **preflight})
    assert "access-control-allow-origin" not in bad.headers
