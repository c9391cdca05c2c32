"""Several server processes on one PostgreSQL database and one Redis: events cross processes, alerts and
status changes happen once, resume works across processes, and a Redis outage loses nothing stored."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import EVENT_TIMEOUT, free_port, next_event

PG_ADMIN = os.environ.get("HALTLESS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REQUIRE = os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1"
PASSWORD = "correct-horse-battery"


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _need_services() -> None:
    missing = [name for name, port in (("PostgreSQL", 5432), ("Redis", REDIS_PORT)) if not _reachable(port)]
    if missing:
        message = f"{' and '.join(missing)} not reachable on 127.0.0.1"
        if REQUIRE:
            pytest.fail(message + " (HALTLESS_TEST_REQUIRE_SERVICES=1)")
        pytest.skip(message)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    _need_services()
    name = f"haltless_scale_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class Processes:
    """Server processes started by a test, stopped at its end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, env: dict[str, str], args: list[str] | None = None, port: int | None = None) -> str:
        port = port or free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "haltless", "serve", "--port", str(port), "--log-level", "warning", *(args or [])],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    return base
            time.sleep(0.1)
        raise AssertionError("server did not come up")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.started:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    yield running
    running.stop_all()


def _env(tmp_path: Path, database_url: str, bus_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    env.update(
        HALTLESS_DATA_DIR=str(tmp_path / "data"),
        HALTLESS_DATABASE_URL=database_url,
        HALTLESS_BUS_URL=bus_url,
        HALTLESS_BUS_PREFIX=f"test-{uuid.uuid4().hex[:10]}",
        HALTLESS_JWT_SECRET="scale-out-secret-" + "x" * 32,
        **extra,
    )
    return env


async def _tenant(base: str, env: dict[str, str]) -> tuple[httpx.AsyncClient, str]:
    """A tenant made with the CLI against the shared database; an admin client and its token."""
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "haltless",
            "admin",
            "create-tenant",
            "--name",
            "P",
            "--email",
            email,
            "--password",
            PASSWORD,
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    async with httpx.AsyncClient(base_url=base, timeout=EVENT_TIMEOUT) as http:
        token = (await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})).json()[
            "access_token"
        ]
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30), token


async def _socket(base: str, first: str) -> ClientConnection:
    ws = await connect(base.replace("http", "ws", 1) + "/api/v1/ws/dashboard", open_timeout=EVENT_TIMEOUT)
    await ws.send(first)
    assert orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
    return ws


def _reading(machine_id: str, value: float) -> dict[str, Any]:
    return {"machine_id": machine_id, "metric_name": "temperature", "value": value}


async def _post(base: str, token: str, readings: list[dict[str, Any]]) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=EVENT_TIMEOUT
    ) as http:
        return await http.post("/api/v1/sensor-data", json={"readings": readings})


async def _types(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await next_event(ws) for _ in range(count)]


