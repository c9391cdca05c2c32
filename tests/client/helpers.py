"""Shared pieces of the client tests: a stream consumed in the background, token expiry, stand-in peers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson

from haltless.client import DashboardStream, Event, StreamStatus
from tests.conftest import EVENT_TIMEOUT

Item = Event | StreamStatus | BaseException


class StreamRecorder:
    """Consumes a stream in a task so a test can restart servers meanwhile and await what arrives."""

    def __init__(self, stream: DashboardStream) -> None:
        self.stream = stream
        self.items: list[Item] = []
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        try:
            async for item in self.stream:
                self.items.append(item)
                self._queue.put_nowait(item)
        except Exception as exc:
            self.items.append(exc)
            self._queue.put_nowait(exc)

    async def next_matching(self, predicate: Callable[[Item], bool], timeout: float = EVENT_TIMEOUT) -> Item:
        """The next item (skipping others) for which `predicate` holds; exceptions always end the wait."""
        async with asyncio.timeout(timeout):
            while True:
                item = await self._queue.get()
                if isinstance(item, BaseException) or predicate(item):
                    return item

    async def next_of(self, kind: type[Any], timeout: float = EVENT_TIMEOUT) -> Any:
        item = await self.next_matching(lambda i: isinstance(i, kind), timeout)
        if isinstance(item, BaseException) and not isinstance(item, kind):
            raise AssertionError(f"the stream ended with {item!r}") from item
        return item

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.stream.aclose()


def token_expiry(token: str) -> int:
    """The `exp` claim of a JWT (read without verifying: the test only needs to know when it lapses)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return int(claims["exp"])


async def wait_until_expired(token: str) -> None:
    """Sleep until the server will call `token` expired; expiry is wall-clock time, there is no event to await."""
    remaining = token_expiry(token) - time.time()
    if remaining > -0.05:
        await asyncio.sleep(remaining + 0.05)
