"""API keys are looked up in the database and remembered for a second; revocation here is seen at once."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.core.credentials import new_api_key
from haltless.server.http.api_key_lookup import KEY_MEMORY_SECONDS, ApiKeyLookup
from haltless.store import accounts


class Clock:
    """The lookup's notion of now, moved by the test (the lookup takes any clock function)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _new_key(engine: AsyncEngine) -> tuple[str, str, str]:
    """(secret, key id, tenant id) of a new key in a new tenant."""
    secret, prefix, key_hash = new_api_key()
    async with engine.begin() as conn:
        tenant_id, _ = await accounts.create_tenant(
            conn, name="P", email=f"{prefix}@example.com", password_hash="x", now=1
        )
        key = await accounts.create_api_key(
            conn, tenant_id=tenant_id, name="agent", prefix=prefix, key_hash=key_hash, now=1
        )
    return secret, key.id, tenant_id


async def _revoke_elsewhere(engine: AsyncEngine, tenant_id: str, key_id: str) -> None:
    # Another server process revoking: straight in the database, this lookup is not told.
    async with engine.begin() as conn:
        assert await accounts.revoke_api_key(conn, tenant_id=tenant_id, key_id=key_id, now=2)


async def test_a_key_revoked_elsewhere_is_refused_within_the_memory_time(engine: AsyncEngine) -> None:
    clock = Clock()
    lookup = ApiKeyLookup(engine, clock=clock)
    secret, key_id, tenant_id = await _new_key(engine)
    key = await lookup.live_key(secret)
    assert key is not None and (key.id, key.tenant_id) == (key_id, tenant_id)
    await _revoke_elsewhere(engine, tenant_id, key_id)
    clock.now += KEY_MEMORY_SECONDS / 2
    assert await lookup.live_key(secret) == key  # remembered: no database round trip
    clock.now += KEY_MEMORY_SECONDS / 2
    assert await lookup.live_key(secret) is None  # looked up again, and refused from now on
    clock.now += 10 * KEY_MEMORY_SECONDS
    assert await lookup.live_key(secret) is None


async def test_forget_makes_a_revocation_here_immediate(engine: AsyncEngine) -> None:
    lookup = ApiKeyLookup(engine, clock=Clock())
    secret, key_id, tenant_id = await _new_key(engine)
    other, _, _ = await _new_key(engine)
    assert await lookup.live_key(secret) is not None
    assert await lookup.live_key(other) is not None
    await _revoke_elsewhere(engine, tenant_id, key_id)
    lookup.forget(key_id)
    assert await lookup.live_key(secret) is None
    assert await lookup.live_key(other) is not None


async def test_unknown_keys_are_never_remembered(engine: AsyncEngine) -> None:
    clock = Clock()
    lookup = ApiKeyLookup(engine, clock=clock)
    secret, _, _ = new_api_key()
    assert await lookup.live_key(secret) is None
    assert lookup._live == {}


async def test_memory_is_bounded(engine: AsyncEngine) -> None:
    lookup = ApiKeyLookup(engine, clock=Clock(), max_keys=2)
    secrets = [(await _new_key(engine))[0] for _ in range(3)]
    for secret in secrets:
        assert await lookup.live_key(secret) is not None
    assert len(lookup._live) == 2
    assert await lookup.live_key(secrets[0]) is not None  # forgotten, so looked up again: still live
