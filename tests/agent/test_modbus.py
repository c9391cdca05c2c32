"""Modbus TCP through the agent into the server: a real pymodbus server on loopback, a real Haltless server."""

from __future__ import annotations

import asyncio
import random
import struct
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from haltless.agent.captured import CapturedReading
from haltless.agent.config import ModbusSourceConfig, load_config
from haltless.agent.runner import Agent
from haltless.agent.sources.machines import MachineDirectory
from haltless.agent.sources.modbus import ModbusSource
from haltless.agent.stats import AgentStats
from tests.agent.conftest import agent_env, create_api_key, write_config
from tests.agent.industrial import ModbusTestServer
from tests.agent.test_registers import KNOWN, ORDERS
from tests.conftest import RunningServer, Tenant, free_port, query_database

DEADLINE = 60.0  # seconds; generous, for a loaded 2-core machine


async def _until(condition: object, what: str, seconds: float = DEADLINE) -> None:
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


def _stored_by_metric(server: RunningServer) -> dict[str, list[float]]:
    by_metric: dict[str, list[float]] = {}
    for metric, value in query_database(server.settings, "SELECT metric_name, value FROM readings ORDER BY ts"):
        by_metric.setdefault(metric, []).append(value)
    return by_metric


@pytest.fixture
async def running_agents() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def devices() -> AsyncIterator[list[ModbusTestServer]]:
    started: list[ModbusTestServer] = []
    yield started
    for device in started:
        await device.stop()


