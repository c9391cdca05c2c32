"""`haltless demo`: the server, a demo tenant, and a simulated fleet streaming through the real ingest API."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import httpx
import uvicorn
from rich.console import Console
from rich.markup import escape

from haltless.admin import create_tenant
from haltless.core.timefmt import parse_timestamp, to_micros
from haltless.demo.lead_time import LeadTimes, SeenAlert
from haltless.demo.simulator import SimulatedMachine, build_fleet
from haltless.server.runner import uvicorn_config
from haltless.settings import Settings

DEMO_EMAIL = "demo@haltless.local"
DEMO_PASSWORD = "haltless-demo"
MACHINE_NAMES = (
    "Press",
    "Lathe",
    "Mill",
    "Pump",
    "Compressor",
    "Conveyor",
    "Grinder",
    "Saw",
    "Drill",
    "Robot",
)


def machine_name(index: int) -> str:
    return f"{MACHINE_NAMES[index % len(MACHINE_NAMES)]} {index // len(MACHINE_NAMES) + 1:02d}"


async def _session(base: str, settings: Settings) -> str:
    """Log in as the demo admin, creating the demo tenant the first time."""
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post("/api/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        if response.status_code == 401:
            await create_tenant(settings, name="Demo Plant", email=DEMO_EMAIL, password=DEMO_PASSWORD)
            response = await http.post("/api/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


# What a plant engineer would set up first: a bearing running hot, and vibration rising.
DEMO_RULES: tuple[dict[str, object], ...] = (
    {
        "name": "Bearing running hot",
        "metric_name": "temperature",
        "condition": ">",
        "threshold": 80.0,
        "severity": "warning",
        "hysteresis": 2.0,
    },
    {
        "name": "Bearing overheating",
        "metric_name": "temperature",
        "condition": ">",
        "threshold": 88.0,
        "severity": "critical",
        "hysteresis": 2.0,
        "message": "Temperature exceeded threshold ({value} °C)",
    },
    {
        # Predictive (docs/alerts.md): warns while the bearing is still cool enough to plan the repair.
        "name": "Bearing heading for overheating",
        "metric_name": "temperature",
        "kind": "forecast",
        "condition": ">",
        "threshold": 88.0,
        "horizon_seconds": 180.0,
        "window_readings": 64,
        "severity": "warning",
    },
    {
        "name": "Vibration rising",
        "metric_name": "vibration",
        "condition": ">",
        "threshold": 5.5,
        "severity": "warning",
        "for_seconds": 3.0,
        "hysteresis": 0.3,
    },
    {
        "name": "Vibration critical",
        "metric_name": "vibration",
        "condition": ">",
        "threshold": 7.5,
        "severity": "critical",
        "hysteresis": 0.3,
    },
)


FORECAST_RULE = "Bearing heading for overheating"
CRITICAL_RULE = "Bearing overheating"
# How often the demo looks for new alerts to tell how early the forecast warned.
LEAD_TIME_POLL_SECONDS = 2.0


async def _prepare_rules(http: httpx.AsyncClient) -> LeadTimes:
    """Create the demo rules that are missing; a lead-time tracker of the forecast and critical temperature rules."""
    existing = {rule["name"]: rule["id"] for rule in (await http.get("/api/v1/alert-rules")).raise_for_status().json()}
    for rule in DEMO_RULES:
        if rule["name"] not in existing:
            created = (await http.post("/api/v1/alert-rules", json=rule)).raise_for_status().json()
            existing[str(rule["name"])] = created["id"]
    return LeadTimes({existing[FORECAST_RULE]}, {existing[CRITICAL_RULE]})


async def report_lead_times(
    base: str, settings: Settings, tracker: LeadTimes, names: dict[str, str], console: Console
) -> None:
    """Print, for each critical temperature alert a forecast alert announced, how much earlier it came."""
    token = await _session(base, settings)
    while True:
        await asyncio.sleep(LEAD_TIME_POLL_SECONDS)
        try:
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
                response = await http.get("/api/v1/alerts", params={"limit": 200})
            if response.status_code == 401:
                token = await _session(base, settings)
                continue
            items = response.raise_for_status().json()["items"]
        except httpx.HTTPError as exc:
            console.print(f"[yellow]lead times: {exc}[/]")
            continue
        seen = [
            SeenAlert(a["id"], a["rule_id"], a["machine_id"], a["message"], to_micros(parse_timestamp(a["created_at"])))
            for a in items
        ]
        for lead in tracker.observe(seen):
            console.print(
                f"[bold cyan]{names.get(lead.machine_id, lead.machine_id)}[/]: the forecast warned "
                f"[bold]{lead.seconds:.0f} s[/] before the critical alert "
                f'("{escape(lead.forecast_message)}" → "{escape(lead.critical_message)}")'
            )


async def _prepare_fleet(http: httpx.AsyncClient, count: int) -> list[str]:
    listing = (await http.get("/api/v1/machines", params={"limit": 1000})).raise_for_status().json()
    ids = [machine["id"] for machine in listing["items"]]
    for index in range(len(ids), count):
        created = await http.post(
            "/api/v1/machines",
            json={"name": machine_name(index), "location": f"Hall {index % 3 + 1}", "tags": ["demo"]},
        )
        ids.append(created.raise_for_status().json()["id"])
    return ids[:count]


async def simulate(base: str, settings: Settings, machine_count: int, console: Console, period: float = 1.0) -> None:
    """Create what the demo needs, print how to use it, then post one reading per metric per machine per period."""
    token = await _session(base, settings)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        ids = await _prepare_fleet(http, machine_count)
        tracker = await _prepare_rules(http)
        key = (await http.post("/api/v1/api-keys", json={"name": "demo simulator"})).raise_for_status().json()
    console.print(f"[bold green]Haltless demo running[/] at [link={base}]{base}[/]")
    console.print(f"  login: [bold]{DEMO_EMAIL}[/] / [bold]{DEMO_PASSWORD}[/]")
    console.print(f"  live stream: {base.replace('http', 'ws', 1)}/api/v1/ws/dashboard")
    console.print(f"  API docs: {base}/docs   ({len(ids)} simulated machines; Ctrl-C stops)")
    fleet = build_fleet(ids)
    names = {machine_id: machine_name(index) for index, machine_id in enumerate(ids)}
    reporter = asyncio.create_task(report_lead_times(base, settings, tracker, names, console))
    try:
        await _stream(base, key["key"], fleet, console, period)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter


async def _stream(base: str, key: str, fleet: list[SimulatedMachine], console: Console, period: float) -> None:
    """Post one reading per metric per machine per period, for ever."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as agent:
        while True:
            elapsed = time.monotonic() - started
            batch = [
                {
                    "machine_id": machine.machine_id,
                    "metric_name": metric,
                    "value": value,
                    "unit": unit,
                    "reading_id": str(uuid.uuid4()),
                }
                for machine in fleet
                for metric, value, unit in machine.sample(elapsed)
            ]
            try:
                (await agent.post("/api/v1/sensor-data", json={"readings": batch})).raise_for_status()
            except httpx.HTTPError as exc:
                console.print(f"[yellow]simulator: {exc}[/]")
            await asyncio.sleep(period)


async def _serve(server: uvicorn.Server) -> bool:
    """Run uvicorn; False when it could not start (it has already logged why, e.g. the port is taken)."""
    try:
        await server.serve()
    except SystemExit:
        return False
    return True


async def run_demo(settings: Settings, *, host: str, port: int, machines: int) -> None:
    """Serve and simulate until Ctrl-C."""
    console = Console()
    server = uvicorn.Server(uvicorn_config(settings, host=host, port=port, log_level="warning"))
    serving = asyncio.create_task(_serve(server))
    while not server.started:
        if serving.done():
            raise SystemExit(1)
        await asyncio.sleep(0.05)
    bound_port = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    simulator = asyncio.create_task(simulate(f"http://{shown_host}:{bound_port}", settings, machines, console))
    done, _ = await asyncio.wait({serving, simulator}, return_when=asyncio.FIRST_COMPLETED)
    if simulator in done and simulator.exception() is not None:
        server.should_exit = True
        await serving
        raise simulator.exception()  # type: ignore[misc]
    simulator.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await simulator
    await serving
