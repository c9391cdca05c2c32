"""Tenants, users, refresh-token families and API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.models import Role
from haltless.errors import Conflict
from haltless.store.tables import api_keys, refresh_tokens, tenants, users


@dataclass(frozen=True, slots=True)
class User:
    id: str
    tenant_id: str
    email: str
    role: Role
    password_hash: str
    created_at: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None


class RefreshUse(Enum):
    """Outcome of presenting a refresh token."""

    # First use of a live token: it is now spent; issue the next one of the family.
    ROTATED = "rotated"
    # The token was already spent or its family revoked: a replay; the family is now revoked.
    REUSED = "reused"
    # Unknown or expired.
    INVALID = "invalid"


def _user(row: object) -> User:
    r = row._mapping  # type: ignore[attr-defined]
    return User(r["id"], r["tenant_id"], r["email"], Role(r["role"]), r["password_hash"], r["created_at"])


async def create_tenant(
    conn: AsyncConnection, *, name: str, email: str, password_hash: str, now: int
) -> tuple[str, str]:
    """A tenant and its first admin; returns (tenant_id, user_id)."""
    tenant_id = str(uuid.uuid4())
    await conn.execute(insert(tenants).values(id=tenant_id, name=name, created_at=now))
    user = await create_user(
        conn, tenant_id=tenant_id, email=email, password_hash=password_hash, role=Role.ADMIN, now=now
    )
    return tenant_id, user.id


async def create_user(
    conn: AsyncConnection, *, tenant_id: str, email: str, password_hash: str, role: Role, now: int
) -> User:
    """A new user; an email can belong to one user only (it is the login)."""
    user_id = str(uuid.uuid4())
    email = email.strip().lower()
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(users).values(
                    id=user_id,
                    tenant_id=tenant_id,
                    email=email,
                    password_hash=password_hash,
                    role=role.value,
                    created_at=now,
                )
            )
    except IntegrityError:
        raise Conflict("a user with this email already exists") from None
    return User(user_id, tenant_id, email, role, password_hash, now)


async def user_by_email(conn: AsyncConnection, email: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.email == email.strip().lower()))).first()
    return _user(row) if row else None


async def user_by_id(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def list_users(conn: AsyncConnection, tenant_id: str) -> list[User]:
    rows = await conn.execute(select(users).where(users.c.tenant_id == tenant_id).order_by(users.c.email))
    return [_user(row) for row in rows]


async def store_refresh_token(
    conn: AsyncConnection, *, jti: str, family_id: str, user_id: str, expires_at: int, now: int
) -> None:
    await conn.execute(
        insert(refresh_tokens).values(
            jti=jti, family_id=family_id, user_id=user_id, expires_at=expires_at, created_at=now
        )
    )


async def use_refresh_token(conn: AsyncConnection, *, jti: str, now: int) -> RefreshUse:
    """Spend a refresh token once; a second presentation revokes its whole family."""
    row = (await conn.execute(select(refresh_tokens).where(refresh_tokens.c.jti == jti))).first()
    if row is None:
        return RefreshUse.INVALID
    token = row._mapping
    if token["used_at"] is not None or token["revoked_at"] is not None:
        await revoke_family(conn, family_id=token["family_id"], now=now)
        return RefreshUse.REUSED
    if token["expires_at"] <= now:
        return RefreshUse.INVALID
    # The conditional update makes two concurrent uses of one token race safely: only one wins.
    spent = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.jti == jti, refresh_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    if spent.rowcount != 1:
        await revoke_family(conn, family_id=token["family_id"], now=now)
        return RefreshUse.REUSED
    return RefreshUse.ROTATED


async def revoke_family(conn: AsyncConnection, *, family_id: str, now: int) -> None:
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def create_api_key(
    conn: AsyncConnection, *, tenant_id: str, name: str, prefix: str, key_hash: str, now: int
) -> ApiKey:
    key_id = str(uuid.uuid4())
    await conn.execute(
        insert(api_keys).values(
            id=key_id, tenant_id=tenant_id, name=name, prefix=prefix, key_hash=key_hash, created_at=now
        )
    )
    return ApiKey(key_id, tenant_id, name, prefix, now, None)


def _api_key(row: object) -> ApiKey:
    r = row._mapping  # type: ignore[attr-defined]
    return ApiKey(r["id"], r["tenant_id"], r["name"], r["prefix"], r["created_at"], r["revoked_at"])


async def api_key_by_hash(conn: AsyncConnection, key_hash: str) -> ApiKey | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))).first()
    return _api_key(row) if row else None


async def list_api_keys(conn: AsyncConnection, tenant_id: str) -> list[ApiKey]:
    rows = await conn.execute(select(api_keys).where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.created_at))
    return [_api_key(row) for row in rows]


async def revoke_api_key(conn: AsyncConnection, *, tenant_id: str, key_id: str, now: int) -> bool:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1
