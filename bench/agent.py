"""Edge agent with industrial sources: OPC UA change → dashboard latency, and Modbus polling at 10 Hz.

Three processes, as in production: our server (`bench.serve_ours`, pinned to CPU 0), the agent
(`haltless agent --config`, pinned to CPU 1) and this orchestrator, which plays the PLC (an asyncua server or
a pymodbus server, in its own event loop) and the dashboard (one WebSocket).

- **A1 OPC UA latency.** 100 changes of one variable, one every 100 ms, each stamped with its write time
  as source timestamp; latency is the time from the write to its `sensor_update` on the socket. The
  baseline is the same change POSTed straight to `/api/v1/sensor-data` by the orchestrator: the server's
  own path, which the agent's path (subscription, buffer commit with fsync, uplink batch) adds to.
  Run with the agent's defaults and with short intervals.
- **A2 Modbus polling.** 100 holding registers polled at 10 Hz for 60 s. Polls are counted at the device
  (requests it answered ÷ requests per poll), readings/s at the server (rows stored in the window). The
  baseline is the same 100 values at every other address, so the planner cannot join them: one request
  per value instead of one per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from asyncua import ua
from asyncua.server.server import Server as OpcUaServer
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from bench import fanout
from bench.ports import free_port

CHANGES = 100
CHANGE_EVERY = 0.1  # seconds
POLL_HZ = 10
POLL_SECONDS = 60.0
REGISTERS = 100
DEADLINE = 60.0
AGENT_CPU = fanout.CLIENT_CPU


@contextmanager
def _agent(config: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = config.with_suffix(".log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "haltless", "agent", "--config", str(config)], stdout=log, stderr=log
    )
    fanout.pin(process.pid, AGENT_CPU)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _config(tmp: Path, name: str, server: fanout.Server, api_key: str, uplink: str, source: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(
        f'server_url = "http://127.0.0.1:{server.http_port}"\napi_key = "{api_key}"\nstatus_interval = 5\n'
        f'[buffer]\npath = "{name}.db"\n[uplink]\n{uplink}\n{source}'
    )
    return path


async def _plc(port: int) -> tuple[OpcUaServer, Any]:
    server = OpcUaServer()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    index = await server.register_namespace("urn:haltless:bench-plant")
    press = await server.nodes.objects.add_object(index, "Press1")
    node = await press.add_variable(ua.NodeId(ua.String("Press1.Temperature"), ua.Int16(index)), "Temperature", 0.0)
    await server.start()
    return server, node


async def _opcua_latency(
    server: fanout.Server, api_key: str, machine_id: str, tmp: Path, name: str, uplink: str, source: str | None
) -> list[float]:
    """Seconds from each write to its sensor_update; through the agent, or POSTed directly when `source` is None."""
    port = free_port()
    plc, node = await _plc(port)
    written: dict[float, float] = {}
    arrived: dict[float, float] = {}
    try:
        async with websockets.connect(f"ws://127.0.0.1:{server.ws_port}{fanout.WS_PATH}") as ws:
            await ws.send(server.groups[0]["token"])
            await ws.recv()  # the first heartbeat: the socket is subscribed

            async def receive() -> None:
                async for raw in ws:
                    event = orjson.loads(raw)
                    if event.get("type") == "sensor_update" and event.get("machine_id") == machine_id:
                        arrived.setdefault(event["value"], time.time())

            receiver = asyncio.create_task(receive())
            http = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{server.http_port}", headers={"Authorization": f"Bearer {api_key}"}
            )
            try:
                with contextlib.ExitStack() as stack:
                    if source is not None:
                        stack.enter_context(
                            _agent(_config(tmp, name, server, api_key, uplink, source.format(port=port)))
                        )
                        await _until(lambda: 0.0 in arrived, "the agent subscribed")  # the initial value came through
                    await _changes(node, http if source is None else None, machine_id, written)
                    await _until(lambda: set(written) <= set(arrived), "every change reached the socket")
            finally:
                receiver.cancel()
                await http.aclose()
    finally:
        await plc.stop()
    return [arrived[value] - written[value] for value in written]


async def _changes(node: Any, http: httpx.AsyncClient | None, machine_id: str, written: dict[float, float]) -> None:
    """Write the changes on the PLC (and POST each directly when `http` is given: the baseline)."""
    for step in range(CHANGES):
        value = 1000.0 + step
        now = time.time()
        written[value] = now
        stamp = ua.DateTime.fromtimestamp(now, datetime.UTC)
        await node.write_value(ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=stamp))
        if http is not None:
            reading = {"machine_id": machine_id, "metric_name": "temperature", "value": value}
            reading["timestamp"] = stamp.isoformat()
            (await http.post(fanout.POST_PATH, json={"readings": [reading]})).raise_for_status()
        await asyncio.sleep(CHANGE_EVERY)


async def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


async def _modbus_polling(
    server: fanout.Server, database: Path, api_key: str, machine_id: str, tmp: Path, name: str, stride: int
) -> dict[str, float]:
    """Polls done, polls missed and readings/s over POLL_SECONDS with REGISTERS values `stride` apart."""
    port = free_port()
    requests = 0

    def count(sending: bool, pdu: Any) -> Any:
        nonlocal requests
        if not sending:
            requests += 1
        return pdu

    holding = SimData(0, values=list(range(REGISTERS * stride)), datatype=DataType.REGISTERS)
    empty = [SimData(0, values=[False], datatype=DataType.BITS)]
    device = SimDevice(id=1, simdata=(empty, empty, [holding], [SimData(0, values=[0], datatype=DataType.REGISTERS)]))
    modbus = ModbusTcpServer(device, address=("127.0.0.1", port), trace_pdu=count)
    await modbus.serve_forever(background=True)
    registers = "".join(
        f'[[sources.registers]]\naddress = {i * stride}\nmachine = "{machine_id}"\nmetric = "r{i}"\n'
        for i in range(REGISTERS)
    )
    source = (
        f'[[sources]]\ntype = "modbus"\nname = "{name}"\nhost = "127.0.0.1"\nport = {port}\n'
        f"poll_interval = {1 / POLL_HZ}\n{registers}"
    )
    per_poll = 1 if stride == 1 else REGISTERS
    try:
        with _agent(_config(tmp, name, server, api_key, "send_interval = 0.5", source)) as agent:
            await _until(lambda: requests >= 10 * per_poll, "the agent is polling")
            await asyncio.sleep(2.0)  # past the start: the buffer and the uplink are in their steady state
            requests0, cpu0, started = requests, fanout.proc_stats(agent.pid)[0], time.time()
            await asyncio.sleep(POLL_SECONDS)
            requests1, cpu1, ended = requests, fanout.proc_stats(agent.pid)[0], time.time()
            await asyncio.sleep(3.0)  # the uplink delivers what the window captured
    finally:
        await modbus.shutdown()  # type: ignore[no-untyped-call]
    elapsed = ended - started
    polls = (requests1 - requests0) / per_poll
    # Readings measured in the window that reached the server: what the dashboards and the history got.
    stored = await asyncio.to_thread(_rows, database, int(started * 1e6), int(ended * 1e6))
    return {
        "polls": polls,
        "missed": max(0.0, elapsed * POLL_HZ - polls),
        "readings_per_s": stored / elapsed,
        "requests_per_poll": per_poll,
        "agent_cpu": (cpu1 - cpu0) / elapsed,
    }


def _rows(database: Path, since_us: int, until_us: int) -> int:
    """Readings the server stored whose measurement time is in [since, until)."""
    with sqlite3.connect(database, timeout=30) as db:
        query = "SELECT COUNT(*) FROM readings WHERE ts >= ? AND ts < ?"
        return int(db.execute(query, (since_us, until_us)).fetchone()[0])


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _setup(server: fanout.Server) -> tuple[str, str]:
    token = server.groups[0]["token"]
    machine_id = orjson.loads(server.groups[0]["body"])["readings"][0]["machine_id"]
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as http:
        created = http.post(
            "/api/v1/api-keys", json={"name": "bench agent"}, headers={"Authorization": f"Bearer {token}"}
        )
        created.raise_for_status()
        return created.json()["key"], machine_id


def run() -> str:
    """Measure both cases; returns the markdown section."""
    for library in ("asyncua", "pymodbus"):  # the PLC and the device would log each client's coming and going
        logging.getLogger(library).setLevel(logging.CRITICAL)
    load_before = os.getloadavg()
    opcua_source = (
        '[[sources]]\ntype = "opcua"\nendpoint = "opc.tcp://127.0.0.1:{port}/"\n{intervals}'
        '[[sources.nodes]]\nnode_id = "ns=2;s=Press1.Temperature"\nmachine = "MACHINE"\nmetric = "temperature"\n'
    )
    with tempfile.TemporaryDirectory(prefix="haltless-bench-agent-") as tmp_name:
        tmp = Path(tmp_name)
        server = fanout.start_ours(tmp / "ours", tenants=1)
        database = tmp / "ours" / "haltless.db"
        try:
            api_key, machine_id = _setup(server)
            source = opcua_source.replace("MACHINE", machine_id)
            latency = {
                "direct POST (baseline)": asyncio.run(
                    _opcua_latency(server, api_key, machine_id, tmp, "direct", "", None)
                ),
                "agent, defaults (publishing 0.5 s, send 1 s)": asyncio.run(
                    _opcua_latency(server, api_key, machine_id, tmp, "defaults", "", source.replace("{intervals}", ""))
                ),
                "agent, publishing 0.05 s, send 0.05 s": asyncio.run(
                    _opcua_latency(
                        server,
                        api_key,
                        machine_id,
                        tmp,
                        "short",
                        "send_interval = 0.05",
                        source.replace("{intervals}", "publishing_interval = 0.05\n"),
                    )
                ),
            }
            polling = {
                "contiguous (1 request per poll)": asyncio.run(
                    _modbus_polling(server, database, api_key, machine_id, tmp, "contiguous", 1)
                ),
                "every other address (baseline: 100 requests per poll)": asyncio.run(
                    _modbus_polling(server, database, api_key, machine_id, tmp, "scattered", 2)
                ),
            }
        finally:
            server.stop()
    base = latency["direct POST (baseline)"]
    base_p50, base_p99 = _percentile(base, 0.5), _percentile(base, 0.99)
    lines = [
        f"Load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; server on CPU 0, "
        "agent on CPU 1 with the orchestrator (PLC and dashboard socket).",
        "",
        f"A1: {CHANGES} OPC UA value changes, one every {CHANGE_EVERY * 1000:.0f} ms, write → `sensor_update`.",
        "",
        "| path | p50 (ms) | p99 (ms) | max (ms) | p50 ÷ direct | p99 ÷ direct |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, values in latency.items():
        p50, p99 = _percentile(values, 0.5), _percentile(values, 0.99)
        lines.append(
            f"| {name} | {p50 * 1000:.0f} | {p99 * 1000:.0f} | {max(values) * 1000:.0f} "
            f"| {p50 / base_p50:.1f} | {p99 / base_p99:.1f} |"
        )
    lines += [
        "",
        f"A2: {REGISTERS} holding registers (uint16) polled at {POLL_HZ} Hz for {POLL_SECONDS:.0f} s.",
        "",
        "| register map | requests per poll | polls | polls missed | readings/s stored | agent CPU | CPU ÷ baseline |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    baseline_cpu = polling["every other address (baseline: 100 requests per poll)"]["agent_cpu"]
    for name, result in polling.items():
        lines.append(
            f"| {name} | {result['requests_per_poll']:.0f} | {result['polls']:.0f} | {result['missed']:.0f} "
            f"| {result['readings_per_s']:,.0f} | {result['agent_cpu']:.0%} "
            f"| {result['agent_cpu'] / baseline_cpu:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
