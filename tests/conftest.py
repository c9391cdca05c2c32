"""Shared fixtures: a real uvicorn server on a free loopback port, tenants, users and tokens."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from haltless.admin import create_tenant
from haltless.server.app import create_app
from haltless.settings import Settings

PASSWORD = "correct-horse-battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    """A real server in a background thread with its own event loop."""

    settings: Settings
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws/dashboard"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_server(settings: Settings, port: int | None = None) -> RunningServer:
    port = port or free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("server failed to start")
        threading.Event().wait(0.025)
    else:
        raise RuntimeError("server did not start in time")
    return RunningServer(settings, port, server, thread)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "jwt_secret": "test-secret-" + uuid.uuid4().hex}
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def server_factory(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def factory(**overrides: Any) -> RunningServer:
        running = start_server(make_settings(**overrides))
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()


@pytest.fixture
def server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory(ws_heartbeat_interval=30.0)


@dataclass
class Tenant:
    """A tenant with an admin, reachable through `http` (authenticated as the admin)."""

    tenant_id: str
    admin_email: str
    tokens: dict[str, Any]
    http: httpx.AsyncClient

    @property
    def access_token(self) -> str:
        token: str = self.tokens["access_token"]
        return token

    async def add_user(self, role: str) -> dict[str, Any]:
        """A new user of this tenant with `role`, logged in; returns its token pair."""
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        created = await self.http.post("/api/v1/users", json={"email": email, "password": PASSWORD, "role": role})
        assert created.status_code == 201, created.text
        login = await self.http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        pair: dict[str, Any] = login.json()
        return pair

    async def add_machine(self, name: str = "Press 1") -> str:
        created = await self.http.post("/api/v1/machines", json={"name": name})
        assert created.status_code == 201, created.text
        machine_id: str = created.json()["id"]
        return machine_id

    async def ingest(self, readings: list[dict[str, Any]], token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return await self.http.post("/api/v1/sensor-data", json={"readings": readings}, headers=headers)


async def login(base_url: str, email: str, password: str = PASSWORD) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        pair: dict[str, Any] = response.json()
        return pair


@pytest.fixture
async def tenant_factory(server: RunningServer) -> AsyncIterator[Callable[..., Any]]:
    clients: list[httpx.AsyncClient] = []

    async def factory(target: RunningServer | None = None) -> Tenant:
        running = target or server
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        tenant_id, _ = await create_tenant(running.settings, name="Plant", email=email, password=PASSWORD)
        pair = await login(running.base_url, email)
        http = httpx.AsyncClient(
            base_url=running.base_url, headers={"Authorization": f"Bearer {pair['access_token']}"}, timeout=30
        )
        clients.append(http)
        return Tenant(tenant_id, email, pair, http)

    yield factory
    for client in clients:
        await client.aclose()


@pytest.fixture
async def tenant(tenant_factory: Callable[..., Any]) -> Tenant:
    created: Tenant = await tenant_factory()
    return created


async def next_event(
    ws: Any, skip_heartbeats: bool = True, timeout: float = 5.0, only: str | None = None
) -> dict[str, Any]:
    """The next JSON message of a websockets client connection (of type `only`, when given)."""
    import orjson

    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        data: dict[str, Any] = orjson.loads(raw)
        if skip_heartbeats and data.get("type") == "heartbeat":
            continue
        if only is not None and data.get("type") != only:
            continue
        return data
