"""Administrative actions that run without a server (CLI `haltless admin ...`, `haltless demo`).

They work on the database directly; notification channels, policies and silences with the admin API's own rules
(server/service/notification_config.py). Running servers notice a change to a user within a second: the user's
access tokens are refused and their open dashboards closed with 4004 (server/ws/session_sweep.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.accounts import UserChange
from haltless.core.credentials import hash_password
from haltless.core.readings import normalize_uuid
from haltless.errors import Conflict, InvalidRequest, NotFound
from haltless.server.clock import SystemClock
from haltless.server.http.errors import validation_detail
from haltless.server.keys import load_secret_box
from haltless.server.schemas.notifications import ChannelTestResult
from haltless.server.service import notification_config as config
from haltless.server.service.notifier import Notifier
from haltless.settings import Settings
from haltless.store import accounts, notifications
from haltless.store.accounts import User
from haltless.store.database import create_engine, make_private_dir, migrate
from haltless.store.notifications import Delivery

_T = TypeVar("_T")


async def _in_transaction(settings: Settings, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
    """Run `work` in one transaction on a migrated database."""
    make_private_dir(settings.data_dir)
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


async def create_tenant(
    settings: Settings, *, name: str, email: str, password: str, reuse_email: bool = False
) -> tuple[str, str]:
    """A tenant and its first admin user; returns (tenant_id, user_id).

    Conflict when another tenant has a user with this email, unless `reuse_email`: running the command twice
    by mistake should not leave two tenants whose admins log in with the same email and password."""
    password_hash = await asyncio.to_thread(hash_password, password)

    async def work(conn: AsyncConnection) -> tuple[str, str]:
        if not reuse_email:
            taken = await accounts.users_by_email(conn, email)
            if taken:
                tenants = ", ".join(user.tenant_id for user in taken)
                raise Conflict(
                    f"a user with this email already exists (tenant {tenants}); use another email, or pass "
                    "--reuse-email to give the new tenant's admin the same one"
                )
        return await accounts.create_tenant(
            conn, name=name, email=email, password_hash=password_hash, now=SystemClock().now_us()
        )

    return await _in_transaction(settings, work)


async def list_users(settings: Settings, *, tenant_id: str | None = None) -> list[User]:
    """Every user (of one tenant, when given), by tenant and email."""

    async def work(conn: AsyncConnection) -> list[User]:
        return await accounts.list_users(conn, _tenant_id(tenant_id) if tenant_id is not None else None)

    return await _in_transaction(settings, work)


def _tenant_id(text: str) -> str:
    tenant_id = normalize_uuid(text)
    if tenant_id is None:
        raise InvalidRequest(f"--tenant-id {text!r} is not a tenant id (a UUID)")
    return tenant_id


async def _find(conn: AsyncConnection, user: str, tenant_id: str | None) -> User:
    """The user named by id or by email (with `tenant_id` when several tenants have a user with that email)."""
    tenant = _tenant_id(tenant_id) if tenant_id is not None else None
    user_id = normalize_uuid(user)
    if user_id is not None:
        found = await accounts.user_by_id(conn, user_id)
        if found is None or (tenant is not None and found.tenant_id != tenant):
            raise NotFound(f"no user with id {user_id}" + (f" in tenant {tenant}" if tenant else ""))
        return found
    candidates = await accounts.users_by_email(conn, user, tenant_id=tenant)
    if not candidates:
        raise NotFound(f"no user with email {user!r}" + (f" in tenant {tenant}" if tenant else ""))
    if len(candidates) > 1:
        tenants = ", ".join(candidate.tenant_id for candidate in candidates)
        raise InvalidRequest(f"several tenants have a user {user!r}; add --tenant-id (one of {tenants})")
    return candidates[0]


async def change_user(settings: Settings, user: str, change: UserChange, *, tenant_id: str | None = None) -> User:
    """Apply `change` to the user named by id or email; Conflict for the tenant's last active admin."""

    async def work(conn: AsyncConnection) -> User:
        found = await _find(conn, user, tenant_id)
        changed, _ = await accounts.change_user(
            conn, tenant_id=found.tenant_id, user_id=found.id, change=change, now=SystemClock().now_us()
        )
        return changed

    return await _in_transaction(settings, work)


