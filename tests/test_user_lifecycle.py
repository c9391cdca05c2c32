"""The user lifecycle through the real server: disable, enable, delete, change role, reset or change a password,
sign out everywhere; the last admin guard rail; tokens and open dashboards of a revoked user stop at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from haltless.admin import create_tenant
from tests.conftest import EVENT_TIMEOUT, PASSWORD, RunningServer, Tenant, login, query_database

SESSION_REVOKED = 4004  # docs/websocket.md


def _auth(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def _user(tenant: Tenant, role: str) -> tuple[str, str, dict[str, Any]]:
    """A new user of the tenant: (id, email, logged-in token pair)."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    created = await tenant.http.post("/api/v1/users", json={"email": email, "password": PASSWORD, "role": role})
    assert created.status_code == 201, created.text
    pair = await login(str(tenant.http.base_url), email)
    return created.json()["id"], email, pair


async def _socket(server: RunningServer, first_message: str) -> ClientConnection:
    ws = await connect(server.ws_url, open_timeout=EVENT_TIMEOUT)
    await ws.send(first_message)
    assert orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
    return ws


async def _closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(websockets.ConnectionClosed) as info:
        async with asyncio.timeout(EVENT_TIMEOUT):
            while True:
                await ws.recv()
    received = info.value.rcvd
    return (received.code, received.reason) if received else (None, "")


async def _admin_id(tenant: Tenant) -> str:
    me = await tenant.http.get("/api/v1/auth/me")
    user_id: str = me.json()["user_id"]
    return user_id


async def test_a_disabled_user_is_locked_out_at_once_and_enabled_again(server: RunningServer, tenant: Tenant) -> None:
    user_id, email, pair = await _user(tenant, "operator")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        assert (await http.get("/api/v1/machines", headers=_auth(pair))).status_code == 200  # the token is known now
        fast = await _socket(server, pair["access_token"])
        resumed = await _socket(server, orjson.dumps({"token": pair["access_token"], "resume_after": "1-1"}).decode())
        disabled = await tenant.http.patch(f"/api/v1/users/{user_id}", json={"disabled": True})
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["disabled"] is True
        # Both kinds of socket (frame fast path, and the writer task of a resumed socket) close with 4004.
        assert await _closed_with(fast) == (SESSION_REVOKED, "account disabled")
        assert await _closed_with(resumed) == (SESSION_REVOKED, "account disabled")
        refused = await http.get("/api/v1/machines", headers=_auth(pair))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "account disabled"
        assert (
            await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        ).status_code == 401
        right_password = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert right_password.status_code == 403
        assert "disabled" in right_password.json()["detail"]
        async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
            await ws.send(pair["access_token"])
            assert (await _closed_with(ws))[0] == 4001

        enabled = await tenant.http.patch(f"/api/v1/users/{user_id}", json={"disabled": False})
        assert enabled.json()["disabled"] is False
        # The tokens from before stay refused; a new login works.
        assert (await http.get("/api/v1/machines", headers=_auth(pair))).status_code == 401
        again = await login(server.base_url, email)
        assert (await http.get("/api/v1/machines", headers=_auth(again))).status_code == 200


async def test_a_deleted_admin_cannot_create_another_admin(server: RunningServer, tenant: Tenant) -> None:
    user_id, _email, pair = await _user(tenant, "admin")
    async with httpx.AsyncClient(base_url=server.base_url, headers=_auth(pair), timeout=EVENT_TIMEOUT) as rogue:
        assert (await rogue.get("/api/v1/users")).status_code == 200
        ws = await _socket(server, pair["access_token"])
        assert (await tenant.http.delete(f"/api/v1/users/{user_id}")).status_code == 204
        body = {"email": "backdoor@example.com", "password": PASSWORD, "role": "admin"}
        refused = await rogue.post("/api/v1/users", json=body)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "user deleted"
        assert await _closed_with(ws) == (SESSION_REVOKED, "user deleted")
    assert (await tenant.http.get(f"/api/v1/users/{user_id}")).status_code == 404
    assert (await tenant.http.delete(f"/api/v1/users/{user_id}")).status_code == 404
    assert [u["email"] for u in (await tenant.http.get("/api/v1/users")).json()] == [tenant.admin_email]


