"""API keys for edge agents (admin only). A key may ingest readings and nothing else."""

from __future__ import annotations

from fastapi import APIRouter, Response

from haltless.core.credentials import new_api_key
from haltless.core.readings import normalize_uuid
from haltless.core.timefmt import format_micros
from haltless.errors import NotFound
from haltless.server.http.security import Admin, State
from haltless.server.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from haltless.store import accounts
from haltless.store.accounts import ApiKey

router = APIRouter(prefix="/api/v1/api-keys", tags=["api keys"])


def _out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        created_at=format_micros(key.created_at),
        revoked_at=format_micros(key.revoked_at) if key.revoked_at is not None else None,
    )


@router.post("", status_code=201, response_model=ApiKeyCreated)
async def create_api_key(body: ApiKeyCreate, principal: Admin, state: State) -> ApiKeyCreated:
    """Create a key; the secret is in this response only (we keep just its hash)."""
    secret, prefix, key_hash = new_api_key()
    async with state.engine.begin() as conn:
        key = await accounts.create_api_key(
            conn,
            tenant_id=principal.tenant_id,
            name=body.name,
            prefix=prefix,
            key_hash=key_hash,
            now=state.clock.now_us(),
        )
    return ApiKeyCreated(**_out(key).model_dump(), key=secret)


@router.get("", response_model=list[ApiKeyOut])
async def list_api_keys(principal: Admin, state: State) -> list[ApiKeyOut]:
    """The tenant's keys, without their secrets."""
    async with state.engine.connect() as conn:
        return [_out(key) for key in await accounts.list_api_keys(conn, principal.tenant_id)]


@router.delete("/{key_id}", status_code=204, response_class=Response)
async def revoke_api_key(key_id: str, principal: Admin, state: State) -> Response:
    """Revoke a key; agents using it get 401 from then on (from other server processes within a second)."""
    normalized = normalize_uuid(key_id)
    if normalized is None:
        raise NotFound("API key not found")
    async with state.engine.begin() as conn:
        revoked = await accounts.revoke_api_key(
            conn, tenant_id=principal.tenant_id, key_id=normalized, now=state.clock.now_us()
        )
    if not revoked:
        raise NotFound("API key not found")
    # At once here; other server processes forget it within KEY_MEMORY_SECONDS (server/http/api_key_lookup.py).
    state.api_keys.forget(normalized)
    return Response(status_code=204)
