"""Ordered event ids and `resume_after`: a dashboard that reconnects gets exactly what it missed."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from haltless.core.event_ids import parse_event_id
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, next_event


async def _open(server: RunningServer, first_message: str) -> ClientConnection:
    ws = await connect(server.ws_url, open_timeout=EVENT_TIMEOUT)
    await ws.send(first_message)
    assert orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
    return ws


def _reading(machine_id: str, value: float) -> dict[str, Any]:
    return {"machine_id": machine_id, "metric_name": "t", "value": value}


async def test_event_ids_increase(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    ws = await _open(server, tenant.access_token)
    await tenant.ingest([_reading(machine_id, float(i)) for i in range(5)])
    parsed = [parse_event_id((await next_event(ws))["event_id"]) for _ in range(6)]  # 5 updates + 1 status
    keys = [key for key in parsed if key is not None]
    assert len(keys) == len(parsed)
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    await ws.close()


async def test_resume_delivers_exactly_the_missed_events(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    ws = await _open(server, tenant.access_token)
    await tenant.ingest([_reading(machine_id, 1.0), _reading(machine_id, 2.0)])
    seen = [await next_event(ws, only="sensor_update") for _ in range(2)]
    await ws.close()

    await tenant.ingest([_reading(machine_id, float(v)) for v in (3, 4, 5)])
    resumed = await _open(
        server, orjson.dumps({"token": tenant.access_token, "resume_after": seen[-1]["event_id"]}).decode()
    )
    replayed = [await next_event(resumed) for _ in range(3)]
    assert [e["value"] for e in replayed] == [3.0, 4.0, 5.0]
    await tenant.ingest([_reading(machine_id, 6.0)])
    live = await next_event(resumed)
    assert live["value"] == 6.0
    parsed = [parse_event_id(e["event_id"]) for e in [*seen, *replayed, live]]
    keys = [key for key in parsed if key is not None]
    assert len(keys) == len(parsed)
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    await resumed.close()


async def test_resume_while_events_keep_flowing_has_no_gap_and_no_duplicate(
    server: RunningServer, tenant: Tenant
) -> None:
    machine_id = await tenant.add_machine()
    ws = await _open(server, tenant.access_token)
    await tenant.ingest([_reading(machine_id, 0.0)])
    first = await next_event(ws, only="sensor_update")
    await ws.close()

    async def keep_ingesting() -> None:
        for value in range(1, 41):
            await tenant.ingest([_reading(machine_id, float(value))])

    feeder = asyncio.create_task(keep_ingesting())
    await asyncio.sleep(0.05)
    resumed = await _open(
        server, orjson.dumps({"token": tenant.access_token, "resume_after": first["event_id"]}).decode()
    )
    await feeder
    values = [(await next_event(resumed, only="sensor_update"))["value"] for _ in range(40)]
    assert values == [float(v) for v in range(1, 41)]
    await resumed.close()


async def test_unknown_or_expired_resume_point_asks_for_resync(server_factory: Any, tenant_factory: Any) -> None:
    running = server_factory(event_history=5)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()
    ws = await _open(running, tenant.access_token)
    await tenant.ingest([_reading(machine_id, 0.0)])
    oldest = await next_event(ws, only="sensor_update")
    await ws.close()
    await tenant.ingest([_reading(machine_id, float(v)) for v in range(20)])
    for resume_after in (oldest["event_id"], "1-1", "not-an-id", 42):
        message = orjson.dumps({"token": tenant.access_token, "resume_after": resume_after}).decode()
        again = await _open(running, message)
        control = await next_event(again)
        assert control["type"] == "resync_required", resume_after
        assert "event_id" not in control
        await tenant.ingest([_reading(machine_id, 99.0)])
        assert (await next_event(again, only="sensor_update"))["value"] == 99.0
        await again.close()
