"""Login, refresh (rotation with reuse detection), logout, me."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Request, Response

from haltless.core import tokens
from haltless.core.secrets import verify_password
from haltless.core.throttle import LoginAttempt
from haltless.errors import AuthenticationError, NotFound, TooManyRequests
from haltless.server.login_guard import wait_seconds
from haltless.server.schemas import LoginRequest, Me, RefreshRequest, TokenPair
from haltless.server.security import State, Viewer
from haltless.server.state import AppState, now_seconds
from haltless.store import accounts
from haltless.store.accounts import RefreshUse, User

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


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
    attempt = LoginAttempt.of(body.email, request.client.host if request.client else "-")
    # Counted before the password is checked, so concurrent guesses cannot all pass a check made before any
    # of them failed; a success takes the attempt back.
    wait = await state.login_guard.reserve(attempt)
    if wait > 0:
        raise TooManyRequests("too many failed logins; try again later", retry_after=wait_seconds(wait))
    async with state.engine.connect() as conn:
        user = await accounts.user_by_email(conn, body.email)
    # argon2 is CPU-heavy: keep it off the event loop so sockets keep flowing during logins.
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, body.password)
    if user is None or not ok:
        raise AuthenticationError("invalid email or password")
    # The account's failures are forgotten; the client address keeps its own (but not this attempt).
    await state.login_guard.succeeded(attempt)
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
    """Revoke the session (refresh-token family) of the given refresh token."""
    try:
        claims = tokens.verify(state.jwt_secret, body.refresh_token, expected_type="refresh", now=now_seconds())
    except tokens.TokenError:
        # Logging out with a dead token is already the state the caller wants.
        return Response(status_code=204)
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
