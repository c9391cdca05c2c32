"""Closing the dashboard sockets of users who were disabled, deleted or signed out, on every process.

A socket is authenticated once, when it opens; after that nothing checks its token again. A change made
through this process closes the user's sockets here at once (routes call `DashboardHub.close_subject`). For
every other process, and for changes made by `haltless admin user ...` straight in the database, each process
sweeps its own sockets every SWEEP_SECONDS: it looks up the users who have sockets open here (one query per
1,000 users) and closes, with 4004, the sockets whose user no longer may use them (core.accounts.revocation).

Why a sweep rather than a message on the event bus: the CLI changes the database without any bus, and a
single process on the in-memory bus could never hear from it; Redis pub/sub drops what a process misses while
disconnected, which would leave a revoked socket open for good, while a sweep reads the database, the one
source of truth, and catches up on its next tick; and it needs nothing from the bus. Its cost is one indexed
query a second per process while sockets are open (docs/websocket.md gives the numbers for 5,000 sockets),
and it refreshes the per-request memory of the same users (server/http/user_lookup.py) as it goes.
"""

from __future__ import annotations

import logging

from haltless.core.accounts import UserStatus, revocation
from haltless.core.wire import CloseCode
from haltless.server.http.user_lookup import UserStatusLookup
from haltless.server.service.background import Background, every
from haltless.server.ws.hub import DashboardHub

log = logging.getLogger("haltless.ws")

SWEEP_SECONDS = 1.0


def close_revoked_sockets(hub: DashboardHub, subject_id: str, status: UserStatus | None, lowest_generation: int) -> int:
    """Close the user's sockets that `status` (None: deleted) revokes, with 4004; returns how many."""
    # A user never changes tenant, and each socket's token was checked against its tenant when it opened.
    tenant_id = status.tenant_id if status is not None else ""
    reason = revocation(status, tenant_id=tenant_id, token_generation=lowest_generation)
    if reason is None:
        return 0
    # Deleted or disabled: every socket of the user; signed out: those opened with older tokens.
    below = None if status is None or status.disabled else status.token_generation
    return hub.close_subject(subject_id, CloseCode.SESSION_REVOKED, reason, below_generation=below)


def user_changed_here(hub: DashboardHub, users: UserStatusLookup, subject_id: str, status: UserStatus | None) -> None:
    """After any change to a user made through this process: their tokens are judged by the new status at once
    (refused, or accepted again after an enable), and their revoked sockets closed here; other processes follow
    within a second (the lookup's memory, the sweep)."""
    users.forget(subject_id)
    lowest = hub.subjects().get(subject_id)
    if lowest is not None:
        close_revoked_sockets(hub, subject_id, status, lowest)


class RevokedSessionSweeper:
    """Every SWEEP_SECONDS, close this process's sockets of users who may no longer use them."""

    def __init__(self, hub: DashboardHub, users: UserStatusLookup, *, interval: float = SWEEP_SECONDS) -> None:
        self._hub = hub
        self._users = users
        self._interval = interval
        self._loop: Background | None = None

    async def sweep(self) -> int:
        """One pass; returns how many sockets it closed."""
        subjects = self._hub.subjects()
        if not subjects:
            return 0
        statuses = await self._users.refresh(subjects)
        closed = 0
        for subject_id, lowest_generation in subjects.items():
            # The common case, nothing changed for this user, closes nothing.
            closed += close_revoked_sockets(self._hub, subject_id, statuses.get(subject_id), lowest_generation)
        return closed

    async def _pass(self) -> None:
        if closed := await self.sweep():
            log.info("closed %d dashboard socket(s) of revoked sessions", closed)

    def start(self) -> None:
        # A database hiccup must not end the sweeping: `every` logs it and the next tick tries again.
        self._loop = every(self._interval, self._pass, name="revoked-session sweep")

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None
