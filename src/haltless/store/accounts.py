"""Tenants, users and their lifecycle, refresh-token families (sessions) and API keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.accounts import UserChange, UserChangePlan, UserStatus, check_user_delete, plan_user_change
from haltless.core.models import Role
from haltless.errors import Conflict, NotFound
from haltless.store.database import begin_write
from haltless.store.tables import api_keys, refresh_tokens, tenants, users

# Ids per `IN (...)` when looking up many users at once (far below SQLite's and PostgreSQL's parameter limits).
STATUS_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class User:
    id: str
    tenant_id: str
    email: str
    role: Role
    password_hash: str
    created_at: int
    disabled_at: int | None = None
    token_generation: int = 0

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def status(self) -> UserStatus:
        return UserStatus(self.tenant_id, self.role, self.token_generation, self.disabled)


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
    # The token was already spent: a replay; the family is now revoked.
    REUSED = "reused"
    # The token's family was revoked (logout, signed out everywhere, new password, disabled) before its use.
    REVOKED = "revoked"
    # Unknown or expired, or its session reached its absolute end.
    INVALID = "invalid"


def _user(row: object) -> User:
    r = row._mapping  # type: ignore[attr-defined]
    return User(
        r["id"],
        r["tenant_id"],
        r["email"],
        Role(r["role"]),
        r["password_hash"],
        r["created_at"],
        r["disabled_at"],
        r["token_generation"],
    )


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces."""
    return email.strip().lower()


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
    """A new user; an email belongs to one user per tenant (other tenants may have their own user with it)."""
    user_id = str(uuid.uuid4())
    email = normalize_email(email)
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
        raise Conflict("a user with this email already exists in this tenant") from None
    return User(user_id, tenant_id, email, role, password_hash, now)


async def users_by_email(conn: AsyncConnection, email: str, *, tenant_id: str | None = None) -> list[User]:
    """The users with this email: one per tenant that has one (only `tenant_id`'s, when given)."""
    query = select(users).where(users.c.email == normalize_email(email))
    if tenant_id is not None:
        query = query.where(users.c.tenant_id == tenant_id)
    return [_user(row) for row in await conn.execute(query.order_by(users.c.tenant_id))]


async def user_by_id(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def tenant_exists(conn: AsyncConnection, tenant_id: str) -> bool:
    found = await conn.scalar(select(tenants.c.id).where(tenants.c.id == tenant_id))
    return found is not None


async def tenant_user(conn: AsyncConnection, tenant_id: str, user_id: str) -> User | None:
    """The user, if it belongs to `tenant_id`."""
    user = await user_by_id(conn, user_id)
    return user if user is not None and user.tenant_id == tenant_id else None


async def list_users(conn: AsyncConnection, tenant_id: str | None) -> list[User]:
    """A tenant's users by email (every tenant's, by tenant then email, for None)."""
    query = select(users).order_by(users.c.tenant_id, users.c.email)
    if tenant_id is not None:
        query = query.where(users.c.tenant_id == tenant_id)
    return [_user(row) for row in await conn.execute(query)]


# Built once: an expanding parameter keeps the compiled statement cached whatever the ids (the revoked-session
# sweep runs it every second; coercing each id into the statement cost more than the query, bench/session_sweep).
_STATUSES = select(users.c.id, users.c.tenant_id, users.c.role, users.c.token_generation, users.c.disabled_at).where(
    users.c.id.in_(bindparam("ids", expanding=True))
)


async def user_statuses(conn: AsyncConnection, user_ids: Iterable[str]) -> dict[str, UserStatus]:
    """The status of each existing user among `user_ids` (deleted ones are missing)."""
    ids = list(user_ids)
    found: dict[str, UserStatus] = {}
    for start in range(0, len(ids), STATUS_CHUNK):
        rows = (await conn.execute(_STATUSES, {"ids": ids[start : start + STATUS_CHUNK]})).all()
        for user_id, tenant_id, role, generation, disabled_at in rows:
            found[user_id] = UserStatus(tenant_id, Role(role), generation, disabled_at is not None)
    return found


async def _lock_tenant_users(conn: AsyncConnection, tenant_id: str) -> None:
    """Serialise changes to one tenant's users, so two admins demoting each other cannot both pass the
    last-admin check (SQLite: the write lock; PostgreSQL: the tenant's row)."""
    await begin_write(conn)
    if conn.dialect.name != "sqlite":
        await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update())


