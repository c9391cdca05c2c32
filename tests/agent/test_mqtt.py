"""MQTT through the agent into the server, with the real Mosquitto broker and a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
import websockets

from haltless.agent.config import load_config
from haltless.agent.runner import Agent
from haltless.agent.sources.mqtt import MqttSource
from tests.agent.conftest import create_api_key, stored_readings, write_config
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, next_event, start_server


async def _wait_for(condition: object, what: str, seconds: float = 60.0) -> None:
    """Poll a condition that has no event to await (another thread's database) with a deadline."""
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def _start_agent(config: Path) -> tuple[Agent, asyncio.Task[None]]:
    agent = Agent(load_config(config, {}))
    task = asyncio.create_task(agent.run_forever())
    source = agent.sources[0]
    assert isinstance(source, MqttSource)
    subscribed = asyncio.create_task(source.subscribed.wait())
    done, _ = await asyncio.wait({task, subscribed}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert subscribed in done, "the agent did not subscribe in time"
    return agent, task


@pytest.fixture
async def stop_agents() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _mqtt_config(broker: tuple[str, int], topic: str, extra: str = "", client_id: str | None = None) -> str:
    identity = f'client_id = "{client_id}"\n' if client_id else ""
    return (
        f'[[sources]]\ntype = "mqtt"\nhost = "{broker[0]}"\nport = {broker[1]}\n{identity}'
        f'[[sources.subscriptions]]\ntopic = "{topic}"\nunit = "celsius"\n{extra}'
    )


async def test_published_readings_reach_the_dashboard_as_sensor_updates(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    mqtt_broker: tuple[str, int],
    topic_prefix: str,
    stop_agents: list[asyncio.Task[None]],
) -> None:
    press = await tenant.add_machine("Press 1")
    pump = await tenant.add_machine("Pump 1")
    body = f'[machines]\npump-1 = "{pump}"\n' + _mqtt_config(mqtt_broker, f"{topic_prefix}/{{machine}}/{{metric}}")
    agent, task = await _start_agent(write_config(tmp_path, server.base_url, await create_api_key(tenant), body))
    stop_agents.append(task)

    async with websockets.connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        await ws.send(tenant.access_token)
        assert (await next_event(ws, skip_heartbeats=False))["type"] == "heartbeat"
        async with aiomqtt.Client(*mqtt_broker) as publisher:
            await publisher.publish(f"{topic_prefix}/{press}/temperature", b'{"value": 71.5}', qos=1)
            await publisher.publish(f"{topic_prefix}/pump-1/vibration", b'{"value": 2.5, "unit": "mm_per_s"}', qos=1)
            await publisher.publish(f"{topic_prefix}/pump-1/temperature", b"40.25", qos=1)
            await publisher.publish(f"{topic_prefix}/pump-1/pressure", b"hot", qos=1)  # skipped: not a number
            await publisher.publish(f"{topic_prefix}/unknown/temperature", b"1", qos=1)  # skipped: no such machine
            await publisher.publish(f"{topic_prefix}/pump-1/current", b" +11.5\n", qos=1)
        events: list[dict[str, object]] = []
        while len(events) < 4:
            event = await next_event(ws)
            if event["type"] == "sensor_update":  # machine_status changes come along; not what this test is about
                events.append(event)

    assert {(e["type"], e["machine_id"], e["metric_name"], e["value"], e["unit"]) for e in events} == {
        ("sensor_update", press, "temperature", 71.5, "celsius"),
        ("sensor_update", pump, "vibration", 2.5, "mm_per_s"),
        ("sensor_update", pump, "temperature", 40.25, "celsius"),
        ("sensor_update", pump, "current", 11.5, "celsius"),
    }
    assert agent.stats.skipped == 2


async def test_server_outage_loses_and_duplicates_nothing(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    mqtt_broker: tuple[str, int],
    topic_prefix: str,
    stop_agents: list[asyncio.Task[None]],
) -> None:
    """Publish while the server is up, down, and up again: every reading is stored exactly once."""
    machine = await tenant.add_machine()
    config = write_config(
        tmp_path,
        server.base_url,
        await create_api_key(tenant),
        _mqtt_config(mqtt_broker, f"{topic_prefix}/{{machine}}/{{metric}}"),
        uplink="batch_size = 7",
    )
    agent, task = await _start_agent(config)
    stop_agents.append(task)
    topic = f"{topic_prefix}/{machine}/temperature"
    restarted: RunningServer | None = None

    async with aiomqtt.Client(*mqtt_broker) as publisher:

        async def publish(values: range) -> None:
            for value in values:
                await publisher.publish(topic, f'{{"value": {value}}}'.encode(), qos=1)

        try:
            await publish(range(30))
            await _wait_for(lambda: len(stored_readings(server)) == 30, "the first 30 readings are stored")

            await asyncio.to_thread(server.stop)
            await publish(range(30, 80))
            await _wait_for(lambda: agent.stats.captured == 80, "the agent buffered the readings of the outage")
            await _wait_for(lambda: agent.stats.last_error is not None, "the agent noticed the outage")
            assert agent.buffer is not None
            assert len(agent.buffer) == 50

            restarted = await asyncio.to_thread(start_server, server.settings, server.port)
            await publish(range(80, 100))
            await _wait_for(lambda: len(stored_readings(server)) >= 100, "all 100 readings are stored")
            await _wait_for(lambda: agent.buffer is not None and len(agent.buffer) == 0, "the buffer is empty")
        finally:
            if restarted is not None:
                await asyncio.to_thread(restarted.stop)

    stored = stored_readings(server)
    assert sorted(value for _, value in stored) == [float(v) for v in range(100)]
    assert len({reading_id for reading_id, _ in stored}) == 100
    # The server stores a batch before the agent has its answer and counts it: wait for the count.
    await _wait_for(lambda: agent.stats.sent == 100, "the agent counted 100 readings sent")


async def test_a_timestamped_message_delivered_twice_is_stored_once(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    mqtt_broker: tuple[str, int],
    topic_prefix: str,
    stop_agents: list[asyncio.Task[None]],
) -> None:
    """A broker redelivers a message the agent buffered but had not acknowledged when it stopped: the same
    bytes on the same topic. With its own time in the payload it is the same reading, stored once; without
    one, equal payloads are equal values measured at different times, and each is stored."""
    machine = await tenant.add_machine()
    config = write_config(
        tmp_path,
        server.base_url,
        await create_api_key(tenant),
        _mqtt_config(mqtt_broker, f"{topic_prefix}/{{machine}}/{{metric}}"),
    )
    agent, task = await _start_agent(config)
    stop_agents.append(task)
    topic = f"{topic_prefix}/{machine}/temperature"
    stamped = b'{"value": 70.5, "timestamp": "2026-11-28T10:00:00Z"}'
    async with aiomqtt.Client(*mqtt_broker) as publisher:
        await publisher.publish(topic, stamped, qos=1)
        await _wait_for(lambda: len(stored_readings(server)) == 1, "the first delivery is stored")
        await publisher.publish(topic, stamped, qos=1)  # delivered again, long after the first was sent
        await _wait_for(lambda: agent.stats.duplicates == 1, "the server recognised the repeat")
        for payload in (b'{"value": 70.5, "timestamp": "2026-11-28T10:00:01Z"}', b"12.5", b"12.5"):
            await publisher.publish(topic, payload, qos=1)
        await _wait_for(lambda: len(stored_readings(server)) == 4, "the other three are stored")
    stored = stored_readings(server)
    assert sorted(value for _, value in stored) == [12.5, 12.5, 70.5, 70.5]
    assert len({reading_id for reading_id, _ in stored}) == 4
    # The server stores a batch before the agent has its answer and counts it: wait for the count.
    await _wait_for(lambda: agent.stats.sent == 4, "the agent counted four readings sent")
