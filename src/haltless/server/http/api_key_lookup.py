"""Which tenant an edge agent's API key belongs to: the database, with a one-second memory in front.

An agent sends its key with every batch. Looking it up cost a pooled connection and a query per request, a
measured share of ingest throughput (docs/benchmarks.md, "Hot-path choices"). Keys that are
found and live are remembered for KEY_MEMORY_SECONDS; revoking one through this process forgets it at once,
and another process (several workers, several hosts) sees the revocation within that second.
Unknown and revoked keys are never remembered, so they are refused on every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.core.credentials import hash_api_key
from haltless.store import accounts
from haltless.store.accounts import ApiKey

KEY_MEMORY_SECONDS = 1.0
# Live keys remembered at once; past this the oldest is forgotten first (a plant has tens of agents).
MAX_REMEMBERED_KEYS = 4096


class ApiKeyLookup:
    """Live API keys by their secret, from memory when looked up less than KEY_MEMORY_SECONDS ago."""

    def __init__(
        self, engine: AsyncEngine, *, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_REMEMBERED_KEYS
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._max_keys = max_keys
        self._live: dict[str, tuple[ApiKey, float]] = {}  # key hash -> (key, looked up at)

    async def live_key(self, secret: str) -> ApiKey | None:
        """The key, if it exists and is not revoked; None otherwise."""
        key_hash = hash_api_key(secret)
        now = self._clock()
        remembered = self._live.get(key_hash)
        if remembered is not None and now - remembered[1] < KEY_MEMORY_SECONDS:
            return remembered[0]
        async with self._engine.connect() as conn:
            key = await accounts.api_key_by_hash(conn, key_hash)
        self._live.pop(key_hash, None)  # stale, or re-inserted last: the dict stays in lookup order
        if key is None or key.revoked_at is not None:
            return None
        if len(self._live) >= self._max_keys:
            del self._live[next(iter(self._live))]
        self._live[key_hash] = (key, now)
        return key

    def forget(self, key_id: str) -> None:
        """Drop a key from memory (it was just revoked here)."""
        for key_hash in [h for h, (key, _) in self._live.items() if key.id == key_id]:
            del self._live[key_hash]