async def _start_agent(config: Path, tasks: list[asyncio.Task[None]]) -> tuple[Agent, ModbusSource]:
    agent = Agent(load_config(config, {}))
    task = asyncio.create_task(agent.run_forever())
    tasks.append(task)
    source = agent.sources[0]
    assert isinstance(source, ModbusSource)
    connected = asyncio.create_task(source.connected.wait())
    done, _ = await asyncio.wait({task, connected}, timeout=DEADLINE, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert connected in done, "the agent did not connect in time"
    return agent, source


def _register(address: int, metric: str, extra: str = "", machine: str = "press-1") -> str:
    return f'[[sources.registers]]\naddress = {address}\nmachine = "{machine}"\nmetric = "{metric}"\n{extra}'


async def test_every_type_and_order_is_decoded_and_contiguous_values_take_one_request(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    devices: list[ModbusTestServer],
    running_agents: list[asyncio.Task[None]],
) -> None:
    holding: list[int] = []
    registers = ""
    expected: dict[str, float] = {}
    for data_type, value, *layouts in KNOWN:
        for (word_order, byte_order), words in zip(ORDERS, layouts, strict=True):
            metric = f"{data_type}_{word_order}_{byte_order}"
            extra = f'type = "{data_type}"\nword_order = "{word_order}"\nbyte_order = "{byte_order}"\n'
            registers += _register(len(holding), metric, extra)
            holding += words
            expected[metric] = value
    registers += _register(len(holding), "scaled", "scale = 0.1\noffset = -40.0\n")  # 2150 → 175.0
    holding.append(2150)
    expected["scaled"] = pytest.approx(175.0)  # type: ignore[assignment]
    registers += _register(0, "meter_power", 'table = "input"\ntype = "float32"\nunit = "kW"\n')
    expected["meter_power"] = struct.unpack(">f", bytes.fromhex("42f6e979"))[0]
    registers += _register(1, "door_open", 'table = "coil"\n') + _register(2, "guard_closed", 'table = "coil"\n')
    expected |= {"door_open": 0.0, "guard_closed": 1.0}
    registers += _register(1, "e_stop", 'table = "discrete_input"\n')
    expected["e_stop"] = 1.0
    registers += _register(5000, "not_on_the_device")  # the device answers "illegal data address"

    device = ModbusTestServer(
        free_port(), holding, input=[0x42F6, 0xE979], coils=[False, False, True], discrete_inputs=[False, True]
    )
    await device.start()
    devices.append(device)
    press = await tenant.add_machine()
    body = (
        f'[machines]\npress-1 = "{press}"\n'
        f'[[sources]]\ntype = "modbus"\nname = "meter"\nhost = "127.0.0.1"\nport = {device.port}\n'
        f"poll_interval = 0.1\ntimeout = 5.0\n{registers}"
    )
    agent, source = await _start_agent(
        write_config(tmp_path, server.base_url, await create_api_key(tenant), body), running_agents
    )
    await _until(lambda: set(expected) <= set(_stored_by_metric(server)), "every value is stored")

    stored = _stored_by_metric(server)
    assert {metric: values[0] for metric, values in stored.items()} == expected
    assert "not_on_the_device" not in stored
    assert agent.stats.skipped >= 1
    # Per poll: the 49 holding registers in one request, then address 5000, input, coils, discrete inputs.
    polls, requests = source.polls, device.requests
    assert 5 * polls <= requests <= 5 * (polls + 1)


async def test_polling_resumes_when_the_device_comes_back(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    devices: list[ModbusTestServer],
    running_agents: list[asyncio.Task[None]],
) -> None:
    port = free_port()
    first = ModbusTestServer(port, [7])
    await first.start()
    devices.append(first)
    press = await tenant.add_machine()
    body = (
        f'[[sources]]\ntype = "modbus"\nname = "meter"\nhost = "127.0.0.1"\nport = {port}\n'
        f"poll_interval = 0.05\ntimeout = 1.0\n{_register(0, 'level', machine=press)}"
    )
    agent, source = await _start_agent(
        write_config(tmp_path, server.base_url, await create_api_key(tenant), body), running_agents
    )
    await _until(lambda: 7.0 in _stored_by_metric(server).get("level", []), "a value is stored")

    await first.stop()
    await _until(lambda: not source.connected.is_set(), "the agent noticed the device is gone")
    second = ModbusTestServer(port, [8])
    await second.start()
    devices.append(second)
    await _until(lambda: 8.0 in _stored_by_metric(server).get("level", []), "polling resumed")

    assert set(_stored_by_metric(server)["level"]) == {7.0, 8.0}
    assert agent.stats.last_error is not None and agent.stats.last_error.startswith("meter: ")


async def test_probe_reads_one_value_and_prints_it(devices: list[ModbusTestServer]) -> None:
    device = ModbusTestServer(free_port(), [0] * 100 + [0x42F6, 0xE979])
    await device.start()
    devices.append(device)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "haltless",
        "agent",
        "probe",
        f"modbus://127.0.0.1:{device.port}",
        "--unit",
        "1",
        "--address",
        "100",
        "--type",
        "float32",
        env=agent_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode() == "123.456001282\n"
    assert "holding 100..101 float32 (word order big, byte order big): 0x42F6 0xE979" in stderr.decode()


async def test_the_source_stops_when_cancelled_whatever_it_awaits(devices: list[ModbusTestServer]) -> None:
    """pymodbus on Python 3.11 can drop a cancellation that meets an answer; the source must stop anyway."""
    device = ModbusTestServer(free_port(), [1, 2])
    await device.start()
    devices.append(device)
    config = ModbusSourceConfig.model_validate(
        {
            "type": "modbus",
            "host": "127.0.0.1",
            "port": device.port,
            "poll_interval": 0.001,
            "registers": [{"address": 0, "machine": "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f", "metric": "m"}],
        }
    )

    async def emit(readings: Sequence[CapturedReading]) -> None:
        pass

    for attempt in range(100):
        source = ModbusSource(config, MachineDirectory({}), AgentStats())
        task = asyncio.create_task(source.run(emit))
        await source.connected.wait()
        await asyncio.sleep(random.uniform(0, 0.005))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=DEADLINE)
        assert task in done, f"attempt {attempt}: the source went on after it was cancelled"


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--address", "500"], 1, "unit 1 answered holding 500 with exception 2 (illegal data address)"),
        (["--address", "0", "--table", "coil", "--type", "float32"], 2, "--type: 'float32' does not fit table 'coil'"),
        (["--address", "65535", "--type", "float32"], 2, "--address: 65535 + 2 registers of float32 ends past"),
    ],
)
async def test_probe_names_what_is_wrong(
    devices: list[ModbusTestServer], arguments: list[str], code: int, message: str
) -> None:
    device = ModbusTestServer(free_port(), [1, 2])
    await device.start()
    devices.append(device)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "haltless",
        "agent",
        "probe",
        f"modbus://127.0.0.1:{device.port}",
        *arguments,
        env=agent_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode == code
    assert message in stderr.decode()
    assert "Traceback" not in stderr.decode()
