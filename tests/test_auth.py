"""Login, refresh rotation and reuse detection, logout, token types, roles, API keys."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

from tests.conftest import EVENT_TIMEOUT, PASSWORD, RunningServer, Tenant


async def test_login_returns_token_pair(server: RunningServer, tenant: Tenant) -> None:
    pair = tenant.tokens
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    me = await tenant.http.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json() == {
        "user_id": me.json()["user_id"],
        "tenant_id": tenant.tenant_id,
        "email": tenant.admin_email,
        "role": "admin",
    }


async def test_bad_credentials_are_401_with_detail(server: RunningServer, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        wrong = await http.post("/api/v1/auth/login", json={"email": tenant.admin_email, "password": "nope-nope"})
        unknown = await http.post("/api/v1/auth/login", json={"email": "who@example.com", "password": PASSWORD})
        malformed = await http.post("/api/v1/auth/login", json={"email": tenant.admin_email})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "invalid email or password"
    assert malformed.status_code == 422
    assert "password" in malformed.json()["detail"]


async def test_refresh_rotates_and_reuse_revokes_family(server: RunningServer, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        first = tenant.tokens["refresh_token"]
        rotated = await http.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert rotated.status_code == 200
        second = rotated.json()["refresh_token"]
        assert second != first
        replay = await http.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert replay.status_code == 401
        assert "already used" in replay.json()["detail"]
        # The replay revoked the family: the legitimately rotated token is dead too.
        after = await http.post("/api/v1/auth/refresh", json={"refresh_token": second})
        assert after.status_code == 401


async def test_logout_revokes_refresh_token(server: RunningServer, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        token = tenant.tokens["refresh_token"]
        out = await http.post("/api/v1/auth/logout", json={"refresh_token": token})
        assert out.status_code == 204
        again = await http.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert again.status_code == 401


async def test_token_types_do_not_pass_for_each_other(server: RunningServer, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        as_access = await http.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {tenant.tokens['refresh_token']}"}
        )
        as_refresh = await http.post("/api/v1/auth/refresh", json={"refresh_token": tenant.access_token})
    assert as_access.status_code == 401
    assert "access" in as_access.json()["detail"]
    assert as_refresh.status_code == 401


def _forge(server: RunningServer, claims: dict[str, Any], key: str | None = None, alg: str = "HS256") -> str:
    return jwt.encode(claims, key if key is not None else server.settings.jwt_secret or "", algorithm=alg)


async def test_forged_expired_and_incomplete_tokens_are_refused(server: RunningServer, tenant: Tenant) -> None:
    now = int(time.time())
    base = jwt.decode(tenant.access_token, options={"verify_signature": False})
    cases = {
        "wrong key": _forge(server, base, key="another-secret-that-is-long-enough-for-hs256"),
        "expired": _forge(server, {**base, "iat": now - 100, "exp": now - 10}),
        "no exp": _forge(server, {k: v for k, v in base.items() if k != "exp"}),
        "no tenant": _forge(server, {k: v for k, v in base.items() if k != "tid"}),
        "no typ": _forge(server, {k: v for k, v in base.items() if k != "typ"}),
        "alg none": jwt.encode(base, "", algorithm="none"),
        "garbage": "not-a-jwt",
    }
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        for name, token in cases.items():
            response = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, name
            assert response.json()["detail"], name
        missing = await http.get("/api/v1/auth/me")
        assert missing.status_code == 401
        assert "Authorization" in missing.json()["detail"]


async def test_roles_limit_what_users_may_do(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    viewer = await tenant.add_user("viewer")
    operator = await tenant.add_user("operator")
    reading = [{"machine_id": machine_id, "metric_name": "temperature", "value": 1.0}]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:

        def auth(pair: dict[str, Any]) -> dict[str, str]:
            return {"Authorization": f"Bearer {pair['access_token']}"}

        assert (await http.get("/api/v1/machines", headers=auth(viewer))).status_code == 200
        denied = await http.post("/api/v1/machines", json={"name": "x"}, headers=auth(viewer))
        assert denied.status_code == 403
        assert "admin" in denied.json()["detail"]
        viewer_ingest = await http.post("/api/v1/sensor-data", json={"readings": reading}, headers=auth(viewer))
        assert viewer_ingest.status_code == 403
        op_ingest = await http.post("/api/v1/sensor-data", json={"readings": reading}, headers=auth(operator))
        assert op_ingest.status_code == 202
        assert (await http.post("/api/v1/machines", json={"name": "x"}, headers=auth(operator))).status_code == 403
        assert (await http.get("/api/v1/users", headers=auth(operator))).status_code == 403
        assert (await http.post("/api/v1/api-keys", json={"name": "k"}, headers=auth(operator))).status_code == 403


async def test_api_key_ingests_only_and_can_be_revoked(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    created = await tenant.http.post("/api/v1/api-keys", json={"name": "line 3 agent"})
    assert created.status_code == 201
    key = created.json()["key"]
    listed = await tenant.http.get("/api/v1/api-keys")
    assert "key" not in listed.json()[0]
    assert listed.json()[0]["prefix"] == key[:12]
    headers = {"Authorization": f"Bearer {key}"}
    reading = [{"machine_id": machine_id, "metric_name": "temperature", "value": 1.0}]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        ok = await http.post("/api/v1/sensor-data", json={"readings": reading}, headers=headers)
        assert ok.status_code == 202
        assert ok.json()["accepted"] == 1
        read = await http.get("/api/v1/machines", headers=headers)
        assert read.status_code == 403
        assert "API keys" in read.json()["detail"]
        revoked = await tenant.http.delete(f"/api/v1/api-keys/{created.json()['id']}")
        assert revoked.status_code == 204
        after = await http.post("/api/v1/sensor-data", json={"readings": reading}, headers=headers)
        assert after.status_code == 401


async def test_duplicate_user_email_is_409(server: RunningServer, tenant: Tenant) -> None:
    body = {"email": tenant.admin_email, "password": PASSWORD, "role": "viewer"}
    response = await tenant.http.post("/api/v1/users", json=body)
    assert response.status_code == 409
    short = await tenant.http.post("/api/v1/users", json={"email": "a@b.c", "password": "short", "role": "viewer"})
    assert short.status_code == 422
    bad_role = await tenant.http.post("/api/v1/users", json={"email": "a@b.c", "password": PASSWORD, "role": "god"})
    assert bad_role.status_code == 422


async def test_repeated_failed_logins_get_429_with_retry_after(server: RunningServer, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        for _ in range(10):
            wrong = await http.post("/api/v1/auth/login", json={"email": tenant.admin_email, "password": "nope-nope"})
            assert wrong.status_code == 401
        blocked = await http.post("/api/v1/auth/login", json={"email": tenant.admin_email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert "too many failed logins" in blocked.json()["detail"]
    assert 0 < int(blocked.headers["retry-after"]) <= 60
