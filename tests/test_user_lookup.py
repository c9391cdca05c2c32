"""Users' statuses are looked up in the database and remembered for a second; a change here is seen at once."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.core.accounts import UserChange, UserStatus
from haltless.core.models import Role
from haltless.server.http.user_lookup import USER_MEMORY_SECONDS, UserStatusLookup
from haltless.store import accounts
from tests.test_api_key_lookup import Clock


async def _tenant(engine: AsyncEngine) -> tuple[str, str, str]:
    """(tenant id, its admin's id, a viewer's id) in a new tenant."""
    async with engine.begin() as conn:
        tenant_id, admin_id = await accounts.create_tenant(
            conn, name="P", email="admin@example.com", password_hash="x", now=1
        )
        viewer = await accounts.create_user(
            conn, tenant_id=tenant_id, email="viewer@example.com", password_hash="x", role=Role.VIEWER, now=1
        )
    return tenant_id, admin_id, viewer.id


async def _change_elsewhere(engine: AsyncEngine, tenant_id: str, user_id: str, change: UserChange) -> None:
    # Another server process, or the CLI: straight in the database, this lookup is not told.
    async with engine.begin() as conn:
        await accounts.change_user(conn, tenant_id=tenant_id, user_id=user_id, change=change, now=2)


async def test_a_user_disabled_elsewhere_is_seen_within_the_memory_time(engine: AsyncEngine) -> None:
    clock = Clock()
    lookup = UserStatusLookup(engine, clock=clock)
    tenant_id, _admin_id, viewer_id = await _tenant(engine)
    before = UserStatus(tenant_id, Role.VIEWER, 0, False)
    assert await lookup.status(viewer_id) == before
    await _change_elsewhere(engine, tenant_id, viewer_id, UserChange(disabled=True))
    clock.now += USER_MEMORY_SECONDS / 2
    assert await lookup.status(viewer_id) == before  # remembered: no database round trip
    clock.now += USER_MEMORY_SECONDS / 2
    assert await lookup.status(viewer_id) == UserStatus(tenant_id, Role.VIEWER, 1, True)


async def test_forget_makes_a_change_here_immediate_and_unknown_users_are_remembered(engine: AsyncEngine) -> None:
    clock = Clock()
    lookup = UserStatusLookup(engine, clock=clock)
    tenant_id, _admin_id, viewer_id = await _tenant(engine)
    assert await lookup.status("no-such-user") is None
    assert (await lookup.status(viewer_id)) is not None
    await _change_elsewhere(engine, tenant_id, viewer_id, UserChange(revoke_sessions=True))
    lookup.forget(viewer_id)
    status = await lookup.status(viewer_id)
    assert status is not None and status.token_generation == 1
    async with engine.begin() as conn:
        await accounts.delete_user(conn, tenant_id=tenant_id, user_id=viewer_id)
    lookup.forget(viewer_id)
    assert await lookup.status(viewer_id) is None


async def test_refresh_answers_many_users_at_once_and_bounds_its_memory(engine: AsyncEngine) -> None:
    lookup = UserStatusLookup(engine, clock=Clock(), max_users=2)
    tenant_id, admin_id, viewer_id = await _tenant(engine)
    statuses = await lookup.refresh([admin_id, viewer_id, "gone"])
    assert statuses == {
        admin_id: UserStatus(tenant_id, Role.ADMIN, 0, False),
        viewer_id: UserStatus(tenant_id, Role.VIEWER, 0, False),
        "gone": None,
    }
    assert len(lookup._known) == 2


async def test_a_lookup_that_began_before_a_change_here_is_not_remembered_over_it(engine: AsyncEngine) -> None:
    """A lookup in flight when the user is changed through this process may have read the user as it was: it
    must not be remembered after `forget`, or the change would go unseen for up to a second (CI saw a disabled
    user's token pass this way). The change lands mid-lookup: when the lookup reads its clock."""
    tenant_id, _admin_id, viewer_id = await _tenant(engine)
    lookup: UserStatusLookup

    class ChangeMidLookup(Clock):
        armed = False

        def __call__(self) -> float:
            if self.armed:
                self.armed = False
                lookup.forget(viewer_id)
            return self.now

    clock = ChangeMidLookup()
    lookup = UserStatusLookup(engine, clock=clock)
    before = await lookup.status(viewer_id)
    clock.armed = True
    assert (await lookup.refresh([viewer_id]))[viewer_id] == before  # what it read...
    await _change_elsewhere(engine, tenant_id, viewer_id, UserChange(disabled=True))
    # ...is not remembered: the next look reads the change.
    assert await lookup.status(viewer_id) == UserStatus(tenant_id, Role.VIEWER, 1, True)
