"""A real server on a Redis bus that hangs, loses its data, or refuses one tenant's events: ingest answers and
stores, and the sockets concerned (only those) are told to resync; nothing arrives late or silently goes missing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.bus.conftest import PrivateRedis, SharedRedis
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, next_event

ServerFactory = Callable[..., RunningServer]


async def _open(server: RunningServer, first_message: str) -> ClientConnection:
    ws = await connect(server.ws_url, open_timeout=EVENT_TIMEOUT)
    await ws.send(first_message)
    assert orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
    return ws


def _resume(tenant: Tenant, event_id: str) -> str:
    return orjson.dumps({"token": tenant.access_token, "resume_after": event_id}).decode()


def _reading(machine_id: str, value: float) -> dict[str, Any]:
    return {"machine_id": machine_id, "metric_name": "t", "value": value, "reading_id": f"r{value}"}


async def _stored_values(tenant: Tenant, machine_id: str) -> list[float]:
    page = await tenant.http.get("/api/v1/sensor-data", params={"machine_id": machine_id, "metric_name": "t"})
    assert page.status_code == 200, page.text
    return sorted(point["value"] for point in page.json()["items"])


async def test_hung_redis_ingest_answers_stores_and_sockets_resync(
    server_factory: ServerFactory, tenant_factory: Any, private_redis: PrivateRedis
) -> None:
    """SIGSTOP, not a refused connection: batches are stored and answered, the socket is told to resync, no
    batch given up on lands late, and once Redis answers again the gap is recorded in the tenant's stream."""
    running = server_factory(bus_url=private_redis.url, ws_heartbeat_interval=30.0)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()
    ws = await _open(running, tenant.access_token)
    await tenant.ingest([_reading(machine_id, 1.0)])
    before = [await next_event(ws) for _ in range(2)]  # sensor_update, machine_status
    assert [e["type"] for e in before] == ["sensor_update", "machine_status"]

    with private_redis.client() as redis:
        redis.config_resetstat()
    private_redis.freeze()
    try:
        answers = await asyncio.gather(*(tenant.ingest([_reading(machine_id, float(v))]) for v in range(2, 12)))
        assert [(a.status_code, a.json()["accepted"]) for a in answers] == [(202, 1)] * 10
        told = await next_event(ws)
        assert told["type"] == "resync_required"
        assert "event_id" not in told  # this process's own notice, sent at once
        assert await _stored_values(tenant, machine_id) == [float(v) for v in range(1, 12)]
    finally:
        private_redis.thaw()

    # Redis answers again: the bus notices by itself and writes the gap into the tenant's stream.
    marker = await next_event(ws)
    assert marker["type"] == "resync_required", marker
    assert "event_id" in marker
    with private_redis.client() as redis:
        scripts = redis.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    # The batch that was waiting when Redis froze (refused: it came too late) and the gap marker (tried again
    # if Redis was slow to wake): fewer than the ten batches, which would each have waited on the hung Redis.
    assert scripts < 10, scripts

    await tenant.ingest([_reading(machine_id, 99.0)])
    # Tenant events are ordered: had a batch given up on landed late, it would come before this one.
    assert (await next_event(ws))["value"] == 99.0
    # A client that left before the outage and resumes now is told too, by the marker in the stream.
    resumed = await _open(running, _resume(tenant, before[-1]["event_id"]))
    replayed = [await next_event(resumed) for _ in range(2)]
    assert [(e["type"], e.get("value")) for e in replayed] == [("resync_required", None), ("sensor_update", 99.0)]
    await resumed.close()
    await ws.close()


async def _ingest_until_streamed(tenant: Tenant, machine_id: str, ws: ClientConnection) -> None:
    """Ingest one reading after another until one reaches the socket (retrying bounds no outcome: a slow
    delivery only means one more reading)."""
    async with asyncio.timeout(EVENT_TIMEOUT):
        for value in itertools.count(2):
            await tenant.ingest([_reading(machine_id, float(value))])
            with contextlib.suppress(AssertionError):  # none within the second: ingest one more
                await next_event(ws, only="sensor_update", timeout=1.0)
                return


