"""`POST /auth/logout` says what happened to the token it was given (routes/auth.py `logout`)."""

from __future__ import annotations

import time

import httpx
import jwt

from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant


def _resign(server: RunningServer, token: str, **changes: object) -> str:
    """`token`'s claims with `changes`, signed with the server's own secret (a genuine token)."""
    claims = {**jwt.decode(token, options={"verify_signature": False}), **changes}
    return jwt.encode(claims, server.settings.jwt_secret or "", algorithm="HS256")


async def _logout(server: RunningServer, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        return await http.post("/api/v1/auth/logout", json={"refresh_token": token})


async def test_access_token_is_422_and_revokes_nothing(server: RunningServer, tenant: Tenant) -> None:
    response = await _logout(server, tenant.access_token)
    assert response.status_code == 422
    assert "refresh token" in response.json()["detail"]
    past = int(time.time()) - 60
    expired_access = _resign(server, tenant.access_token, iat=past - 60, exp=past)
    assert (await _logout(server, expired_access)).status_code == 422
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        still = await http.post("/api/v1/auth/refresh", json={"refresh_token": tenant.tokens["refresh_token"]})
    assert still.status_code == 200


async def test_forged_or_garbage_token_is_401(server: RunningServer, tenant: Tenant) -> None:
    refresh = tenant.tokens["refresh_token"]
    forged = jwt.encode(
        jwt.decode(refresh, options={"verify_signature": False}),
        "another-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    for token in ("not-a-jwt", forged, refresh[:-4] + "AAAA"):
        response = await _logout(server, token)
        assert response.status_code == 401, token
        assert response.json()["detail"] == "invalid token"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_genuine_refresh_token_is_204(server: RunningServer, tenant: Tenant) -> None:
    past = int(time.time()) - 60
    expired = _resign(server, tenant.tokens["refresh_token"], iat=past - 60, exp=past)
    assert (await _logout(server, expired)).status_code == 204


async def test_live_refresh_token_is_204_and_its_session_ends(server: RunningServer, tenant: Tenant) -> None:
    assert (await _logout(server, tenant.tokens["refresh_token"])).status_code == 204
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        after = await http.post("/api/v1/auth/refresh", json={"refresh_token": tenant.tokens["refresh_token"]})
    assert after.status_code == 401