async def test_two_processes_share_events_alerts_and_resume(tmp_path: Path, pg_url: str, processes: Processes) -> None:
    env = _env(tmp_path, pg_url, f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    base_a = processes.start(env)
    base_b = processes.start(env)
    admin, token = await _tenant(base_a, env)
    async with admin:
        machine_id = (await admin.post("/api/v1/machines", json={"name": "Press"})).json()["id"]
        rule = {
            "name": "hot",
            "metric_name": "temperature",
            "condition": ">",
            "threshold": 85.0,
            "severity": "critical",
        }
        assert (await admin.post("/api/v1/alert-rules", json=rule)).status_code == 201

        ws_a = await _socket(base_a, token)
        ws_b = await _socket(base_b, token)
        # A reading ingested into A reaches a socket on B (and A), in the same order with the same ids.
        assert (await _post(base_a, token, [_reading(machine_id, 20.0)])).status_code == 202
        on_b = await _types(ws_b, 2)
        on_a = await _types(ws_a, 2)
        assert [e["type"] for e in on_b] == ["sensor_update", "machine_status"]
        assert [e["event_id"] for e in on_b] == [e["event_id"] for e in on_a]

        # Breaching readings hammered into both processes at once: one alert, one status change.
        async def burst(base: str, start: int) -> None:
            for i in range(10):
                response = await _post(base, token, [_reading(machine_id, 90.0 + start + i)])
                assert response.status_code == 202

        await asyncio.gather(burst(base_a, 0), burst(base_b, 100))
        events = await _types(ws_b, 22)  # 20 sensor_update + 1 alert + 1 machine_status
        kinds = [e["type"] for e in events]
        assert kinds.count("sensor_update") == 20
        assert kinds.count("alert") == 1
        assert kinds.count("machine_status") == 1
        alerts = (await admin.get("/api/v1/alerts")).json()["items"]
        assert len(alerts) == 1
        last_seen = events[-1]["event_id"]
        await ws_b.close()

        # Resume on B after events were published by A while B's socket was gone: exactly those.
        await _post(base_a, token, [_reading(machine_id, 10.0), _reading(machine_id, 11.0)])
        resumed = await _socket(base_b, orjson.dumps({"token": token, "resume_after": last_seen}).decode())
        missed = await _types(resumed, 4)  # the clearing reading, its resolution and status change, the next one
        assert [e["type"] for e in missed] == ["sensor_update", "alert_resolved", "machine_status", "sensor_update"]
        assert [e["type"] for e in await _types(ws_a, 22 + 4)][-4:] == [e["type"] for e in missed]
        await resumed.close()
        await ws_a.close()


async def test_failed_logins_are_counted_across_processes(tmp_path: Path, pg_url: str, processes: Processes) -> None:
    env = _env(tmp_path, pg_url, f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    bases = [processes.start(env), processes.start(env)]
    victim = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    # Five wrong passwords through each process: ten in all, the limit, though neither saw ten itself.
    async with httpx.AsyncClient(timeout=EVENT_TIMEOUT) as http:
        for attempt in range(10):
            wrong = await http.post(
                f"{bases[attempt % 2]}/api/v1/auth/login", json={"email": victim, "password": "guess-guess"}
            )
            assert wrong.status_code == 401
        for base in bases:
            blocked = await http.post(f"{base}/api/v1/auth/login", json={"email": victim, "password": "guess-guess"})
            assert blocked.status_code == 429, blocked.text
            assert 0 < int(blocked.headers["retry-after"]) <= 60


async def test_status_change_is_emitted_once_across_processes(
    tmp_path: Path, pg_url: str, processes: Processes
) -> None:
    env = _env(tmp_path, pg_url, f"redis://{REDIS_HOST}:{REDIS_PORT}/0", HALTLESS_OFFLINE_AFTER="0.8")
    base_a = processes.start(env)
    base_b = processes.start(env)
    admin, token = await _tenant(base_a, env)
    async with admin:
        machine_id = (await admin.post("/api/v1/machines", json={"name": "Press"})).json()["id"]
        ws = await _socket(base_b, token)
        await _post(base_a, token, [_reading(machine_id, 20.0)])
        assert [e["type"] for e in await _types(ws, 2)] == ["sensor_update", "machine_status"]
        offline = await next_event(ws, timeout=EVENT_TIMEOUT)
        assert (offline["old_status"], offline["new_status"]) == ("healthy", "offline")
        # Both processes watch for offline machines; only one may announce it. A tenant's events arrive in
        # order, so the next reading's own events coming next proves no second announcement came between.
        await _post(base_b, token, [_reading(machine_id, 21.0)])
        update, back = await _types(ws, 2)
        assert update["type"] == "sensor_update"
        assert (back["type"], back["old_status"], back["new_status"]) == ("machine_status", "offline", "healthy")
        await ws.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start (and restart) a Redis of this test's own on a free port, so killing it disturbs nobody."""
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE:
            pytest.fail("redis-server not installed")
        pytest.skip("redis-server not installed")
    port = free_port()
    running: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        running.append(process)
        deadline = time.monotonic() + 60
        while not _reachable(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        return process

    start.port = port  # type: ignore[attr-defined]
    yield start
    for process in running:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_redis_outage_keeps_ingesting_and_sockets_resync(
    tmp_path: Path, pg_url: str, processes: Processes, private_redis: Any
) -> None:
    redis = private_redis()
    env = _env(tmp_path, pg_url, f"redis://127.0.0.1:{private_redis.port}/0")
    base = processes.start(env)
    admin, token = await _tenant(base, env)
    async with admin:
        machine_id = (await admin.post("/api/v1/machines", json={"name": "Press"})).json()["id"]
        ws = await _socket(base, token)
        await _post(base, token, [_reading(machine_id, 1.0)])
        assert [e["type"] for e in await _types(ws, 2)] == ["sensor_update", "machine_status"]

        redis.kill()
        redis.wait()
        for value in range(2, 12):
            response = await _post(base, token, [{**_reading(machine_id, float(value)), "reading_id": f"r{value}"}])
            assert response.status_code == 202
            assert response.json()["accepted"] == 1
        control = await next_event(ws)
        assert control["type"] == "resync_required"

        private_redis()
        # The subscriber reconnects on its own and says so; then live events flow again.
        async with asyncio.timeout(60):
            while True:
                event = await next_event(ws, timeout=60)
                if event["type"] == "resync_required" and "reconnected" in event["reason"]:
                    break
        # Publishing may still be retrying (the subscriber waits for it only so long, and a loaded machine can
        # take longer): then the socket is told to resync again, never left without a word. Ingest one reading
        # after another until one streams; a slow recovery only means one more reading.
        streamed: list[float] = []
        posted = 99
        async with asyncio.timeout(60):
            for value in range(100, 10_000):
                posted = value
                await _post(base, token, [{**_reading(machine_id, float(value)), "reading_id": f"after-{value}"}])
                with suppress(AssertionError):
                    streamed.append((await next_event(ws, only="sensor_update", timeout=1.0))["value"])
                    break
        assert streamed and streamed[0] >= 100.0
        # Nothing accepted during or after the outage was lost from the database.
        history = (
            await admin.get(
                "/api/v1/sensor-data", params={"machine_id": machine_id, "metric_name": "temperature", "limit": 1000}
            )
        ).json()
        stored = sorted(p["value"] for p in history["items"])
        assert stored == [float(v) for v in range(1, 12)] + [float(v) for v in range(100, posted + 1)]
        await ws.close()


async def test_serve_workers_runs_several_processes(tmp_path: Path, pg_url: str, processes: Processes) -> None:
    env = _env(tmp_path, pg_url, f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    base = processes.start(env, ["--workers", "2"])
    admin, token = await _tenant(base, env)
    async with admin:
        machine_id = (await admin.post("/api/v1/machines", json={"name": "Press"})).json()["id"]
        sockets = [await _socket(base, token) for _ in range(4)]
        for value in range(5):
            assert (await _post(base, token, [_reading(machine_id, float(value))])).status_code == 202
        for ws in sockets:
            values = [(await next_event(ws, only="sensor_update"))["value"] for _ in range(5)]
            assert values == [0.0, 1.0, 2.0, 3.0, 4.0]
            await ws.close()
