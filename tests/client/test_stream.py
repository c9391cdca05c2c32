"""DashboardStream against real servers: restarts, token refresh, revoked sessions, dead peers, fail fast."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from haltless.client import (
    AsyncHaltlessClient,
    Backoff,
    Connected,
    ConnectError,
    GaveUp,
    Reading,
    Reconnecting,
    ResyncRequired,
    SensorUpdate,
    SessionExpired,
    StreamStatus,
)
from tests.client.helpers import StreamRecorder, wait_until_expired
from tests.conftest import EVENT_TIMEOUT, PASSWORD, RunningServer, Tenant, free_port, start_server

FAST = Backoff(initial=0.1, maximum=0.4, jitter=0)


@pytest.fixture
async def restarts() -> AsyncIterator[list[RunningServer]]:
    """Servers a test started again by hand; stopped at the end."""
    started: list[RunningServer] = []
    yield started
    for running in started:
        await asyncio.to_thread(running.stop)


async def restart(running: RunningServer, started: list[RunningServer]) -> RunningServer:
    again = await asyncio.to_thread(start_server, running.settings, running.port)
    started.append(again)
    return again


def is_update(value: float) -> Callable[[Any], bool]:
    return lambda item: isinstance(item, SensorUpdate) and item.value == value


async def test_stream_survives_a_server_restart_with_backoff(
    server_factory: Callable[..., RunningServer], tenant_factory: Callable[..., Any], restarts: list[RunningServer]
) -> None:
    running = server_factory(ws_heartbeat_interval=0.5)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()
    async with AsyncHaltlessClient(running.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        recorder = StreamRecorder(client.stream(status_events=True, heartbeat_interval=0.5, backoff=FAST))
        try:
            await recorder.next_of(Connected)
            await client.ingest([Reading(machine_id, "temperature", 1.0)])
            await recorder.next_matching(is_update(1.0))

            await asyncio.to_thread(running.stop)
            for _ in range(4):  # the restart's close, then three refused connections
                await recorder.next_of(Reconnecting)
            await restart(running, restarts)
            await recorder.next_of(Connected)
            await client.ingest([Reading(machine_id, "temperature", 2.0)])
            assert isinstance(await recorder.next_matching(is_update(2.0)), SensorUpdate)
        finally:
            await recorder.close()
    delays = [item.delay for item in recorder.items if isinstance(item, Reconnecting)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.4]
    assert [type(i).__name__ for i in recorder.items if isinstance(i, StreamStatus)].count("Connected") == 2


async def test_access_token_expiring_mid_stream_is_refreshed_unnoticed(
    server_factory: Callable[..., RunningServer], tenant_factory: Callable[..., Any], restarts: list[RunningServer]
) -> None:
    running = server_factory(ws_heartbeat_interval=0.5, access_token_ttl=2)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()
    async with AsyncHaltlessClient(running.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        statuses: list[StreamStatus] = []
        connected = asyncio.Event()

        def on_status(status: StreamStatus) -> None:
            statuses.append(status)
            if isinstance(status, Connected):
                connected.set()

        stream = client.stream(heartbeat_interval=0.5, backoff=FAST, types={"sensor_update"}, on_status=on_status)
        recorder = StreamRecorder(stream)
        try:
            await connected.wait()
            await client.ingest([Reading(machine_id, "temperature", 1.0)])
            await recorder.next_matching(is_update(1.0))
            first_token = client.access_token or ""
            await asyncio.to_thread(running.stop)
            connected.clear()
            await wait_until_expired(first_token)
            await restart(running, restarts)
            # The reconnect meets 4001 (expired), refreshes and comes back; the caller only sees data.
            await asyncio.wait_for(connected.wait(), EVENT_TIMEOUT)
            await client.ingest([Reading(machine_id, "temperature", 2.0)])
            await recorder.next_matching(is_update(2.0))
        finally:
            await recorder.close()
    assert client.access_token != first_token
    # The restart lost the server's event history, so the resumed reconnect is told to resync (whatever the filters).
    assert [type(i) for i in recorder.items] == [SensorUpdate, ResyncRequired, SensorUpdate]
    assert any(isinstance(s, Reconnecting) and "4001" in s.reason and "refreshed" in s.reason for s in statuses)


async def test_revoked_refresh_token_ends_the_stream_with_session_expired(
    server_factory: Callable[..., RunningServer], tenant_factory: Callable[..., Any], restarts: list[RunningServer]
) -> None:
    running = server_factory(ws_heartbeat_interval=0.5, access_token_ttl=2)
    tenant: Tenant = await tenant_factory(running)
    statuses: list[StreamStatus] = []
    async with AsyncHaltlessClient(running.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        recorder = StreamRecorder(
            client.stream(status_events=True, on_status=statuses.append, heartbeat_interval=0.5, backoff=FAST)
        )
        try:
            await recorder.next_of(Connected)
            async with httpx.AsyncClient(base_url=running.base_url, timeout=EVENT_TIMEOUT) as http:
                logout = await http.post("/api/v1/auth/logout", json={"refresh_token": client.refresh_token})
                assert logout.status_code == 204
            await asyncio.to_thread(running.stop)
            await wait_until_expired(client.access_token or "")
            await restart(running, restarts)
            ended = await recorder.next_matching(lambda item: False)
        finally:
            await recorder.close()
    assert isinstance(ended, SessionExpired)
    assert ended.status == 401 and "refresh token" in ended.detail
    assert isinstance(statuses[-1], GaveUp) and "session expired" in statuses[-1].reason


async def test_silent_peer_is_detected_by_missed_heartbeats() -> None:
    """A peer that sends one heartbeat and then nothing is dropped after 3 intervals, and never overlapped."""
    log: list[tuple[str, int]] = []
    tokens: list[str] = []

    async def silent(ws: ServerConnection) -> None:
        number = len([kind for kind, _ in log if kind == "open"]) + 1
        log.append(("open", number))
        tokens.append(str(await ws.recv()))
        await ws.send(orjson.dumps({"type": "heartbeat", "server_time": "2026-04-04T10:30:00Z"}).decode())
        await ws.wait_closed()
        log.append(("closed", number))

    async with serve(silent, "127.0.0.1", 0) as peer:
        port = peer.sockets[0].getsockname()[1]
        async with AsyncHaltlessClient("http://127.0.0.1:1", token="a.b.c") as client:
            stream = client.stream(
                status_events=True, heartbeat_interval=0.1, backoff=FAST, ws_url=f"ws://127.0.0.1:{port}/"
            )
            recorder = StreamRecorder(stream)
            try:
                await recorder.next_of(Connected)
                dropped = await recorder.next_of(Reconnecting)
                await recorder.next_of(Connected)
                await recorder.next_of(Reconnecting)
            finally:
                await recorder.close()
    assert "no heartbeat for 0.3 s" in dropped.reason
    assert tokens[:2] == ["a.b.c", "a.b.c"]
    assert log[:3] == [("open", 1), ("closed", 1), ("open", 2)]


async def test_bad_url_fails_fast_with_a_clear_error() -> None:
    port = free_port()
    async with AsyncHaltlessClient(f"http://127.0.0.1:{port}", token="a.b.c") as client:
        with pytest.raises(ConnectError) as refused:
            async for _ in client.stream():
                pass
    assert f"ws://127.0.0.1:{port}/api/v1/ws/dashboard" in str(refused.value)
    assert "connection refused" in str(refused.value)
    async with AsyncHaltlessClient(f"http://127.0.0.1:{port}", email="a@b.c", password=PASSWORD) as client:
        with pytest.raises(ConnectError, match="cannot connect"):
            async for _ in client.stream():
                pass
    async with AsyncHaltlessClient("http://127.0.0.1:1", token="a.b.c") as client:
        with pytest.raises(ConnectError, match="not a WebSocket URL"):
            async for _ in client.stream(ws_url="ftp://example.com/"):
                pass


async def test_no_busy_loop_while_the_server_is_unreachable() -> None:
    """A listener that hangs up on every connection sees attempts spaced by the backoff, not a tight loop."""
    attempts = 0

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        writer.close()

    class WindowOver(Exception):
        """Raised from the status callback: stops the stream between attempts, with no socket open."""

    loop = asyncio.get_running_loop()
    window_ends = loop.time() + 1.5
    statuses: list[StreamStatus] = []

    def on_status(status: StreamStatus) -> None:
        statuses.append(status)
        if loop.time() >= window_ends:
            raise WindowOver

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener, AsyncHaltlessClient("http://127.0.0.1:1", token="a.b.c") as client:
        stream = client.stream(fail_fast=False, on_status=on_status, backoff=FAST, ws_url=f"ws://127.0.0.1:{port}/")
        with pytest.raises(WindowOver):
            async for _ in stream:
                pass
    # 0.1 + 0.2 + 0.4 + 0.4 + 0.4 s of waiting fits about 6 attempts into 1.5 s.
    assert 3 <= attempts <= 8, attempts
    delays = [s.delay for s in statuses if isinstance(s, Reconnecting)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.4]


async def test_server_busy_backs_off_then_gives_up_after_max_attempts(
    server_factory: Callable[..., RunningServer], tenant_factory: Callable[..., Any]
) -> None:
    running = server_factory(ws_max_pending=0)
    tenant: Tenant = await tenant_factory(running)
    statuses: list[StreamStatus] = []
    async with AsyncHaltlessClient(running.base_url, token=tenant.access_token) as client:
        with pytest.raises(ConnectError, match="gave up after 3 failed attempts") as gave_up:
            async for _ in client.stream(on_status=statuses.append, backoff=FAST, max_attempts=3):
                pass
    assert "4003" in str(gave_up.value)
    retries = [s for s in statuses if isinstance(s, Reconnecting)]
    assert [r.delay for r in retries] == [0.1, 0.2, 0.4]
    assert all("4003" in r.reason for r in retries)
    assert isinstance(statuses[-1], GaveUp)


async def test_filters_by_machine_and_type(server: RunningServer, tenant: Tenant) -> None:
    wanted, other = await tenant.add_machine("Press 1"), await tenant.add_machine("Press 2")
    async with AsyncHaltlessClient(server.base_url, token=tenant.access_token) as client:
        recorder = StreamRecorder(
            client.stream(machine_ids=[wanted.upper()], types=["sensor_update"], status_events=True)
        )
        try:
            await recorder.next_of(Connected)
            await client.ingest(
                [Reading(other, "temperature", 1.0), Reading(wanted, "temperature", 2.0), Reading(other, "rpm", 3.0)]
            )
            await client.ingest([Reading(wanted, "temperature", 4.0)])
            await recorder.next_matching(is_update(4.0))
        finally:
            await recorder.close()
    updates = [i for i in recorder.items if isinstance(i, SensorUpdate)]
    assert [(u.machine_id, u.value) for u in updates] == [(wanted, 2.0), (wanted, 4.0)]
    assert all(not isinstance(i, BaseException) for i in recorder.items)


async def test_a_new_role_closes_the_stream_with_4004_and_it_comes_back_refreshed(
    server: RunningServer, tenant: Tenant
) -> None:
    created = await tenant.http.post(
        "/api/v1/users", json={"email": "wallboard@example.com", "password": PASSWORD, "role": "viewer"}
    )
    statuses: list[StreamStatus] = []
    async with AsyncHaltlessClient(server.base_url, email="wallboard@example.com", password=PASSWORD) as client:
        recorder = StreamRecorder(
            client.stream(status_events=True, on_status=statuses.append, heartbeat_interval=30, backoff=FAST)
        )
        try:
            await recorder.next_of(Connected)
            first_token = client.access_token
            promoted = await tenant.http.patch(f"/api/v1/users/{created.json()['id']}", json={"role": "operator"})
            assert promoted.status_code == 200
            await recorder.next_of(Connected)
        finally:
            await recorder.close()
        assert client.access_token != first_token
        assert (await client.me()).role == "operator"
    reconnecting = [s for s in statuses if isinstance(s, Reconnecting)]
    assert len(reconnecting) == 1
    assert "session revoked (4004)" in reconnecting[0].reason and "refreshed" in reconnecting[0].reason


async def test_a_disabled_user_s_stream_ends_with_session_expired(server: RunningServer, tenant: Tenant) -> None:
    created = await tenant.http.post(
        "/api/v1/users", json={"email": "leaver@example.com", "password": PASSWORD, "role": "viewer"}
    )
    statuses: list[StreamStatus] = []
    async with AsyncHaltlessClient(server.base_url, email="leaver@example.com", password=PASSWORD) as client:
        recorder = StreamRecorder(
            client.stream(status_events=True, on_status=statuses.append, heartbeat_interval=30, backoff=FAST)
        )
        try:
            await recorder.next_of(Connected)
            disabled = await tenant.http.patch(f"/api/v1/users/{created.json()['id']}", json={"disabled": True})
            assert disabled.status_code == 200
            ended = await recorder.next_matching(lambda item: False)
        finally:
            await recorder.close()
    assert isinstance(ended, SessionExpired)
    assert "revoked" in ended.detail
    assert isinstance(statuses[-1], GaveUp) and "session expired" in statuses[-1].reason
