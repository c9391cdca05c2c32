"""Shared fixtures: a real uvicorn server on a free loopback port (SQLite or PostgreSQL), tenants, users, tokens."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import hypothesis
import pytest
import uvicorn
from bench.ports import free_port as free_port  # the tests import it from here
from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.admin import create_tenant
from haltless.core.clock import Clock
from haltless.server.app import create_app
from haltless.server.state import AppState
from haltless.server.ws.protocol import WebSocketProtocol
from haltless.settings import Settings
from haltless.store.database import create_engine, migrate

# Hypothesis times every example (a 200 ms deadline) and its data generation (a health check): on a loaded
# CI machine those fail for the machine's speed, not for a bug. Properties are checked with no clock.
hypothesis.settings.register_profile("haltless", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
# CI (.ci/run) draws a fixed set of examples per test (`derandomize`) and keeps no example database: a red run
# then says something about the commit, not about the draw. A local `make test` keeps exploring new examples.
hypothesis.settings.register_profile(
    "haltless-ci", parent=hypothesis.settings.get_profile("haltless"), derandomize=True, database=None
)
hypothesis.settings.load_profile(os.environ.get("HALTLESS_HYPOTHESIS_PROFILE", "haltless"))

PASSWORD = "correct-horse-battery"
# How long a test waits for something that must happen (an event, a close, a server coming up). Generous on
# purpose: a test waits for the event itself, so this only bounds a failure, and a loaded CI machine is slow.
EVENT_TIMEOUT = 30.0

_T = TypeVar("_T")

# Every test that starts a server runs once per backend; HALTLESS_TEST_BACKENDS=sqlite runs one of them.
KNOWN_BACKENDS = ("sqlite", "postgresql")
BACKENDS = [name.strip() for name in os.environ.get("HALTLESS_TEST_BACKENDS", ",".join(KNOWN_BACKENDS)).split(",")]
if not set(BACKENDS) <= set(KNOWN_BACKENDS) or not BACKENDS:
    raise pytest.UsageError(f"HALTLESS_TEST_BACKENDS must name some of {', '.join(KNOWN_BACKENDS)}, got {BACKENDS}")

# The maintenance database through which each test creates and drops its own database.
POSTGRES_ADMIN_DSN = os.environ.get("HALTLESS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def run_async(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a private loop in a helper thread (callable from sync or async code)."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, asyncio.run(make())))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    result: _T = value
    return result


async def _admin_execute(*statements: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction; asyncpg runs plain statements in autocommit.
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=EVENT_TIMEOUT)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@functools.cache
def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can (asked once per session)."""
    try:
        run_async(lambda: _admin_execute("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN} ({type(exc).__name__}: {exc})"
    return None


def _postgres_url(database: str) -> str:
    rest = POSTGRES_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{rest}/{database}"


@pytest.fixture(params=BACKENDS)
def database_backend(request: pytest.FixtureRequest) -> str:
    """The database the servers of a test use: `sqlite` (a file in tmp_path) or `postgresql`."""
    backend: str = request.param
    return backend


@pytest.fixture
def database_url(database_backend: str) -> Iterator[str | None]:
    """None for SQLite (the default file in the data dir), else the URL of a fresh PostgreSQL database."""
    if database_backend == "sqlite":
        yield None
        return
    reason = postgres_unreachable()
    if reason is not None:
        if os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"haltless_test_{uuid.uuid4().hex}"
    # No fsync wait per commit: a test database never needs to survive a power loss.
    run_async(lambda: _admin_execute(f"CREATE DATABASE {name}", f"ALTER DATABASE {name} SET synchronous_commit = off"))
    try:
        yield _postgres_url(name)
    finally:
        run_async(lambda: _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def query_database(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a plain SQL query against a server's database, whichever backend it uses."""
    if settings.database_url is None:
        with sqlite3.connect(settings.data_dir / "haltless.db") as db:
            return [tuple(row) for row in db.execute(sql)]
    dsn = settings.database_url.replace("+asyncpg", "")

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(dsn, timeout=EVENT_TIMEOUT)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return run_async(fetch)


@dataclass
class RunningServer:
    """A real server in a background thread with its own event loop."""

    settings: Settings
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    # The socket start_server bound for the server (uvloop listens on a duplicate of it): closed by `stop`, so a
    # restart can bind the port again.
    listening: socket.socket | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws/dashboard"

    @property
    def state(self) -> AppState:
        """What the running app's lifespan owns (engine, hub, checkpointer…), for tests that look inside."""
        app: Any = self.server.config.app
        state: AppState = app.state.haltless
        return state

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        if self.listening is not None:
            self.listening.close()


def start_server(
    settings: Settings, port: int | None = None, clock: Clock | None = None, ws_ping_interval: float = 20.0
) -> RunningServer:
    # A new server listens on a socket bound here and handed to uvicorn: picking a free port and letting uvicorn
    # bind it later raced with other processes (two suites side by side: "address already in use"). A restart
    # on a given port binds it again, as `haltless serve` would.
    sockets: list[socket.socket] | None = None
    if port is None:
        listening = socket.socket()
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's own bind: restarts reuse it
        listening.bind(("127.0.0.1", 0))
        port = int(listening.getsockname()[1])
        sockets = [listening]
    config = uvicorn.Config(
        create_app(settings, clock=clock),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws=WebSocketProtocol,  # what `haltless serve` runs (server/runner.py), fast dashboard path included
        ws_per_message_deflate=False,
        ws_ping_interval=ws_ping_interval,
        lifespan="on",
        timeout_graceful_shutdown=2,
        proxy_headers=False,  # as `haltless serve`: the app alone decides whom to believe (HALTLESS_TRUSTED_PROXIES)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    running = RunningServer(settings, port, server, thread, sockets[0] if sockets else None)
    for _ in range(int(2 * EVENT_TIMEOUT / 0.025)):
        if server.started:
            return running
        if not thread.is_alive():
            running.stop()
            raise RuntimeError("server failed to start")
        threading.Event().wait(0.025)
    running.stop()
    raise RuntimeError("server did not start in time")


@pytest.fixture
async def engine(tmp_path: Path, database_url: str | None) -> AsyncIterator[AsyncEngine]:
    """A migrated engine on the test's backend, disposed after the test."""
    created = create_engine(database_url or f"sqlite+aiosqlite:///{tmp_path / 'haltless.db'}")
    await migrate(created)
    try:
        yield created
    finally:
        await created.dispose()


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str | None) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "jwt_secret": "test-secret-" + uuid.uuid4().hex,
            "database_url": database_url,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def server_factory(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def factory(clock: Clock | None = None, **overrides: Any) -> RunningServer:
        running = start_server(make_settings(**overrides), clock=clock)
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
    machines_added: int = 0

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

    async def add_machine(self, name: str | None = None) -> str:
        """A new machine; without a name, the next free "Press N" (names are unique per tenant)."""
        if name is None:
            self.machines_added += 1
            name = f"Press {self.machines_added}"
        created = await self.http.post("/api/v1/machines", json={"name": name})
        assert created.status_code == 201, created.text
        machine_id: str = created.json()["id"]
        return machine_id

    async def ingest(self, readings: list[dict[str, Any]], token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return await self.http.post("/api/v1/sensor-data", json={"readings": readings}, headers=headers)


async def login(base_url: str, email: str, password: str = PASSWORD) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=EVENT_TIMEOUT) as http:
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


async def wait_until(condition: Callable[[], object], what: str, timeout: float = EVENT_TIMEOUT) -> None:
    """Poll `condition` until it holds: for state that changes in another thread or process, with no event
    to await. Fails naming `what` after `timeout`, which only bounds a failure (see EVENT_TIMEOUT)."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"waited {timeout} s for {what}") from None


async def next_event(
    ws: Any, skip_heartbeats: bool = True, timeout: float = EVENT_TIMEOUT, only: str | None = None
) -> dict[str, Any]:
    """The next JSON message of a websockets client connection (of type `only`, when given).

    `timeout` bounds the whole wait: messages skipped on the way (heartbeats, other types) do not extend it,
    and a failure lists them, so a missing event fails in bounded time and says what came instead."""
    import orjson

    skipped: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                data: dict[str, Any] = orjson.loads(await ws.recv())
                if (skip_heartbeats and data.get("type") == "heartbeat") or (
                    only is not None and data.get("type") != only
                ):
                    skipped.append(str(data.get("type")))
                    continue
                return data
    except TimeoutError:
        wanted = only or "any message"
        raise AssertionError(f"no {wanted} within {timeout} s; skipped meanwhile: {skipped[-20:]}") from None
