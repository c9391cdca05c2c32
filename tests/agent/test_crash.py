"""SIGKILL the agent process (no chance to clean up) and start it again: nothing lost, nothing stored twice."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from pathlib import Path

import aiomqtt

from tests.agent.conftest import (
    AGENT,
    agent_env,
    buffered_count,
    create_api_key,
    run_agent_once,
    stored_readings,
    wait_until,
    write_config,
    write_csv,
)
from tests.conftest import RunningServer, Tenant, start_server


def _start(config: Path, log: Path, processes: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    with log.open("a") as stderr:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [*AGENT, "--config", str(config)], env=agent_env(), stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
    processes.append(process)
    return process


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


async def test_killed_with_a_full_buffer_then_restarted_delivers_everything_once(
    server: RunningServer, tenant: Tenant, tmp_path: Path, agent_processes: list[subprocess.Popen[str]]
) -> None:
    machine = await tenant.add_machine()
    ids = write_csv(tmp_path / "replay.csv", machine, 2000)
    key = await create_api_key(tenant)
    config = write_config(tmp_path, server.base_url, key, '[[sources]]\ntype = "csv"\npath = "replay.csv"\n')
    server.stop()  # the agent must buffer everything
    restarted: RunningServer | None = None
    try:
        agent = _start(config, tmp_path / "agent.log", agent_processes)
        wait_until(lambda: buffered_count(tmp_path / "buffer.db") == 2000, "all 2000 readings are buffered")
        _kill(agent)

        restarted = start_server(server.settings, server.port)
        drain = run_agent_once(write_config(tmp_path, server.base_url, key, name="drain.toml"))
        assert drain.returncode == 0, drain.stderr
        assert json.loads(drain.stdout)["sent"] == 2000
        stored = stored_readings(server)
        assert sorted(reading_id for reading_id, _ in stored) == sorted(ids)
    finally:
        if restarted is not None:
            restarted.stop()


async def test_killed_while_sending_then_restarted_stores_each_reading_once(
    server: RunningServer, tenant: Tenant, tmp_path: Path, agent_processes: list[subprocess.Popen[str]]
) -> None:
    """Batches the server stored but the agent never saw answered are resent; the server counts them as duplicates."""
    machine = await tenant.add_machine()
    ids = write_csv(tmp_path / "replay.csv", machine, 3000)
    source = '[[sources]]\ntype = "csv"\npath = "replay.csv"\nrate = 1500\n'
    config = write_config(tmp_path, server.base_url, await create_api_key(tenant), source, uplink="batch_size = 25")
    agent = _start(config, tmp_path / "agent.log", agent_processes)
    wait_until(lambda: len(stored_readings(server)) >= 500, "the agent is half-way")
    _kill(agent)
    assert len(stored_readings(server)) < 3000, "the kill came too late to interrupt anything"

    again = run_agent_once(config)  # the replay starts over; the server recognises what it has
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["duplicates"] >= 500
    assert summary["sent"] + summary["duplicates"] == 3000
    stored = stored_readings(server)
    assert sorted(reading_id for reading_id, _ in stored) == sorted(ids)


async def test_mqtt_messages_published_while_the_agent_is_dead_arrive_after_restart(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    mqtt_broker: tuple[str, int],
    topic_prefix: str,
    agent_processes: list[subprocess.Popen[str]],
) -> None:
    """With a client_id the broker keeps the agent's session and queues QoS 1 messages until it is back."""
    machine = await tenant.add_machine()
    body = (
        f'[[sources]]\ntype = "mqtt"\nhost = "{mqtt_broker[0]}"\nport = {mqtt_broker[1]}\n'
        f'client_id = "haltless-test-{uuid.uuid4().hex}"\n'
        f'[[sources.subscriptions]]\ntopic = "{topic_prefix}/{{machine}}/{{metric}}"\n'
    )
    config = write_config(tmp_path, server.base_url, await create_api_key(tenant), body)
    log = tmp_path / "agent.log"
    topic = f"{topic_prefix}/{machine}/temperature"

    def subscriptions() -> int:
        return log.read_text().count("subscribed at") if log.exists() else 0

    async with aiomqtt.Client(*mqtt_broker) as publisher:

        async def publish(values: range) -> None:
            for value in values:
                await publisher.publish(topic, str(value).encode(), qos=1)

        agent = _start(config, log, agent_processes)
        wait_until(lambda: subscriptions() == 1, "the agent subscribed")
        await publish(range(20))
        wait_until(lambda: len(stored_readings(server)) == 20, "the first readings are stored")
        _kill(agent)

        await publish(range(20, 40))
        _start(config, log, agent_processes)
        wait_until(lambda: subscriptions() == 2, "the restarted agent subscribed")
        await publish(range(40, 60))
        wait_until(lambda: len(stored_readings(server)) >= 60, "all readings are stored")

    stored = stored_readings(server)
    assert sorted(value for _, value in stored) == [float(v) for v in range(60)]
    assert len({reading_id for reading_id, _ in stored}) == 60
