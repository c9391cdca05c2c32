"""`haltless admin user ...` on the database of a running server: the server follows within a second (tokens
refused, open dashboards closed with 4004), and the guard rails hold on the command line too."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.conftest import EVENT_TIMEOUT, PASSWORD, RunningServer, Tenant, login

HALTLESS = [sys.executable, "-m", "haltless"]


def _admin_user(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`haltless admin user ARGS` against the server's database, as an operator on its host runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    env["HALTLESS_DATA_DIR"] = str(server.settings.data_dir)
    if server.settings.database_url:
        env["HALTLESS_DATABASE_URL"] = server.settings.database_url
    return subprocess.run(
        [*HALTLESS, "admin", "user", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _ok(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


async def _refused_soon(server: RunningServer, token: str) -> httpx.Response:
    """The first 401 for `token` (another process changed the user: this server sees it within a second)."""
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http,
        asyncio.timeout(EVENT_TIMEOUT),
    ):
        while True:
            response = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401:
                return response
            await asyncio.sleep(0.05)


async def test_the_user_commands_reach_a_running_server(server: RunningServer, tenant: Tenant) -> None:
    email = "night-shift@example.com"
    created = await tenant.http.post("/api/v1/users", json={"email": email, "password": PASSWORD, "role": "viewer"})
    user_id = created.json()["id"]
    pair = await login(server.base_url, email)

    listed = _admin_user(server, "list", "--tenant-id", tenant.tenant_id)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(row["email"], row["role"], row["disabled"]) for row in rows] == sorted(
        [(tenant.admin_email, "admin", False), (email, "viewer", False)]
    )

    async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        await ws.send(pair["access_token"])
        assert orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
        assert _ok(_admin_user(server, "disable", email))["disabled"] is True
        # The server was not told: its sweep finds the socket's user disabled and closes it.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(EVENT_TIMEOUT):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4004, "account disabled")
    assert (await _refused_soon(server, pair["access_token"])).json()["detail"] == "account disabled"

    assert _ok(_admin_user(server, "enable", user_id))["disabled"] is False
    assert _ok(_admin_user(server, "set-role", email, "operator"))["role"] == "operator"
    reset = _admin_user(server, "reset-password", email, "--password", "night-shift-2")
    assert _ok(reset)["id"] == user_id
    fresh = await login(server.base_url, email, "night-shift-2")
    assert _ok(_admin_user(server, "sign-out", email))["id"] == user_id
    assert "session revoked" in (await _refused_soon(server, fresh["access_token"])).json()["detail"]
    assert _ok(_admin_user(server, "delete", email))["email"] == email
    assert (await tenant.http.get(f"/api/v1/users/{user_id}")).status_code == 404


async def test_the_command_line_keeps_the_guard_rails(
    server: RunningServer, tenant: Tenant, tenant_factory: Any
) -> None:
    last_admin = _admin_user(server, "disable", tenant.admin_email)
    assert last_admin.returncode == 1
    assert "last active admin" in last_admin.stderr
    assert _admin_user(server, "delete", tenant.admin_email).returncode == 1

    other: Tenant = await tenant_factory()
    shared = "auditor@example.com"
    for plant in (tenant, other):
        body = {"email": shared, "password": PASSWORD, "role": "viewer"}
        assert (await plant.http.post("/api/v1/users", json=body)).status_code == 201
    ambiguous = _admin_user(server, "disable", shared)
    assert ambiguous.returncode == 1
    assert "--tenant-id" in ambiguous.stderr and other.tenant_id in ambiguous.stderr
    assert _ok(_admin_user(server, "disable", shared, "--tenant-id", other.tenant_id))["tenant_id"] == other.tenant_id

    unknown = _admin_user(server, "delete", "nobody@example.com")
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "error: no user with email 'nobody@example.com'")
    short = _admin_user(server, "reset-password", shared, "--password", "short", "--tenant-id", tenant.tenant_id)
    assert short.returncode == 2
    assert "8 characters" in short.stderr


def test_create_tenant_gives_an_existing_email_to_a_second_tenant_only_when_asked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    env["HALTLESS_DATA_DIR"] = str(tmp_path / "data")
    args = [*HALTLESS, "admin", "create-tenant", "--name", "Plant", "--email", "ops@plant.test", "--password", PASSWORD]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*args, *extra], env=env, capture_output=True, text=True, timeout=60, check=False)

    first = run()
    assert first.returncode == 0, first.stderr
    again = run()
    assert again.returncode == 1
    assert "--reuse-email" in again.stderr and json.loads(first.stdout)["tenant_id"] in again.stderr
    second = run("--reuse-email")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["tenant_id"] != json.loads(first.stdout)["tenant_id"]