async def test_resume_from_before_redis_lost_its_data_asks_for_resync(
    server_factory: ServerFactory, tenant_factory: Any, private_redis: PrivateRedis
) -> None:
    running = server_factory(bus_url=private_redis.url, ws_heartbeat_interval=30.0)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()
    ws = await _open(running, tenant.access_token)
    await tenant.ingest([_reading(machine_id, 1.0)])
    last_seen = [await next_event(ws) for _ in range(2)][-1]["event_id"]
    await ws.close()

    watcher = await _open(running, tenant.access_token)
    private_redis.restart()  # no persistence: the tenant's stream is gone
    async with asyncio.timeout(EVENT_TIMEOUT):
        while (await next_event(watcher)).get("reason") != "event bus reconnected":
            pass
    # Live events flow again, into a new stream (the first batch after the restart may be lost on the way).
    await _ingest_until_streamed(tenant, machine_id, watcher)
    await watcher.close()

    resumed = await _open(running, _resume(tenant, last_seen))
    # Not the newer reading alone: the events between `last_seen` and the restart are lost, and the client
    # must know it.
    told = await next_event(resumed)
    assert told["type"] == "resync_required", told
    await tenant.ingest([_reading(machine_id, 99.0)])
    assert (await next_event(resumed, only="sensor_update"))["value"] == 99.0
    await resumed.close()


async def test_a_failed_publish_resyncs_only_that_tenants_sockets(
    server_factory: ServerFactory, tenant_factory: Any, shared_redis: SharedRedis
) -> None:
    running = server_factory(bus_url=shared_redis.url, bus_prefix=shared_redis.prefix, ws_heartbeat_interval=30.0)
    hit: Tenant = await tenant_factory(running)
    spared: Tenant = await tenant_factory(running)
    hit_machine, spared_machine = await hit.add_machine(), await spared.add_machine()
    hit_ws = await _open(running, hit.access_token)
    spared_ws = await _open(running, spared.access_token)

    # Keys of the wrong type: Redis refuses every publish of this tenant (and of no other).
    with shared_redis.client() as redis:
        redis.set(f"{shared_redis.prefix}:stream:{hit.tenant_id}", "not a stream")
        redis.hset(f"{shared_redis.prefix}:stream-epoch:{hit.tenant_id}", "not", "an epoch")
    assert (await hit.ingest([_reading(hit_machine, 1.0)])).json()["accepted"] == 1
    assert (await next_event(hit_ws))["type"] == "resync_required"
    await spared.ingest([_reading(spared_machine, 2.0)])
    assert (await next_event(spared_ws))["type"] == "sensor_update"  # no resync_required before it

    with shared_redis.client() as redis:
        redis.delete(
            f"{shared_redis.prefix}:stream:{hit.tenant_id}", f"{shared_redis.prefix}:stream-epoch:{hit.tenant_id}"
        )
    await hit.ingest([_reading(hit_machine, 3.0)])
    # The stream records the gap before the tenant's next events, for sockets on every process.
    marker, update = await next_event(hit_ws), await next_event(hit_ws)
    assert (marker["type"], "event_id" in marker) == ("resync_required", True)
    assert (update["type"], update["value"]) == ("sensor_update", 3.0)
    await hit_ws.close()
    await spared_ws.close()


async def test_a_resume_while_redis_is_down_is_told_to_resync_and_stays_live(
    server_factory: ServerFactory, tenant_factory: Any, private_redis: PrivateRedis
) -> None:
    """The history a resume needs cannot be read: the socket is told to resync (its client reloads over REST)
    and stays subscribed."""
    running = server_factory(bus_url=private_redis.url, ws_heartbeat_interval=30.0)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()
    ws = await _open(running, tenant.access_token)
    await tenant.ingest([_reading(machine_id, 1.0)])
    last_seen = [await next_event(ws) for _ in range(2)][-1]["event_id"]
    await ws.close()

    private_redis.kill()
    resumed = await _open(running, _resume(tenant, last_seen))
    told = await next_event(resumed)
    assert told["type"] == "resync_required", told

    private_redis.start()
    # Still subscribed: once the bus is back, live events reach this same socket.
    await _ingest_until_streamed(tenant, machine_id, resumed)
    await resumed.close()
