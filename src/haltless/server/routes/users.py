"""Users of the caller's tenant and their lifecycle (admin only): create, list, read, change role, disable or
enable, reset the password, sign out everywhere, delete.

Whatever takes a user's access away (disable, delete, new role, new password, signing out) takes effect at
once on this server process and within a second on the others: their access tokens are refused, their open
dashboards closed with 4004 (server/ws/session_sweep.py). The tenant's last active admin cannot be disabled,
demoted or deleted (409), and no admin can do that to themself, nor set their own password here (403):
another admin can, and POST /api/v1/auth/password changes one's own with the current one.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from haltless.core.accounts import UserChange, check_change_of_self
from haltless.core.credentials import hash_password
from haltless.core.readings import normalize_uuid
from haltless.core.timefmt import format_micros
from haltless.errors import NotFound
from haltless.server.http.security import Admin, State
from haltless.server.schemas.users import UserCreate, UserOut, UserUpdate
from haltless.server.ws.session_sweep import user_changed_here
from haltless.store import accounts
from haltless.store.accounts import User

router = APIRouter(prefix="/api/v1/users", tags=["users"])


def _out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        tenant_id=user.tenant_id,
        email=user.email,
        role=user.role,
        disabled=user.disabled,
        created_at=format_micros(user.created_at),
    )


def _user_id(text: str) -> str:
    user_id = normalize_uuid(text)
    if user_id is None:
        raise NotFound("user not found")
    return user_id


@router.post("", status_code=201, response_model=UserOut)
async def create_user(body: UserCreate, principal: Admin, state: State) -> UserOut:
    """Add a user (admin, operator or viewer) to the caller's tenant; 409 if the tenant has one with this email."""
    password_hash = await asyncio.to_thread(hash_password, body.password)
    async with state.engine.begin() as conn:
        user = await accounts.create_user(
            conn,
            tenant_id=principal.tenant_id,
            email=body.email,
            password_hash=password_hash,
            role=body.role,
            now=state.clock.now_us(),
        )
    return _out(user)


@router.get("", response_model=list[UserOut])
async def list_users(principal: Admin, state: State) -> list[UserOut]:
    """Every user of the caller's tenant."""
    async with state.engine.connect() as conn:
        return [_out(user) for user in await accounts.list_users(conn, principal.tenant_id)]


@router.get("/{user_id}", response_model=UserOut)
async def get_user(user_id: str, principal: Admin, state: State) -> UserOut:
    """One user of the caller's tenant."""
    async with state.engine.connect() as conn:
        user = await accounts.tenant_user(conn, principal.tenant_id, _user_id(user_id))
    if user is None:
        raise NotFound("user not found")
    return _out(user)


async def _change(state: State, principal: Admin, user_id: str, change: UserChange) -> User:
    async with state.engine.begin() as conn:
        changed, _ = await accounts.change_user(
            conn, tenant_id=principal.tenant_id, user_id=_user_id(user_id), change=change, now=state.clock.now_us()
        )
    user_changed_here(state.hub, state.users, changed.id, changed.status)
    return changed


@router.patch("/{user_id}", response_model=UserOut)
async def update_user(user_id: str, body: UserUpdate, principal: Admin, state: State) -> UserOut:
    """Change a user's role, disable or enable them, or reset their password (fields left out stay as they are).

    A new role refuses the user's current access tokens (a refresh gets one with the new role); disabling and a
    new password also end every session. 409 for the tenant's last active admin."""
    # Checked before the slow hash, on what is asked (the hash only stands in for "a new password").
    check_change_of_self(principal.subject_id, _user_id(user_id), _asked(body))
    password_hash = await asyncio.to_thread(hash_password, body.password) if body.password is not None else None
    change = UserChange(role=body.role, disabled=body.disabled, password_hash=password_hash)
    return _out(await _change(state, principal, user_id, change))


def _asked(body: UserUpdate) -> UserChange:
    return UserChange(role=body.role, disabled=body.disabled, password_hash=None if body.password is None else "new")


@router.delete("/{user_id}/sessions", status_code=204, response_class=Response)
async def revoke_user_sessions(user_id: str, principal: Admin, state: State) -> Response:
    """Sign a user out everywhere: their sessions end, their access tokens are refused, their dashboards close."""
    await _change(state, principal, user_id, UserChange(revoke_sessions=True))
    return Response(status_code=204)


@router.delete("/{user_id}", status_code=204, response_class=Response)
async def delete_user(user_id: str, principal: Admin, state: State) -> Response:
    """Delete a user and their sessions. 409 for the tenant's last active admin; 403 for oneself."""
    normalized = _user_id(user_id)
    check_change_of_self(principal.subject_id, normalized, None)
    async with state.engine.begin() as conn:
        await accounts.delete_user(conn, tenant_id=principal.tenant_id, user_id=normalized)
    user_changed_here(state.hub, state.users, normalized, None)
    return Response(status_code=204)