async def test_a_new_role_refuses_old_tokens_and_a_refresh_brings_it(server: RunningServer, tenant: Tenant) -> None:
    user_id, _email, pair = await _user(tenant, "admin")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        assert (await http.get("/api/v1/users", headers=_auth(pair))).status_code == 200
        demoted = await tenant.http.patch(f"/api/v1/users/{user_id}", json={"role": "viewer"})
        assert demoted.json()["role"] == "viewer"
        old = await http.get("/api/v1/users", headers=_auth(pair))
        assert old.status_code == 401
        assert "session revoked" in old.json()["detail"]
        refreshed = await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 200
        assert jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})["role"] == "viewer"
        assert (await http.get("/api/v1/users", headers=_auth(refreshed.json()))).status_code == 403
        assert (await http.get("/api/v1/machines", headers=_auth(refreshed.json()))).status_code == 200


async def test_an_admin_cannot_lock_themself_out_but_another_admin_can(server: RunningServer, tenant: Tenant) -> None:
    """Deleting, disabling or demoting oneself, or setting one's own password without the current one: 403.
    (The last-admin rule, 409, then guards only against races and the CLI: see the tests beside this one.)"""
    admin_id = await _admin_id(tenant)
    for change in ({"disabled": True}, {"role": "operator"}, {"password": "another long password"}):
        refused = await tenant.http.patch(f"/api/v1/users/{admin_id}", json=change)
        assert refused.status_code == 403, change
        assert "another admin can" in refused.json()["detail"] or "/auth/password" in refused.json()["detail"]
    assert (await tenant.http.delete(f"/api/v1/users/{admin_id}")).status_code == 403
    assert (await tenant.http.patch(f"/api/v1/users/{admin_id}", json={"role": "admin", "disabled": False})).is_success
    # Another admin can; the demoted admin's token is refused from then on.
    _second_id, _email, second = await _user(tenant, "admin")
    async with httpx.AsyncClient(base_url=server.base_url, headers=_auth(second), timeout=EVENT_TIMEOUT) as other:
        assert (await other.patch(f"/api/v1/users/{admin_id}", json={"role": "viewer"})).status_code == 200
    assert (await tenant.http.get("/api/v1/users")).status_code == 401


async def test_two_admins_removing_each_other_at_once_leave_one(server: RunningServer, tenant: Tenant) -> None:
    """Concurrent demotions are serialised: the last-admin check of the second sees the first."""
    admin_id = await _admin_id(tenant)
    second_id, _email, second = await _user(tenant, "admin")
    async with httpx.AsyncClient(base_url=server.base_url, headers=_auth(second), timeout=EVENT_TIMEOUT) as other:
        first_result, second_result = await asyncio.gather(
            tenant.http.patch(f"/api/v1/users/{second_id}", json={"disabled": True}),
            other.patch(f"/api/v1/users/{admin_id}", json={"disabled": True}),
        )
    # One disabled the other; the other's request was then refused (401) or found it the last admin (409).
    assert sorted([first_result.status_code, second_result.status_code]) in ([200, 401], [200, 409])
    active_admins = query_database(
        server.settings,
        f"SELECT count(*) FROM users WHERE tenant_id = '{tenant.tenant_id}' AND role = 'admin' AND disabled_at IS NULL",
    )
    assert active_admins == [(1,)]


async def test_an_admin_resets_a_password_and_ends_every_session(server: RunningServer, tenant: Tenant) -> None:
    user_id, email, pair = await _user(tenant, "viewer")
    ws = await _socket(server, pair["access_token"])
    reset = await tenant.http.patch(f"/api/v1/users/{user_id}", json={"password": "a-brand-new-password"})
    assert reset.status_code == 200
    assert (await _closed_with(ws))[0] == SESSION_REVOKED
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        assert (await http.get("/api/v1/machines", headers=_auth(pair))).status_code == 401
        assert (
            await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        ).status_code == 401
        assert (await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})).status_code == 401
    await login(server.base_url, email, "a-brand-new-password")