async def reset_password(settings: Settings, user: str, password: str, *, tenant_id: str | None = None) -> User:
    """Give the user a new password; every session of theirs ends."""
    password_hash = await asyncio.to_thread(hash_password, password)
    return await change_user(settings, user, UserChange(password_hash=password_hash), tenant_id=tenant_id)


async def delete_user(settings: Settings, user: str, *, tenant_id: str | None = None) -> User:
    """Delete the user named by id or email and their sessions; returns who it was."""

    async def work(conn: AsyncConnection) -> User:
        found = await _find(conn, user, tenant_id)
        await accounts.delete_user(conn, tenant_id=found.tenant_id, user_id=found.id)
        return found

    return await _in_transaction(settings, work)


async def list_notifications(settings: Settings, *, tenant_id: str, state: str | None = None) -> list[Delivery]:
    """A tenant's notifications, newest first (at most 1000), with their delivery state and last error."""

    async def work(conn: AsyncConnection) -> list[Delivery]:
        return await notifications.list_deliveries(
            conn, tenant_id=tenant_id, state=state, channel_id=None, after=None, limit=1000
        )

    return await _in_transaction(settings, work)


# ---- notification channels, policies and silences ---------------------------------------------------------------
# The same request bodies and rules as the admin API (server/service/notification_config.py): a body the API
# answers with 422 is refused here with the same detail.

_Body = TypeVar("_Body", bound=BaseModel)


def request_body(model: type[_Body], fields: dict[str, Any]) -> _Body:
    """`fields` as the API's request body, or InvalidRequest with the detail the API's 422 gives."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidRequest(validation_detail(exc.errors())) from None


async def notification_config(
    settings: Settings, tenant_id: str, work: Callable[[config.Config, str], Awaitable[_T]]
) -> _T:
    """Run `work(config, tenant_id)` on a migrated database; NotFound for a tenant that does not exist."""
    tenant = _tenant_id(tenant_id)
    make_private_dir(settings.data_dir)
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            if not await accounts.tenant_exists(conn, tenant):
                raise NotFound(f"no tenant with id {tenant}")
        return await work(config.Config(engine, SystemClock().now_us, load_secret_box(settings)), tenant)
    finally:
        await engine.dispose()


async def test_channel(settings: Settings, tenant_id: str, channel_id: str) -> ChannelTestResult:
    """Send a `test` notification to the channel from this process, as the server would (same network rules)."""

    async def work(where: config.Config, tenant: str) -> ChannelTestResult:
        notifier = Notifier(where.engine, settings, box=where.box, clock=where.clock)
        try:
            return await config.test_channel(where, tenant, channel_id, notifier)
        finally:
            await notifier.stop()

    return await notification_config(settings, tenant_id, work)


async def rotate_secrets(settings: Settings) -> dict[str, int]:
    """Seal every channel's secrets with the first configured key (legacy plain ones too); how each stood before.

    Idempotent: a second run finds every channel `current` and writes nothing. Channels no configured key opens
    are counted as `unreadable` and left as they are."""
    box = load_secret_box(settings)

    async def work(conn: AsyncConnection) -> dict[str, int]:
        counts = await notifications.reseal_secrets(conn, box, now_s=SystemClock().now_us() // 1_000_000)
        return {sealing.value: count for sealing, count in counts.items()}

    return await _in_transaction(settings, work)


async def user_id_of(settings: Settings, tenant_id: str, user: str) -> str:
    """The id of the tenant's user named by id or email (a silence's creator)."""

    async def work(conn: AsyncConnection) -> str:
        return (await _find(conn, user, tenant_id)).id

    return await _in_transaction(settings, work)
