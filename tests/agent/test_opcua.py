"""OPC UA through the agent into the server: a real asyncua server on loopback, a real Haltless server."""

from __future__ import annotations

import asyncio
import datetime
import sys
import tomllib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import websockets
from asyncua.ua.status_codes import StatusCodes

from haltless.agent.buffer import BufferUnusable
from haltless.agent.captured import CapturedReading
from haltless.agent.config import OpcUaSourceConfig, load_config
from haltless.agent.runner import Agent
from haltless.agent.sources.machines import MachineDirectory
from haltless.agent.sources.opcua import OpcUaSource
from haltless.agent.stats import AgentStats
from tests.agent.conftest import agent_env, create_api_key, stored_readings, write_config
from tests.agent.industrial import OpcUaSecurity, OpcUaTestServer, make_certificate
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, free_port, next_event

START = datetime.datetime(2026, 11, 28, 10, 0, tzinfo=datetime.UTC)
DEADLINE = 60.0  # seconds; generous, for a loaded 2-core machine
MACHINE = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"


async def _until(condition: object, what: str, seconds: float = DEADLINE) -> None:
    """Poll a condition that has no event to await (another thread's database) with a deadline."""
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def plc() -> AsyncIterator[OpcUaTestServer]:
    server = OpcUaTestServer(free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def running_agents() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _opcua_source(endpoint: str, nodes: str, extra: str = "") -> str:
    return (
        f'[[sources]]\ntype = "opcua"\nname = "press-plc"\nendpoint = "{endpoint}"\n'
        "publishing_interval = 0.05\nqueue_size = 1000\n"
        f"{extra}{nodes}"
    )


def _node(node_id: str, metric: str, unit: str = "", machine: str = "press-1") -> str:
    return f'[[sources.nodes]]\nnode_id = "{node_id}"\nmachine = "{machine}"\nmetric = "{metric}"\nunit = "{unit}"\n'


async def _start_agent(
    config: Path, tasks: list[asyncio.Task[None]], environ: dict[str, str] | None = None
) -> tuple[Agent, OpcUaSource]:
    agent = Agent(load_config(config, environ or {}))
    task = asyncio.create_task(agent.run_forever())
    tasks.append(task)
    source = agent.sources[0]
    assert isinstance(source, OpcUaSource)
    subscribed = asyncio.create_task(source.subscribed.wait())
    done, _ = await asyncio.wait({task, subscribed}, timeout=DEADLINE, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert subscribed in done, "the agent did not subscribe in time"
    return agent, source


async def test_value_changes_reach_the_dashboard_at_their_source_time(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    plc: OpcUaTestServer,
    running_agents: list[asyncio.Task[None]],
) -> None:
    """100 changes of one variable, written as fast as the PLC can: each is one sensor_update, none lost."""
    press = await tenant.add_machine("Press 1")
    body = f'[machines]\npress-1 = "{press}"\n' + _opcua_source(
        plc.endpoint, _node(plc.node_id("Press1.Temperature"), "temperature", "celsius")
    )
    config = write_config(tmp_path, server.base_url, await create_api_key(tenant), body)

    async with websockets.connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        await ws.send(tenant.access_token)
        assert (await next_event(ws, skip_heartbeats=False))["type"] == "heartbeat"
        agent, _ = await _start_agent(config, running_agents)
        # The subscription starts with the value the node holds; wait for it before writing, or a loaded
        # machine's first notification may already carry the first change instead.
        initial = await next_event(ws, only="sensor_update", timeout=DEADLINE)
        assert initial["value"] == 20.0, initial
        changes = [1000.0 + step for step in range(100)]
        for step, value in enumerate(changes):
            await plc.write("Press1.Temperature", value, START + datetime.timedelta(milliseconds=step))
        seen: dict[float, dict[str, object]] = {20.0: initial}
        while not set(changes) <= set(seen):
            event = await next_event(ws, only="sensor_update", timeout=DEADLINE)
            assert isinstance(event["value"], float)
            assert event["value"] not in seen, f"{event} arrived twice"
            seen[event["value"]] = event

    assert set(seen) == {20.0, *changes}  # the value the subscription starts with, then the changes
    assert {(e["machine_id"], e["metric_name"], e["unit"]) for e in seen.values()} == {
        (press, "temperature", "celsius")
    }
    assert seen[1042.0]["timestamp"] == "2026-11-28T10:00:00.042Z"
    await _until(lambda: agent.stats.sent == 101, "the agent counted 101 readings sent")
    assert len(stored_readings(server)) == 101


async def test_bad_quality_is_skipped_and_counted(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    plc: OpcUaTestServer,
    running_agents: list[asyncio.Task[None]],
) -> None:
    press = await tenant.add_machine()
    nodes = _node(plc.node_id("Press1.Pressure"), "pressure", "bar") + _node(plc.node_id("Press1.Running"), "running")
    body = f'[machines]\npress-1 = "{press}"\n' + _opcua_source(plc.endpoint, nodes)
    agent, _ = await _start_agent(
        write_config(tmp_path, server.base_url, await create_api_key(tenant), body), running_agents
    )
    await plc.write("Press1.Pressure", 2.5, START)
    await plc.write("Press1.Pressure", 99.0, START + datetime.timedelta(seconds=1), StatusCodes.BadSensorFailure)
    await plc.write("Press1.Pressure", 3.5, START + datetime.timedelta(seconds=2))
    await plc.write("Press1.Running", False, START)
    await _until(lambda: len(stored_readings(server)) == 5, "both initial values and three changes are stored")
    assert sorted(value for _, value in stored_readings(server)) == [0.0, 1.0, 1.0, 2.5, 3.5]
    assert agent.stats.skipped == 1


async def test_a_server_restart_loses_and_duplicates_nothing(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    plc: OpcUaTestServer,
    running_agents: list[asyncio.Task[None]],
) -> None:
    """The PLC restarts keeping its last value; the agent subscribes again and the server stores each value once."""
    press = await tenant.add_machine()
    body = f'[machines]\npress-1 = "{press}"\n' + _opcua_source(
        plc.endpoint, _node(plc.node_id("Press1.Temperature"), "temperature")
    )
    agent, source = await _start_agent(
        write_config(tmp_path, server.base_url, await create_api_key(tenant), body), running_agents
    )
    last = None
    for value in range(1, 31):
        last = await plc.write("Press1.Temperature", float(value), START + datetime.timedelta(seconds=value))
    await _until(lambda: len(stored_readings(server)) == 31, "the initial value and 30 changes are stored")

    await plc.stop()
    await _until(lambda: not source.subscribed.is_set(), "the agent noticed the server is gone")
    assert last is not None
    await plc.start({"Press1.Temperature": last})  # same port, same value with the same source time
    await _until(lambda: source.sessions == 2, "the agent subscribed again")
    for value in range(31, 61):
        await plc.write("Press1.Temperature", float(value), START + datetime.timedelta(seconds=value))
    await _until(lambda: len(stored_readings(server)) == 61, "the changes after the restart are stored")
    await _until(lambda: agent.stats.duplicates == 1, "the server recognised the re-sent current value")

    stored = stored_readings(server)
    assert sorted(value for _, value in stored) == sorted([20.0, *map(float, range(1, 61))])
    assert agent.stats.last_error is not None and "press-plc" in agent.stats.last_error


async def test_a_secured_endpoint_works_with_certificates_and_a_password(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    running_agents: list[asyncio.Task[None]],
) -> None:
    for mode in ("SignAndEncrypt", "Sign"):
        security = _security(tmp_path)
        plc = OpcUaTestServer(free_port(), security)
        await plc.start()
        try:
            press = await tenant.add_machine()
            extra = (
                f'security_policy = "Basic256Sha256"\nsecurity_mode = "{mode}"\n'
                'certificate = "agent-cert.der"\nprivate_key = "agent-key.pem"\n'
                'server_certificate = "plc-cert.der"\nusername = "operator"\npassword_env = "PLC_PASSWORD"\n'
            )
            body = f'[machines]\npress-1 = "{press}"\n' + _opcua_source(
                plc.endpoint, _node(plc.node_id("Press1.Temperature"), "temperature"), extra
            )
            config = write_config(tmp_path, server.base_url, await create_api_key(tenant), body, name=f"{mode}.toml")
            agents: list[asyncio.Task[None]] = []
            await _start_agent(config, agents, {"PLC_PASSWORD": "s3cret"})
            running_agents += agents
            await plc.write("Press1.Temperature", 55.5, START)
            await _until(lambda: 55.5 in [v for _, v in stored_readings(server)], f"{mode}: 55.5 is stored")
            agents[0].cancel()
            await asyncio.gather(*agents, return_exceptions=True)
        finally:
            await plc.stop()


def _security(directory: Path) -> OpcUaSecurity:
    return OpcUaSecurity(
        server=make_certificate(directory, "plc", "urn:haltless:test-plant-server", server=True),
        trusted_client=make_certificate(directory, "agent", "urn:haltless:agent-under-test", server=False),
        username="operator",
        password="s3cret",
    )


async def _run_agent(config: Path, seconds: float = DEADLINE) -> tuple[int, str]:
    """`haltless agent --config …` as a service manager runs it, while this loop serves the PLC."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "haltless",
        "agent",
        "--config",
        str(config),
        env=agent_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_wrong_password_stops_the_agent_with_one_clear_line(tmp_path: Path) -> None:
    security = _security(tmp_path)
    plc = OpcUaTestServer(free_port(), security)
    await plc.start()
    try:
        extra = (
            'security_policy = "Basic256Sha256"\ncertificate = "agent-cert.der"\nprivate_key = "agent-key.pem"\n'
            'server_certificate = "plc-cert.der"\nusername = "operator"\npassword = "wrong"\n'
        )
        body = f'[machines]\npress-1 = "{MACHINE}"\n' + _opcua_source(
            plc.endpoint, _node(plc.node_id("Press1.Temperature"), "temperature"), extra
        )
        code, stderr = await _run_agent(write_config(tmp_path, "http://127.0.0.1:9", "hlk_unused", body))
    finally:
        await plc.stop()
    assert code == 1
    assert (
        f"error: press-plc: {plc.endpoint} refused the user 'operator' (BadUserAccessDenied); "
        "check username and password"
    ) in stderr
    assert "Traceback" not in stderr


async def test_unknown_nodes_stop_the_agent_naming_the_key_with_exit_2(tmp_path: Path, plc: OpcUaTestServer) -> None:
    nodes = (
        _node(plc.node_id("Press1.Temperature"), "temperature")
        + _node("ns=2;s=Press1.Nope", "nope")
        + '[[sources.nodes]]\nbrowse_path = "/0:Objects/2:Press1/2:Missing"\nmachine = "press-1"\nmetric = "m"\n'
        + _node("ns=2;s=Press1", "object")
    )
    body = f'[machines]\npress-1 = "{MACHINE}"\n' + _opcua_source(plc.endpoint, nodes)
    code, stderr = await _run_agent(write_config(tmp_path, "http://127.0.0.1:9", "hlk_unused", body))
    assert code == 2
    assert "invalid configuration" in stderr
    assert "sources[0].nodes[1].node_id: the server has no node ns=2;s=Press1.Nope (BadNodeIdUnknown)" in stderr
    assert "sources[0].nodes[2].browse_path: the server has no node at /0:Objects/2:Press1/2:Missing" in stderr
    assert "sources[0].nodes[3].node_id: ns=2;s=Press1 is a(n) Object, not a variable with a value" in stderr
    assert "Traceback" not in stderr


async def test_nodes_by_browse_path(
    server: RunningServer,
    tenant: Tenant,
    tmp_path: Path,
    plc: OpcUaTestServer,
    running_agents: list[asyncio.Task[None]],
) -> None:
    press = await tenant.add_machine()
    nodes = (
        '[[sources.nodes]]\nbrowse_path = "/0:Objects/2:Press1/2:Pressure"\n'
        f'machine = "{press}"\nmetric = "pressure"\nunit = "bar"\ndeadband = 0.5\n'
    )
    await _start_agent(
        write_config(tmp_path, server.base_url, await create_api_key(tenant), _opcua_source(plc.endpoint, nodes)),
        running_agents,
    )
    for step, value in enumerate([1.2, 1.4, 2.0, 2.1, 3.0]):  # 1.2 and 2.1 are within the deadband of the last sent
        await plc.write("Press1.Pressure", value, START + datetime.timedelta(seconds=step))
    await _until(lambda: 3.0 in [v for _, v in stored_readings(server)], "the last change is stored")
    assert sorted(value for _, value in stored_readings(server)) == [1.0, 2.0, 3.0]


async def test_browse_prints_a_source_block_that_loads(tmp_path: Path, plc: OpcUaTestServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "haltless",
        "agent",
        "browse",
        plc.endpoint,
        env=agent_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode == 0, stderr.decode()
    snippet = stdout.decode()
    (source,) = tomllib.loads(snippet)["sources"]
    assert source["type"] == "opcua"
    assert source["endpoint"] == plc.endpoint
    assert source["nodes"] == [
        {"node_id": "ns=2;s=Press1.Temperature", "machine": "Press1", "metric": "temperature", "unit": "°C"},
        {"node_id": "ns=2;s=Press1.Pressure", "machine": "Press1", "metric": "pressure", "unit": "bar"},
        {"node_id": "ns=2;s=Press1.Running", "machine": "Press1", "metric": "running"},
    ]
    config = tmp_path / "agent.toml"
    config.write_text(
        f'server_url = "http://127.0.0.1:8000"\napi_key = "hlk_x"\n[machines]\nPress1 = "{MACHINE}"\n' + snippet
    )
    assert load_config(config, {}).sources[0].type == "opcua"


async def test_a_broken_buffer_stops_the_source_instead_of_reconnecting(plc: OpcUaTestServer) -> None:
    config = OpcUaSourceConfig.model_validate(
        {
            "type": "opcua",
            "endpoint": plc.endpoint,
            "nodes": [{"node_id": plc.node_id("Press1.Temperature"), "machine": MACHINE, "metric": "temperature"}],
        }
    )

    async def emit(readings: Sequence[CapturedReading]) -> None:
        raise BufferUnusable("buffer.db: disk I/O error")

    source = OpcUaSource(config, MachineDirectory({}), AgentStats(), "sources[0]")
    with pytest.raises(BufferUnusable, match="disk I/O error"):
        await asyncio.wait_for(source.run(emit), DEADLINE)  # the value the subscription starts with fails to buffer


async def _haltless(*args: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    """A `haltless …` command line, run while this loop serves the PLC."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "haltless",
        *args,
        env={**agent_env(), **(environ or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_browse_a_secured_server_and_its_refusals(tmp_path: Path) -> None:
    security = _security(tmp_path)
    plc = OpcUaTestServer(free_port(), security)
    await plc.start()
    secured = [
        "--security-policy",
        "Basic256Sha256",
        "--certificate",
        str(security.trusted_client.certificate),
        "--private-key",
        str(security.trusted_client.private_key),
        "--server-certificate",
        str(security.server.certificate),
        "--username",
        "operator",
        "--password-env",
        "PLC_PASSWORD",
    ]
    try:
        code, stdout, stderr = await _haltless(
            "agent", "browse", plc.endpoint, *secured, environ={"PLC_PASSWORD": "s3cret"}
        )
        assert code == 0, stderr
        (source,) = tomllib.loads(stdout)["sources"]
        assert (source["security_mode"], source["username"], source["password_env"]) == (
            "SignAndEncrypt",
            "operator",
            "OPCUA_PASSWORD",
        )
        assert len(source["nodes"]) == 3

        code, _, stderr = await _haltless("agent", "browse", plc.endpoint)
        assert code == 1
        assert "offers no endpoint with security_policy None and security_mode None; it offers " in stderr
        assert "Basic256Sha256/Sign, Basic256Sha256/SignAndEncrypt" in stderr

        other = make_certificate(tmp_path, "impostor", "urn:impostor", server=True)
        impostor = [*secured[:7], str(other.certificate), *secured[8:]]
        code, _, stderr = await _haltless(
            "agent", "browse", plc.endpoint, *impostor, environ={"PLC_PASSWORD": "s3cret"}
        )
        assert code == 1
        assert "is not the one in server_certificate" in stderr

        code, _, stderr = await _haltless("agent", "browse", plc.endpoint, *secured)
        assert code == 2
        assert "--password-env: the environment variable PLC_PASSWORD is not set" in stderr
    finally:
        await plc.stop()
    code, _, stderr = await _haltless("agent", "browse", plc.endpoint)  # nobody listens there any more
    assert code == 1
    assert stderr.startswith(f"error: {plc.endpoint}: ")
    assert "Traceback" not in stderr
