"""Who is calling: bearer access tokens for users, bearer API keys for edge agents; role checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from haltless.core import tokens
from haltless.core.accounts import revocation
from haltless.core.clock import now_seconds
from haltless.core.credentials import API_KEY_PREFIX
from haltless.core.models import Principal, Role
from haltless.errors import AuthenticationError, PermissionDenied
from haltless.server.state import AppState, request_state

# Declares the bearer scheme on every authenticated operation of /openapi.json (server/http/api_contract.py then
# documents their 401 and 403). It never refuses: `authorize` reads the credential, or takes BodyGuard's.
BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token from POST /api/v1/auth/login; on POST /api/v1/sensor-data also an API key (hk_…).",
)

# Where `body_guard.BodyGuard` leaves the caller it authenticated before reading a request's body, so the
# route's `require()` dependency takes it from there instead of verifying the same credential twice.
PRINCIPAL_SCOPE_KEY = "haltless.principal"


def _bearer(header: str | None) -> str:
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
        claims = state.access_tokens.verify(token, now=now_seconds(state.clock))
    except tokens.TokenError as exc:
        raise AuthenticationError(str(exc)) from None
    # On every request, after the verifier's memory of tokens: a deleted, disabled or signed-out user's token is
    # refused within a second everywhere (server/http/user_lookup.py), however long it has been valid.
    status = await state.users.status(claims.subject)
    refused = revocation(status, tenant_id=claims.tenant_id, token_generation=claims.generation)
    if refused is not None:
        raise AuthenticationError(refused)
    return Principal(
        tenant_id=claims.tenant_id, subject_id=claims.subject, role=claims.role, token_generation=claims.generation
    )


async def authenticate(state: AppState, authorization: str | None) -> Principal:
    """Who sends this Authorization header value: a user or an API key (which routes take keys is
    `authorize`'s business); raises AuthenticationError."""
    credential = _bearer(authorization)
    if credential.startswith(API_KEY_PREFIX):
        key = await state.api_keys.live_key(credential)
        if key is None:
            raise AuthenticationError("invalid or revoked API key")
        return Principal(tenant_id=key.tenant_id, subject_id=key.id, role=None, is_api_key=True)
    return await principal_from_access_token(state, credential)


async def authorize(request: Request, state: AppState, role: Role, *, allow_api_key: bool = False) -> Principal:
    """Authenticate the caller and demand at least `role`; raises AuthenticationError or PermissionDenied.

    A request with a body was authenticated by `BodyGuard` before its body was read: that principal is used.
    """
    principal: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if principal is None:
        principal = await authenticate(state, request.headers.get("authorization"))
    if principal.is_api_key and not allow_api_key:
        raise PermissionDenied("API keys may only ingest sensor data")
    if principal.role is not None and not principal.role.allows(role):
        raise PermissionDenied(f"this needs the {role.value} role")
    return principal


def require(role: Role, *, allow_api_key: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller (or takes `BodyGuard`'s principal) and demands at least `role`."""

    async def dependency(
        request: Request,
        state: Annotated[AppState, Depends(request_state)],
        _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
    ) -> Principal:
        return await authorize(request, state, role, allow_api_key=allow_api_key)

    return dependency


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
# Who may post readings: operators and above, and edge agents' API keys.
INGEST_ROLE = Role.OPERATOR
Ingester = Annotated[Principal, Depends(require(INGEST_ROLE, allow_api_key=True))]
State = Annotated[AppState, Depends(request_state)]