async def test_users_change_their_own_password(server: RunningServer, tenant: Tenant) -> None:
    _user_id, email, laptop = await _user(tenant, "viewer")
    phone = await login(server.base_url, email)
    phone_socket = await _socket(server, phone["access_token"])
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        wrong = await http.post(
            "/api/v1/auth/password",
            json={"current_password": "not-my-password", "new_password": "a-brand-new-password"},
            headers=_auth(laptop),
        )
        assert wrong.status_code == 403
        changed = await http.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "a-brand-new-password"},
            headers=_auth(laptop),
        )
        assert changed.status_code == 200, changed.text
        fresh = changed.json()
        # This session goes on with the new pair; every other one ended.
        assert (await http.get("/api/v1/auth/me", headers=_auth(fresh))).status_code == 200
        assert await _closed_with(phone_socket) == (
            SESSION_REVOKED,
            "session revoked: signed out, new password or new role",
        )
        for pair in (laptop, phone):
            assert (await http.get("/api/v1/auth/me", headers=_auth(pair))).status_code == 401
            again = await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            assert again.status_code == 401
        assert (
            await http.post("/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
        ).status_code == 200
        short = await http.post(
            "/api/v1/auth/password", json={"current_password": "x", "new_password": "short"}, headers=_auth(fresh)
        )
        assert short.status_code == 422
    await login(server.base_url, email, "a-brand-new-password")


async def test_sign_out_everywhere(server: RunningServer, tenant: Tenant) -> None:
    _user_id, email, first = await _user(tenant, "operator")
    second = await login(server.base_url, email)
    ws = await _socket(server, second["access_token"])
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        assert (await http.delete("/api/v1/auth/sessions", headers=_auth(first))).status_code == 204
        assert (await _closed_with(ws))[0] == SESSION_REVOKED
        for pair in (first, second):
            assert (await http.get("/api/v1/auth/me", headers=_auth(pair))).status_code == 401
            refreshed = await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            assert refreshed.status_code == 401
        assert (await http.delete("/api/v1/auth/sessions", headers=_auth(first))).status_code == 401
    await login(server.base_url, email)


async def test_an_admin_signs_a_user_out_everywhere(server: RunningServer, tenant: Tenant) -> None:
    user_id, email, pair = await _user(tenant, "viewer")
    ws = await _socket(server, pair["access_token"])
    other_ws = await _socket(server, tenant.access_token)  # the admin's own socket stays open
    assert (await tenant.http.delete(f"/api/v1/users/{user_id}/sessions")).status_code == 204
    assert (await _closed_with(ws))[0] == SESSION_REVOKED
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        assert (await http.get("/api/v1/auth/me", headers=_auth(pair))).status_code == 401
    assert server.state.hub.connection_count() == 1
    await other_ws.close()
    await login(server.base_url, email)


async def test_users_of_other_tenants_are_not_found(server: RunningServer, tenant_factory: Callable[..., Any]) -> None:
    first: Tenant = await tenant_factory()
    second: Tenant = await tenant_factory()
    user_id, _email, _pair = await _user(second, "viewer")
    for method, path, body in (
        ("GET", f"/api/v1/users/{user_id}", None),
        ("PATCH", f"/api/v1/users/{user_id}", {"disabled": True}),
        ("DELETE", f"/api/v1/users/{user_id}/sessions", None),
        ("DELETE", f"/api/v1/users/{user_id}", None),
        ("GET", "/api/v1/users/not-a-uuid", None),
    ):
        response = await first.http.request(method, path, json=body)
        assert response.status_code == 404, (method, path)
    assert (await second.http.get(f"/api/v1/users/{user_id}")).json()["disabled"] is False


async def test_only_admins_manage_users(server: RunningServer, tenant: Tenant) -> None:
    user_id, _email, operator = await _user(tenant, "operator")
    async with httpx.AsyncClient(base_url=server.base_url, headers=_auth(operator), timeout=EVENT_TIMEOUT) as http:
        assert (await http.patch(f"/api/v1/users/{user_id}", json={"role": "admin"})).status_code == 403
        assert (await http.delete(f"/api/v1/users/{user_id}")).status_code == 403
        bad = await tenant.http.patch(f"/api/v1/users/{user_id}", json={"role": "god"})
        assert bad.status_code == 422


async def test_a_session_ends_at_its_max_age_however_often_it_is_refreshed(
    server_factory: Callable[..., RunningServer],
) -> None:
    running = server_factory(session_max_age=3)
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    await create_tenant(running.settings, name="Plant", email=email, password=PASSWORD)
    pair = await login(running.base_url, email)
    logged_in_at = jwt.decode(pair["refresh_token"], options={"verify_signature": False})["iat"]
    async with httpx.AsyncClient(base_url=running.base_url, timeout=EVENT_TIMEOUT) as http:
        async with asyncio.timeout(EVENT_TIMEOUT):
            while True:
                refreshed = await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
                if refreshed.status_code != 200:
                    break
                pair = refreshed.json()
                for token in (pair["access_token"], pair["refresh_token"]):
                    assert jwt.decode(token, options={"verify_signature": False})["exp"] <= logged_in_at + 3
                await asyncio.sleep(0.2)
    assert refreshed.status_code == 401
    # The last refresh token expired with its session (its `exp` is the session's end).
    assert refreshed.json()["detail"] in {"token expired", "session expired; log in again"}
    await login(running.base_url, email)
