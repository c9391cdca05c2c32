"""Accounts with several server processes on one PostgreSQL and one Redis: a user disabled, signed out or
deleted through one process is locked out of the others too (REST and open dashboards), and concurrent wrong
passwords spread over processes stay inside the login limit."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import EVENT_TIMEOUT
from tests.scale.test_scale_out import PASSWORD, REDIS_HOST, REDIS_PORT, Processes, _env, _socket, _tenant


async def _login(base: str, email: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=EVENT_TIMEOUT) as http:
        response = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        pair: dict[str, Any] = response.json()
        return pair


async def _close_of(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(websockets.ConnectionClosed) as info:
        async with asyncio.timeout(EVENT_TIMEOUT):
            while True:
                await ws.recv()
    received = info.value.rcvd
    return (received.code, received.reason) if received else (None, "")


async def _refused(base: str, token: str) -> str:
    """The detail of the first 401 for `token` on `base` (the other process sees the change within a second)."""
    async with httpx.AsyncClient(base_url=base, timeout=EVENT_TIMEOUT) as http, asyncio.timeout(EVENT_TIMEOUT):
        while True:
            response = await http.get("/api/v1/machines", headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401:
                detail: str = response.json()["detail"]
                return detail
            assert response.status_code == 200
            await asyncio.sleep(0.05)


async def test_a_revoked_user_is_locked_out_of_every_process(tmp_path: Path, pg_url: str, processes: Processes) -> None:
    env = _env(tmp_path, pg_url, f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    base_a, base_b = processes.start(env), processes.start(env)
    admin, _token = await _tenant(base_a, env)
    async with admin:
        ids = {}
        for name in ("disabled", "signed-out", "deleted"):
            email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
            body = {"email": email, "password": PASSWORD, "role": "operator"}
            ids[name] = ((await admin.post("/api/v1/users", json=body)).json()["id"], email)
        pairs = {name: await _login(base_b, email) for name, (_id, email) in ids.items()}
        sockets = {name: await _socket(base_b, pair["access_token"]) for name, pair in pairs.items()}
        async with httpx.AsyncClient(base_url=base_b, timeout=EVENT_TIMEOUT) as http:
            for pair in pairs.values():  # process B now remembers each user as active
                headers = {"Authorization": f"Bearer {pair['access_token']}"}
                assert (await http.get("/api/v1/machines", headers=headers)).status_code == 200

        # All three changes go through process A; B is not told, and must find out by itself.
        assert (await admin.patch(f"/api/v1/users/{ids['disabled'][0]}", json={"disabled": True})).status_code == 200
        assert (await admin.delete(f"/api/v1/users/{ids['signed-out'][0]}/sessions")).status_code == 204
        assert (await admin.delete(f"/api/v1/users/{ids['deleted'][0]}")).status_code == 204

        expected = {
            "disabled": "account disabled",
            "signed-out": "session revoked: signed out, new password or new role",
            "deleted": "user deleted",
        }
        for name, reason in expected.items():
            assert await _close_of(sockets[name]) == (4004, reason), name
            assert await _refused(base_b, pairs[name]["access_token"]) == reason, name
        async with httpx.AsyncClient(base_url=base_b, timeout=EVENT_TIMEOUT) as http:
            for name in expected:
                refreshed = await http.post(
                    "/api/v1/auth/refresh", json={"refresh_token": pairs[name]["refresh_token"]}
                )
                assert refreshed.status_code == 401, name


async def test_concurrent_wrong_passwords_over_two_processes_stay_inside_the_limit(
    tmp_path: Path, pg_url: str, processes: Processes
) -> None:
    env = _env(tmp_path, pg_url, f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    bases = [processes.start(env), processes.start(env)]
    victim = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(timeout=60) as http:
        responses = await asyncio.gather(
            *(
                http.post(f"{bases[i % 2]}/api/v1/auth/login", json={"email": victim, "password": f"guess-{i}"})
                for i in range(40)
            )
        )
    statuses = Counter(response.status_code for response in responses)
    assert statuses[401] <= 10, statuses  # the documented ten a minute per account
    assert statuses[401] + statuses[429] == 40, statuses
