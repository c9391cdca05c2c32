"""The dashboard fast path (pre-built frames written to the transport) and the ASGI `send` path it replaces."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

import tests.conftest as conftest
from haltless.server.ws.frames import text_frames
from tests.conftest import EVENT_TIMEOUT, Tenant, next_event


def _parse_all(data: bytes) -> list[Frame]:
    """Frames as the websockets library's own client parser reads them."""
    client = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    client.receive_data(data)
    return [event for event in client.events_received() if isinstance(event, Frame)]


def test_prebuilt_frames_parse_as_text_frames_of_every_length_class() -> None:
    events = ["x" * 5, "é" * 100, "y" * 300, "z" * 70_000]
    frames = _parse_all(text_frames(events))
    assert [f.opcode for f in frames] == [Opcode.TEXT] * 4
    assert all(f.fin for f in frames)
    assert [bytes(f.data).decode() for f in frames] == events


async def _stream_one_event(running: Any, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    async with connect(running.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        await ws.send(tenant.access_token)
        assert orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
        # Whatever a client sends after its token is ignored, and the stream carries on.
        await ws.send("hello")
        await ws.send(b"\x00" * 10)
        await tenant.ingest([{"machine_id": machine_id, "metric_name": "temperature", "value": 1.5}])
        event = await next_event(ws, only="sensor_update")
        assert event["value"] == 1.5


async def test_fast_path_streams_and_ignores_client_messages(server_factory: Any, tenant_factory: Any) -> None:
    running = server_factory(ws_heartbeat_interval=30)
    await _stream_one_event(running, await tenant_factory(running))


async def test_asgi_send_path_still_streams(
    server_factory: Any, tenant_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a plain ASGI WebSocket protocol (no frame sink) the writer task delivers the same stream."""
    monkeypatch.setattr(conftest, "WebSocketProtocol", "websockets-sansio")
    running = server_factory(ws_heartbeat_interval=30)
    await _stream_one_event(running, await tenant_factory(running))


async def test_hub_shutdown_closes_1001(server_factory: Any, tenant_factory: Any) -> None:
    running = server_factory(ws_heartbeat_interval=30)
    tenant: Tenant = await tenant_factory(running)
    async with connect(running.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        await ws.send(tenant.access_token)
        await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT)
        # What the lifespan does at shutdown, run on the server's own loop (it lives in another thread).
        state = running.state
        loop = running.server.servers[0].get_loop()
        loop.call_soon_threadsafe(state.hub.close_all)
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(EVENT_TIMEOUT):
                while True:
                    await ws.recv()
        assert ws.close_code == 1001
