"""A client that stops reading is cut off (4008) without slowing the others or growing memory."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import connect

from tests.conftest import EVENT_TIMEOUT, Tenant


async def _socket_count(http: httpx.AsyncClient) -> int:
    count: int = (await http.get("/api/v1/health")).json()["websockets"]
    return count


async def test_stalled_client_is_cut_off_while_healthy_client_keeps_up(
    server_factory: Any, tenant_factory: Any
) -> None:
    running = server_factory(ws_send_buffer_bytes=2 * 1024 * 1024, ws_heartbeat_interval=30)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()

    # The stalled client: a tiny kernel receive buffer and a one-frame queue, and it never calls recv().
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", running.port))
    raw.setblocking(False)
    stalled = await connect(running.ws_url, sock=raw, max_queue=1, open_timeout=EVENT_TIMEOUT)
    await stalled.send(tenant.access_token)
    # Each socket's first heartbeat says it has joined the hub: a batch ingested before that would not reach it.
    assert orjson.loads(await asyncio.wait_for(stalled.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"

    healthy = await connect(running.ws_url, open_timeout=EVENT_TIMEOUT)
    await healthy.send(tenant.access_token)
    assert orjson.loads(await asyncio.wait_for(healthy.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
    received = 0

    async def read_healthy() -> None:
        nonlocal received
        async for message in healthy:
            if orjson.loads(message)["type"] == "sensor_update":
                received += 1
            if received == sent and done_sending.is_set():
                return

    done_sending = asyncio.Event()
    reader = asyncio.create_task(read_healthy())
    sent = 0
    for _ in range(100):
        batch = [{"machine_id": machine_id, "metric_name": "temperature", "value": float(i)} for i in range(5000)]
        response = await tenant.ingest(batch)
        assert response.json()["accepted"] == 5000
        sent += 5000
        if await _socket_count(tenant.http) == 1:
            break
    else:
        raise AssertionError("the stalled client was never cut off")

    # The stalled socket left the hub; the healthy one got every single event.
    done_sending.set()
    async with asyncio.timeout(30):
        while received < sent and not reader.done():
            await asyncio.sleep(0.05)
    assert received == sent

    # Once the stalled client reads again, it finds the documented close code after what was buffered.
    try:
        async with asyncio.timeout(20):
            async for _ in stalled:
                pass
    except websockets.ConnectionClosed:
        pass
    assert stalled.close_code == 4008
    await reader
    await healthy.close()
