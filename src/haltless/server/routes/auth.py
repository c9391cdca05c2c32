"""Login, refresh (rotation with reuse detection), logout, me."""

from __future__ import annotations

import asyncio
import math
import uuid

from fastapi import APIRouter, Request, Response

from haltless.core import tokens
from haltless.core.secrets import verify_password
from haltless.errors import AuthenticationError, InvalidRequest, NotFound, TooManyRequests
from haltless.server.schemas import LoginRequest, Me, RefreshRequest, TokenPair
from haltless.server.security import State, Viewer
from haltless.server.state import AppState, now_seconds
from haltless.store import accounts
from haltless.store.accounts import RefreshUse, User

PREFIX = "/api/v1/auth"
router = APIRouter(prefix=PREFIX, tags=["auth"])
# The only routes whose body is read without a credential in the Authorization header (the body carries the
# password or token); `body_guard.BodyGuard` authenticates every other request before reading its body.
OPEN_BODY_PATHS = frozenset({f"{PREFIX}/login", f"{PREFIX}/refresh", f"{PREFIX}/logout"})
_SEND_REFRESH = 'this is an access token: log out with the refresh token ({"refresh_token": "..."})'


async def _issue_pair(state: AppState, user: User, family_id: str) -> TokenPair:
    now = now_seconds()
    settings = state.settings
    access, _ = tokens.issue(
        state.jwt_secret,
        token_type="access",
        subject=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        now=now,
        ttl=settings.access_token_ttl,
    )
    refresh, claims = tokens.issue(
        state.jwt_secret,
        token_type="refresh",
        subject=user.id,
        tenant_id=user.tenant_id,
        family_id=family_id,
        now=now,
        ttl=settings.refresh_token_ttl,
    )
    async with state.engine.begin() as conn:
        await accounts.store_refresh_token(
            conn, jti=claims.jti, family_id=family_id, user_id=user.id, expires_at=claims.expires_at, now=now
        )
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=settings.access_token_ttl)


@router.post("/login", response_model=TokenPair)
async def login(body: LoginRequest, request: Request, state: State) -> TokenPair:
    """Exchange email and password for an access token and a refresh token (429 after repeated failures)."""
    keys = (f"email:{body.email.strip().lower()}", f"client:{request.client.host if request.client else '-'}")
    wait = await state.login_guard.retry_after(keys)
    if wait > 0:
        raise TooManyRequests("too many failed logins; try again later", retry_after=math.ceil(wait))
    async with state.engine.connect() as conn:
        user = await accounts.user_by_email(conn, body.email)
    # argon2 is CPU-heavy: keep it off the event loop so sockets keep flowing during logins.
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, body.password)
    if user is None or not ok:
        await state.login_guard.failed(keys)
        raise AuthenticationError("invalid email or password")
    # Only the account's own count resets: one valid login must not clear a guessing client's record.
    await state.login_guard.succeeded(keys[:1])
    return await _issue_pair(state, user, family_id=str(uuid.uuid4()))


@router.post("/refresh", response_model=TokenPair)
async def refresh(body: RefreshRequest, state: State) -> TokenPair:
    """Rotate a refresh token: the presented one is spent; presenting it again revokes its family."""
    try:
        claims = tokens.verify(state.jwt_secret, body.refresh_token, expected_type="refresh", now=now_seconds())
    except tokens.TokenError as exc:
        raise AuthenticationError(str(exc)) from None
    async with state.engine.begin() as conn:
        outcome = await accounts.use_refresh_token(conn, jti=claims.jti, now=now_seconds())
        user = await accounts.user_by_id(conn, claims.subject)
    if outcome is RefreshUse.REUSED:
        raise AuthenticationError("refresh token already used; its session has been revoked, log in again")
    if outcome is RefreshUse.INVALID or user is None:
        raise AuthenticationError("invalid refresh token")
    assert claims.family_id is not None
    return await _issue_pair(state, user, family_id=claims.family_id)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(body: RefreshRequest, state: State) -> Response:
    """Revoke the session (refresh-token family) of the given refresh token.

    An expired refresh token that is genuine (its signature checks) answers 204 without revoking anything: it
    can no longer be refreshed, so the caller's session is over either way, and an app logging out long after
    its last use must not see an error. An access token gets 422 (logging out needs the refresh token), and
    anything that is not a token of this server gets 401.
    """
    try:
        claims = tokens.verify(state.jwt_secret, body.refresh_token, expected_type="refresh", now=now_seconds())
    except tokens.TokenExpired as exc:
        if exc.token_type == "refresh":
            return Response(status_code=204)
        raise InvalidRequest(_SEND_REFRESH) from None
    except tokens.WrongTokenType:
        raise InvalidRequest(_SEND_REFRESH) from None
    except tokens.TokenError as exc:
        raise AuthenticationError(str(exc)) from None
    assert claims.family_id is not None
    async with state.engine.begin() as conn:
        await accounts.revoke_family(conn, family_id=claims.family_id, now=now_seconds())
    return Response(status_code=204)


@router.get("/me", response_model=Me)
async def me(principal: Viewer, state: State) -> Me:
    """The calling user."""
    async with state.engine.connect() as conn:
        user = await accounts.user_by_id(conn, principal.subject_id)
    if user is None or user.tenant_id != principal.tenant_id:
        raise NotFound("user not found")
    return Me(user_id=user.id, tenant_id=user.tenant_id, email=user.email, role=user.role)
