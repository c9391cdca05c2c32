"""Who is calling: bearer access tokens for users, bearer API keys for edge agents; role checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from haltless.core import tokens
from haltless.core.accounts import revocation
from haltless.core.models import Principal, Role
from haltless.core.secrets import API_KEY_PREFIX
from haltless.errors import AuthenticationError, PermissionDenied
from haltless.server.state import AppState, now_seconds, request_state


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationError("missing Authorization: Bearer header")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise AuthenticationError("Authorization header must be 'Bearer <token>'")
    return credential.strip()


async def principal_from_access_token(state: AppState, token: str) -> Principal:
    """Verify an access token and that its user may still use it (also used by the WebSocket); raises
    AuthenticationError."""
    try:
        claims = state.access_tokens.verify(token, now=now_seconds())
    except tokens.TokenError as exc:
        raise AuthenticationError(str(exc)) from None
    # On every request, after the verifier's memory of tokens: a deleted, disabled or signed-out user's token is
    # refused within a second everywhere (server/user_lookup.py), however long it has been valid.
    status = await state.users.status(claims.subject)
    refused = revocation(status, tenant_id=claims.tenant_id, token_generation=claims.generation)
    if refused is not None:
        raise AuthenticationError(refused)
    return Principal(
        tenant_id=claims.tenant_id, subject_id=claims.subject, role=claims.role, token_generation=claims.generation
    )


async def _authenticate(request: Request, state: AppState, *, allow_api_key: bool) -> Principal:
    credential = _bearer(request)
    if credential.startswith(API_KEY_PREFIX):
        key = await state.api_keys.live_key(credential)
        if key is None:
            raise AuthenticationError("invalid or revoked API key")
        if not allow_api_key:
            raise PermissionDenied("API keys may only ingest sensor data")
        return Principal(tenant_id=key.tenant_id, subject_id=key.id, role=None, is_api_key=True)
    return await principal_from_access_token(state, credential)


async def authorize(request: Request, state: AppState, role: Role, *, allow_api_key: bool = False) -> Principal:
    """Authenticate the caller and demand at least `role`; raises AuthenticationError or PermissionDenied."""
    principal = await _authenticate(request, state, allow_api_key=allow_api_key)
    if principal.role is not None and not principal.role.allows(role):
        raise PermissionDenied(f"this needs the {role.value} role")
    return principal


def require(role: Role, *, allow_api_key: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and demands at least `role`."""

    async def dependency(request: Request, state: Annotated[AppState, Depends(request_state)]) -> Principal:
        return await authorize(request, state, role, allow_api_key=allow_api_key)

    return dependency


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
# Who may post readings: operators and above, and edge agents' API keys.
INGEST_ROLE = Role.OPERATOR
Ingester = Annotated[Principal, Depends(require(INGEST_ROLE, allow_api_key=True))]
State = Annotated[AppState, Depends(request_state)]
