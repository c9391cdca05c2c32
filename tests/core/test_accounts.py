"""The user lifecycle's pure rules: token revocation, what a change ends, the last admin, session lifetimes."""

from __future__ import annotations

import pytest

from haltless.core.accounts import (
    UserChange,
    UserStatus,
    check_user_delete,
    plan_user_change,
    revocation,
    token_lifetime,
)
from haltless.core.models import Role
from haltless.errors import Conflict

ADMIN = UserStatus("t", Role.ADMIN, 3, False)


def test_a_token_counts_while_its_user_exists_is_enabled_and_has_not_moved_on() -> None:
    assert revocation(ADMIN, tenant_id="t", token_generation=3) is None
    assert revocation(None, tenant_id="t", token_generation=3) == "user deleted"
    assert revocation(ADMIN, tenant_id="other", token_generation=3) == "user deleted"
    assert revocation(UserStatus("t", Role.ADMIN, 3, True), tenant_id="t", token_generation=3) == "account disabled"
    reason = revocation(ADMIN, tenant_id="t", token_generation=2)
    assert reason is not None and reason.startswith("session revoked")
    for status in (None, UserStatus("t", Role.ADMIN, 9, True), ADMIN):
        assert len((revocation(status, tenant_id="t", token_generation=0) or "").encode()) <= 123  # a close reason


@pytest.mark.parametrize(
    ("change", "bump", "revoke"),
    [
        (UserChange(), False, False),
        (UserChange(role=Role.ADMIN), False, False),
        (UserChange(role=Role.VIEWER), True, False),
        (UserChange(disabled=True), True, True),
        (UserChange(disabled=False), False, False),
        (UserChange(password_hash="h"), True, True),
        (UserChange(revoke_sessions=True), True, True),
    ],
)
def test_what_a_change_ends(change: UserChange, bump: bool, revoke: bool) -> None:
    plan = plan_user_change(ADMIN, change, other_active_admins=1)
    assert (plan.bump_generation, plan.revoke_sessions) == (bump, revoke)


def test_enabling_brings_no_old_token_back() -> None:
    disabled = UserStatus("t", Role.VIEWER, 4, True)
    plan = plan_user_change(disabled, UserChange(disabled=False), other_active_admins=0)
    assert (plan.disabled, plan.bump_generation) == (False, False)
    assert plan_user_change(disabled, UserChange(disabled=True), other_active_admins=0).revoke_sessions is False


def test_the_last_active_admin_cannot_be_removed() -> None:
    for change in (UserChange(disabled=True), UserChange(role=Role.OPERATOR)):
        with pytest.raises(Conflict, match="last active admin"):
            plan_user_change(ADMIN, change, other_active_admins=0)
    with pytest.raises(Conflict):
        check_user_delete(ADMIN, other_active_admins=0)
    # Everything else stays possible for the last admin, and anything for a non-admin or with another admin.
    plan_user_change(ADMIN, UserChange(password_hash="h", revoke_sessions=True), other_active_admins=0)
    check_user_delete(UserStatus("t", Role.VIEWER, 0, False), other_active_admins=0)
    check_user_delete(UserStatus("t", Role.ADMIN, 0, True), other_active_admins=0)
    check_user_delete(ADMIN, other_active_admins=1)


def test_tokens_never_outlive_their_session() -> None:
    assert token_lifetime(1000, 900, 10_000) == 900
    assert token_lifetime(1000, 900, 1300) == 300
    assert token_lifetime(1000, 900, 1000) == 0
    assert token_lifetime(1000, 900, 10) == 0
