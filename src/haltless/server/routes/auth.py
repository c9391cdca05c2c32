"""Login, refresh (rotation with reuse detection), logout, me, your own password, signing out everywhere."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Request, Response

from haltless.core import tokens
from haltless.core.accounts import UserChange, token_lifetime
from haltless.core.clock import now_seconds
from haltless.core.credentials import hash_password, verify_password
from haltless.core.readings import normalize_uuid
from haltless.core.throttle import LoginAttempt
from haltless.errors import AuthenticationError, Conflict, InvalidRequest, NotFound, PermissionDenied, TooManyRequests
from haltless.server.http.login_guard import wait_seconds, waiting_time
from haltless.server.http.security import State, Viewer
from haltless.server.schemas.auth import LoginRequest, Me, PasswordChange, RefreshRequest, TokenPair
from haltless.server.state import AppState
from haltless.server.ws.session_sweep import user_changed_here
from haltless.store import accounts
from haltless.store.accounts import RefreshUse, User

PREFIX = "/api/v1/auth"
router = APIRouter(prefix=PREFIX, tags=["auth"])
# The only routes whose body is read without a credential in the Authorization header (the body carries the
# password or token); `body_guard.BodyGuard` authenticates every other request before reading its body.
OPEN_BODY_PATHS = frozenset({f"{PREFIX}/login", f"{PREFIX}/refresh", f"{PREFIX}/logout"})
_SEND_REFRESH = 'this is an access token: log out with the refresh token ({"refresh_token": "..."})'


async def _issue_pair(state: AppState, user: User, family_id: str, session_expires_at: int) -> TokenPair:
    """A token pair of the session `family_id`, neither token outliving the session's absolute end."""
    now = now_seconds(state.clock)
    settings = state.settings
    access_ttl = token_lifetime(now, settings.access_token_ttl, session_expires_at)
    refresh_ttl = token_lifetime(now, settings.refresh_token_ttl, session_expires_at)
    if refresh_ttl == 0:
        raise AuthenticationError("session expired; log in again")
    access, _ = tokens.issue(
        state.jwt_secret,
        token_type="access",
        subject=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        now=now,
        ttl=access_ttl,
        generation=user.token_generation,
    )
    refresh, claims = tokens.issue(
        state.jwt_secret,
        token_type="refresh",
        subject=user.id,
        tenant_id=user.tenant_id,
        family_id=family_id,
        now=now,
        ttl=refresh_ttl,
    )
    async with state.engine.begin() as conn:
        await accounts.store_refresh_token(
            conn,
            jti=claims.jti,
            family_id=family_id,
            user_id=user.id,
            expires_at=claims.expires_at,
            session_expires_at=session_expires_at,
            now=now,
        )
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=access_ttl)


async def _new_session(state: AppState, user: User) -> TokenPair:
    """The first token pair of a new session, which ends HALTLESS_SESSION_MAX_AGE from now."""
    session_expires_at = now_seconds(state.clock) + state.settings.session_max_age
    return await _issue_pair(state, user, family_id=str(uuid.uuid4()), session_expires_at=session_expires_at)


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


def _password_matches(candidates: list[User], password: str) -> list[User]:
    """The candidates whose password this is. Always at least one hash: no candidate costs what one does."""
    if not candidates:
        verify_password(None, password)
        return []
    return [user for user in candidates if verify_password(user.password_hash, password)]


@router.post("/login", response_model=TokenPair)
async def login(body: LoginRequest, request: Request, state: State) -> TokenPair:
    """Exchange email and password for an access token and a refresh token (429 after repeated failures).

    An email may belong to users of several tenants; the password picks the user. Only when the same email and
    password belong to users of several tenants is `tenant_id` needed (409 says so)."""
    attempt = LoginAttempt.of(body.email, _client(request))
    # Counted before the password is checked, so concurrent guesses cannot all pass a check made before any
    # of them failed; a success takes the attempt back.
    wait = await state.login_guard.reserve(attempt)
    if wait > 0:
        seconds = wait_seconds(wait)
        raise TooManyRequests(f"too many failed logins; try again in {waiting_time(seconds)}", retry_after=seconds)
    tenant_id = normalize_uuid(body.tenant_id) if body.tenant_id is not None else None
    candidates: list[User] = []
    if body.tenant_id is None or tenant_id is not None:  # a malformed tenant_id matches no user
        async with state.engine.connect() as conn:
            candidates = await accounts.users_by_email(conn, body.email, tenant_id=tenant_id)
    # argon2 is CPU-heavy: keep it off the event loop so sockets keep flowing during logins.
    matched = await asyncio.to_thread(_password_matches, candidates, body.password)
    if not matched:
        raise AuthenticationError("invalid email or password")
    # The account's failures are forgotten; the client address keeps its own (but not this attempt).
    await state.login_guard.succeeded(attempt)
    if len(matched) > 1:
        tenants = ", ".join(user.tenant_id for user in matched)
        raise Conflict(f"this email and password belong to users of several tenants; log in with tenant_id: {tenants}")
    user = matched[0]
    if user.disabled:
        raise PermissionDenied("this account is disabled; ask an admin of your tenant")
    return await _new_session(state, user)


