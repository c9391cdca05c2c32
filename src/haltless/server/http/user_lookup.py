"""Whether the user behind an access token may still use it: the database, with a one-second memory in front.

Every request made with an access token checks its user (core.accounts.revocation): deleted, disabled, or
signed out since the token was issued (a lower token generation) means 401. Asking the database each time
would cost a pooled connection and a query per request, ingest batches included (bench M4), so each user's
status is remembered for USER_MEMORY_SECONDS: a change made through this process is seen at once (`forget`),
one made through another process or the CLI within that second. Unknown users are remembered too (ids are
never reused, a deleted user stays deleted), so a deleted user's tokens cost no query per request either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.core.accounts import UserStatus
from haltless.store import accounts

USER_MEMORY_SECONDS = 1.0
# Users remembered at once; past this the oldest is forgotten first.
MAX_REMEMBERED_USERS = 16_384


class UserStatusLookup:
    """Users' statuses by id, from memory when looked up less than USER_MEMORY_SECONDS ago."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_users: int = MAX_REMEMBERED_USERS,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._max_users = max_users
        self._known: dict[str, tuple[UserStatus | None, float]] = {}  # user id -> (status or None, looked up at)
        # A lookup that began before a change through this process may answer after it: what it read is then
        # older than the change, and must not be remembered over it (else a disabled user's token would still
        # pass for up to a second). Each `forget` counts; a lookup remembers only users not forgotten meanwhile.
        self._changes = 0
        self._changed_at: dict[str, int] = {}  # user id -> the count at its last `forget`

    async def status(self, user_id: str) -> UserStatus | None:
        """The user's status; None when the user does not exist (any more)."""
        remembered = self._known.get(user_id)
        if remembered is not None and self._clock() - remembered[1] < USER_MEMORY_SECONDS:
            return remembered[0]
        return (await self.refresh((user_id,)))[user_id]

    async def refresh(self, user_ids: Iterable[str]) -> dict[str, UserStatus | None]:
        """Look the users up in the database now (one query per STATUS_CHUNK ids) and remember the answers."""
        ids = list(user_ids)
        began = self._changes
        now = self._clock()
        async with self._engine.connect() as conn:
            found = await accounts.user_statuses(conn, ids)
        statuses: dict[str, UserStatus | None] = {user_id: found.get(user_id) for user_id in ids}
        for user_id, status in statuses.items():
            self._known.pop(user_id, None)  # re-inserted last: the dict stays in lookup order
            if self._changed_at.get(user_id, 0) <= began:
                self._known[user_id] = (status, now)
        while len(self._known) > self._max_users:
            del self._known[next(iter(self._known))]
        return statuses

    def forget(self, user_id: str) -> None:
        """Drop a user from memory (they were just changed through this process)."""
        self._known.pop(user_id, None)
        self._changes += 1
        self._changed_at.pop(user_id, None)
        self._changed_at[user_id] = self._changes
        while len(self._changed_at) > self._max_users:
            del self._changed_at[next(iter(self._changed_at))]