async def _other_active_admins(conn: AsyncConnection, tenant_id: str, user_id: str) -> int:
    query = select(func.count()).where(
        users.c.tenant_id == tenant_id,
        users.c.role == Role.ADMIN.value,
        users.c.disabled_at.is_(None),
        users.c.id != user_id,
    )
    return int((await conn.execute(query)).scalar_one())


async def _locked_user(conn: AsyncConnection, tenant_id: str, user_id: str) -> User:
    await _lock_tenant_users(conn, tenant_id)
    user = await tenant_user(conn, tenant_id, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def change_user(
    conn: AsyncConnection, *, tenant_id: str, user_id: str, change: UserChange, now: int
) -> tuple[User, UserChangePlan]:
    """Apply `change` to a user of `tenant_id` (NotFound, or Conflict for the tenant's last active admin);
    returns the user as it is now and the plan that was applied. Call inside a transaction."""
    user = await _locked_user(conn, tenant_id, user_id)
    plan = plan_user_change(
        user.status, change, other_active_admins=await _other_active_admins(conn, tenant_id, user_id)
    )
    generation = user.token_generation + 1 if plan.bump_generation else user.token_generation
    disabled_at = (user.disabled_at or now) if plan.disabled else None
    password_hash = plan.password_hash or user.password_hash
    await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(role=plan.role.value, disabled_at=disabled_at, password_hash=password_hash, token_generation=generation)
    )
    if plan.revoke_sessions:
        await revoke_sessions(conn, user_id=user_id, now=now // 1_000_000)
    changed = User(
        user.id, user.tenant_id, user.email, plan.role, password_hash, user.created_at, disabled_at, generation
    )
    return changed, plan


async def delete_user(conn: AsyncConnection, *, tenant_id: str, user_id: str) -> None:
    """Delete a user of `tenant_id` and their sessions (NotFound, or Conflict for the last active admin).

    Alerts they acknowledged or resolved keep their id (`acknowledged_by`, `resolved_by`)."""
    user = await _locked_user(conn, tenant_id, user_id)
    check_user_delete(user.status, other_active_admins=await _other_active_admins(conn, tenant_id, user_id))
    await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.user_id == user_id))
    await conn.execute(delete(users).where(users.c.id == user_id))


async def store_refresh_token(
    conn: AsyncConnection,
    *,
    jti: str,
    family_id: str,
    user_id: str,
    expires_at: int,
    session_expires_at: int,
    now: int,
) -> None:
    await conn.execute(
        insert(refresh_tokens).values(
            jti=jti,
            family_id=family_id,
            user_id=user_id,
            expires_at=expires_at,
            session_expires_at=session_expires_at,
            created_at=now,
        )
    )


async def use_refresh_token(conn: AsyncConnection, *, jti: str, now: int) -> tuple[RefreshUse, int]:
    """Spend a refresh token once; a second presentation revokes its whole family. Returns the outcome and
    when the token's session ends (seconds; 0 when the token is unknown)."""
    row = (await conn.execute(select(refresh_tokens).where(refresh_tokens.c.jti == jti))).first()
    if row is None:
        return RefreshUse.INVALID, 0
    token = row._mapping
    session_end: int = token["session_expires_at"]
    if token["used_at"] is not None:
        await revoke_family(conn, family_id=token["family_id"], now=now)
        return RefreshUse.REUSED, session_end
    if token["revoked_at"] is not None:
        return RefreshUse.REVOKED, session_end
    if token["expires_at"] <= now or session_end <= now:
        return RefreshUse.INVALID, session_end
    # The conditional update makes two concurrent uses of one token race safely: only one wins.
    spent = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.jti == jti, refresh_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    if spent.rowcount != 1:
        await revoke_family(conn, family_id=token["family_id"], now=now)
        return RefreshUse.REUSED, session_end
    return RefreshUse.ROTATED, session_end


async def revoke_family(conn: AsyncConnection, *, family_id: str, now: int) -> None:
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_sessions(conn: AsyncConnection, *, user_id: str, now: int) -> None:
    """Revoke every refresh-token family (session) of a user."""
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
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