@router.post("/refresh", response_model=TokenPair)
async def refresh(body: RefreshRequest, state: State) -> TokenPair:
    """Rotate a refresh token: the presented one is spent; presenting it again revokes its family.

    The new tokens never outlive the session, which ends HALTLESS_SESSION_MAX_AGE after its login."""
    try:
        claims = tokens.verify(
            state.jwt_secret, body.refresh_token, expected_type="refresh", now=now_seconds(state.clock)
        )
    except tokens.TokenError as exc:
        raise AuthenticationError(str(exc)) from None
    now = now_seconds(state.clock)
    async with state.engine.begin() as conn:
        outcome, session_expires_at = await accounts.use_refresh_token(conn, jti=claims.jti, now=now)
        user = await accounts.user_by_id(conn, claims.subject)
    if outcome is RefreshUse.REUSED:
        raise AuthenticationError("refresh token already used; its session has been revoked, log in again")
    if outcome is RefreshUse.REVOKED:
        raise AuthenticationError("refresh token revoked: its session ended; log in again")
    if outcome is RefreshUse.INVALID and 0 < session_expires_at <= now:
        raise AuthenticationError("session expired; log in again")
    if outcome is RefreshUse.INVALID or user is None or user.tenant_id != claims.tenant_id:
        raise AuthenticationError("invalid refresh token")
    if user.disabled:
        raise AuthenticationError("this account is disabled")
    assert claims.family_id is not None
    return await _issue_pair(state, user, family_id=claims.family_id, session_expires_at=session_expires_at)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(body: RefreshRequest, state: State) -> Response:
    """Revoke the session (refresh-token family) of the given refresh token.

    An expired refresh token that is genuine (its signature checks) answers 204 without revoking anything: it
    can no longer be refreshed, so the caller's session is over either way, and an app logging out long after
    its last use must not see an error. An access token gets 422 (logging out needs the refresh token), and
    anything that is not a token of this server gets 401.
    """
    try:
        claims = tokens.verify(
            state.jwt_secret, body.refresh_token, expected_type="refresh", now=now_seconds(state.clock)
        )
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
        await accounts.revoke_family(conn, family_id=claims.family_id, now=now_seconds(state.clock))
    return Response(status_code=204)


@router.get("/me", response_model=Me)
async def me(principal: Viewer, state: State) -> Me:
    """The calling user."""
    async with state.engine.connect() as conn:
        user = await accounts.user_by_id(conn, principal.subject_id)
    if user is None or user.tenant_id != principal.tenant_id:
        raise NotFound("user not found")
    return Me(user_id=user.id, tenant_id=user.tenant_id, email=user.email, role=user.role)


@router.post("/password", response_model=TokenPair)
async def change_password(body: PasswordChange, request: Request, principal: Viewer, state: State) -> TokenPair:
    """Change your own password, giving the current one. Every session of yours ends (other devices, open
    dashboards); this one goes on with the token pair returned here."""
    async with state.engine.connect() as conn:
        user = await accounts.tenant_user(conn, principal.tenant_id, principal.subject_id)
    if user is None:
        raise AuthenticationError("user deleted")
    # Guessing the current password with a stolen access token is throttled like guessing it at login.
    attempt = LoginAttempt.of(user.email, _client(request))
    wait = await state.login_guard.reserve(attempt)
    if wait > 0:
        seconds = wait_seconds(wait)
        raise TooManyRequests(f"too many wrong passwords; try again in {waiting_time(seconds)}", retry_after=seconds)
    if not await asyncio.to_thread(verify_password, user.password_hash, body.current_password):
        raise PermissionDenied("the current password is wrong")
    await state.login_guard.succeeded(attempt)
    password_hash = await asyncio.to_thread(hash_password, body.new_password)
    async with state.engine.begin() as conn:
        changed, _ = await accounts.change_user(
            conn,
            tenant_id=user.tenant_id,
            user_id=user.id,
            change=UserChange(password_hash=password_hash),
            now=state.clock.now_us(),
        )
    user_changed_here(state.hub, state.users, changed.id, changed.status)
    return await _new_session(state, changed)


@router.delete("/sessions", status_code=204, response_class=Response)
async def sign_out_everywhere(principal: Viewer, state: State) -> Response:
    """End every session of yours: refresh tokens are revoked, access tokens refused (on every server process
    within a second), open dashboards closed with 4004. Log in again afterwards."""
    async with state.engine.begin() as conn:
        changed, _ = await accounts.change_user(
            conn,
            tenant_id=principal.tenant_id,
            user_id=principal.subject_id,
            change=UserChange(revoke_sessions=True),
            now=state.clock.now_us(),
        )
    user_changed_here(state.hub, state.users, changed.id, changed.status)
    return Response(status_code=204)
