"""Users of the caller's tenant (admin only)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from haltless.core.secrets import hash_password
from haltless.core.timefmt import format_micros
from haltless.server.schemas import UserCreate, UserOut
from haltless.server.security import Admin, State
from haltless.server.state import now_micros
from haltless.store import accounts
from haltless.store.accounts import User

router = APIRouter(prefix="/api/v1/users", tags=["users"])


def _out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        tenant_id=user.tenant_id,
        email=user.email,
        role=user.role,
        created_at=format_micros(user.created_at),
    )


@router.post("", status_code=201, response_model=UserOut)
async def create_user(body: UserCreate, principal: Admin, state: State) -> UserOut:
    """Add a user (admin, operator or viewer) to the caller's tenant."""
    password_hash = await asyncio.to_thread(hash_password, body.password)
    async with state.engine.begin() as conn:
        user = await accounts.create_user(
            conn,
            tenant_id=principal.tenant_id,
            email=body.email,
            password_hash=password_hash,
            role=body.role,
            now=now_micros(),
        )
    return _out(user)


@router.get("", response_model=list[UserOut])
async def list_users(principal: Admin, state: State) -> list[UserOut]:
    """Every user of the caller's tenant."""
    async with state.engine.connect() as conn:
        return [_out(user) for user in await accounts.list_users(conn, principal.tenant_id)]
