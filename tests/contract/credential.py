"""A credential for the contract run that nothing the fuzzing did can have spoiled: a new admin per token.

hooks.py says why the run needs one; tests/contract/test_contract_credential.py shows the failure it avoids.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx

from haltless.core.credentials import hash_password
from haltless.core.models import Role
from haltless.server.clock import SystemClock
from haltless.store import accounts
from haltless.store.database import create_engine

HOOK_ADDRESS = "192.0.2.1"
# Never shown to the fuzzer; one hash for all the run's admins (argon2 is slow on purpose).
_PASSWORD = uuid.uuid4().hex
_PASSWORD_HASH = hash_password(_PASSWORD)


async def _create_admin(database_url: str, tenant_id: str, email: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await accounts.create_user(
                conn,
                tenant_id=tenant_id,
                email=email,
                password_hash=_PASSWORD_HASH,
                role=Role.ADMIN,
                now=SystemClock().now_us(),
            )
    finally:
        await engine.dispose()


def fresh_admin_token(base_url: str, database_url: str, tenant_id: str) -> str:
    """An access token of an admin of `tenant_id` created just now (call it outside an event loop)."""
    email = f"contract-{uuid.uuid4().hex}@example.com"
    asyncio.run(_create_admin(database_url, tenant_id, email))
    response = httpx.post(
        f"{base_url}/api/v1/auth/login",
        json={"email": email, "password": _PASSWORD},
        headers={"X-Forwarded-For": HOOK_ADDRESS},
        timeout=60,
    )
    if response.status_code != 200:
        raise RuntimeError(f"login of a just-created admin answered {response.status_code}: {response.text}")
    token: str = response.json()["access_token"]
    return token
