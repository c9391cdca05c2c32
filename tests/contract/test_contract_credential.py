"""The contract run's credential survives what the run does to its own account (tests/contract/hooks.py).

The run once lost its admin login midway ("Token fetch failed 3 times in a row"): its wrong current passwords
on POST /api/v1/auth/password locked its one admin's account for a minute (they count like failed logins),
and a DELETE /api/v1/auth/sessions inside that minute ended its session, so every re-login was a 429.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import EVENT_TIMEOUT, PASSWORD, RunningServer, Tenant, login
from tests.contract.credential import fresh_admin_token


async def _token(server: RunningServer, tenant: Tenant) -> str:
    # fresh_admin_token runs its own event loop (as in schemathesis's thread): not on this one.
    return await asyncio.to_thread(
        fresh_admin_token, server.base_url, server.settings.effective_database_url, tenant.tenant_id
    )


async def _lock_own_account_then_sign_out(server: RunningServer, token: str) -> None:
    """What the fuzzer does with a token: guess its own current password until throttled, then sign out."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        statuses = []
        for _ in range(11):
            guess = await http.post("/api/v1/auth/password", json={"current_password": "0", "new_password": "0" * 8})
            statuses.append(guess.status_code)
        assert statuses == [403] * 10 + [429]
        assert (await http.delete("/api/v1/auth/sessions")).status_code == 204
        assert (await http.get("/api/v1/auth/me")).status_code == 401


async def test_a_locked_and_signed_out_admin_cannot_log_in_again_for_a_minute(
    server: RunningServer, tenant: Tenant
) -> None:
    """The failure itself, with the one admin the run used to log in as: even its right password is refused."""
    await _lock_own_account_then_sign_out(server, tenant.access_token)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        relogin = await http.post("/api/v1/auth/login", json={"email": tenant.admin_email, "password": PASSWORD})
    assert relogin.status_code == 429, relogin.text


async def test_the_next_token_works_whatever_the_run_did_to_the_last_one(server: RunningServer, tenant: Tenant) -> None:
    for _ in range(2):
        token = await _token(server, tenant)
        await _lock_own_account_then_sign_out(server, token)
    token = await _token(server, tenant)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=EVENT_TIMEOUT
    ) as http:
        me = await http.get("/api/v1/auth/me")
        assert me.status_code == 200
        assert me.json()["role"] == "admin" and me.json()["tenant_id"] == tenant.tenant_id
    # The tenant's own admin was never touched.
    await login(server.base_url, tenant.admin_email)
