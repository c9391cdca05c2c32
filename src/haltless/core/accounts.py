"""The user lifecycle as pure rules: whether an access token still counts, what a change to a user does to
their sessions, the guard rail that keeps every tenant one active admin, and how long a session may last."""

from __future__ import annotations

from dataclasses import dataclass

from haltless.core.models import Role
from haltless.errors import Conflict, PermissionDenied

LAST_ADMIN = "the tenant's last active admin cannot be disabled, demoted or deleted; make another user an admin first"


@dataclass(frozen=True, slots=True)
class UserStatus:
    """What every request made with a user's access token is checked against."""

    tenant_id: str
    role: Role
    # Access tokens issued under an older generation are refused.
    token_generation: int
    disabled: bool


def revocation(status: UserStatus | None, *, tenant_id: str, token_generation: int) -> str | None:
    """Why an access token (or a dashboard socket opened with one) of this user no longer counts; None if it does.

    The reasons are short enough for a WebSocket close frame (123 bytes).
    """
    if status is None or status.tenant_id != tenant_id:
        return "user deleted"
    if status.disabled:
        return "account disabled"
    if token_generation < status.token_generation:
        return "session revoked: signed out, new password or new role"
    return None


@dataclass(frozen=True, slots=True)
class UserChange:
    """What an admin (or the CLI, or the user for their own password) asks to change; None: leave as is."""

    role: Role | None = None
    disabled: bool | None = None
    password_hash: str | None = None
    # Sign the user out everywhere: every session ends, every access token is refused.
    revoke_sessions: bool = False


@dataclass(frozen=True, slots=True)
class UserChangePlan:
    """The change to apply to the user's row and sessions."""

    role: Role
    disabled: bool
    password_hash: str | None  # None: keep the current one
    # Raise token_generation: every access token issued so far is refused from now on (and open sockets close).
    bump_generation: bool
    # Revoke every refresh-token family: no refresh brings the old sessions back.
    revoke_sessions: bool


def _removes_an_admin(current: UserStatus, *, role: Role, disabled: bool) -> bool:
    was_active_admin = current.role is Role.ADMIN and not current.disabled
    return was_active_admin and (role is not Role.ADMIN or disabled)


def plan_user_change(current: UserStatus, change: UserChange, *, other_active_admins: int) -> UserChangePlan:
    """The plan for `change`; raises Conflict when it would leave the tenant without an active admin.

    A new role refuses the old tokens (they carry the old role) but keeps the sessions: a refresh brings a token
    with the new role. Disabling, a new password and "sign out everywhere" end the sessions too. Enabling ends
    nothing: the tokens refused while disabled stay refused (disabling raised their generation).
    """
    role = change.role if change.role is not None else current.role
    disabled = change.disabled if change.disabled is not None else current.disabled
    if other_active_admins == 0 and _removes_an_admin(current, role=role, disabled=disabled):
        raise Conflict(LAST_ADMIN)
    newly_disabled = disabled and not current.disabled
    ends_sessions = newly_disabled or change.password_hash is not None or change.revoke_sessions
    return UserChangePlan(
        role=role,
        disabled=disabled,
        password_hash=change.password_hash,
        bump_generation=ends_sessions or role is not current.role,
        revoke_sessions=ends_sessions,
    )


def check_change_of_self(actor_id: str, user_id: str, change: UserChange | None) -> None:
    """An admin does not lock themself out through the users API: deleting, disabling or demoting oneself, or
    setting one's own password without the current one, is refused (PermissionDenied). Another admin may; a
    user changes their own password with POST /api/v1/auth/password. `change` None: a deletion."""
    if actor_id != user_id:
        return
    if change is None:
        raise PermissionDenied("you cannot delete your own user; another admin can")
    if change.disabled or (change.role is not None and change.role is not Role.ADMIN):
        raise PermissionDenied("you cannot disable or demote your own user; another admin can")
    if change.password_hash is not None:
        raise PermissionDenied("set your own password with POST /api/v1/auth/password (it asks for the current one)")


def check_user_delete(current: UserStatus, *, other_active_admins: int) -> None:
    """Raises Conflict when deleting this user would leave the tenant without an active admin."""
    if other_active_admins == 0 and _removes_an_admin(current, role=current.role, disabled=True):
        raise Conflict(LAST_ADMIN)


def token_lifetime(now: int, ttl: int, session_expires_at: int) -> int:
    """Seconds a token issued at `now` may live: its own TTL, never past the end of its session (0: over)."""
    return max(0, min(ttl, session_expires_at - now))
