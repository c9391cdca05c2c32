"""The dashboard hub: which sockets belong to which tenant, and a bounded outbox per socket.

Policy for clients that fall behind (docs/websocket.md): every socket has one writer task that
drains its outbox. Publishing appends the already-encoded batch of events (one shared tuple for all
sockets, so a backlog costs a pointer per socket, not a copy) to each outbox of the tenant without
awaiting anything. A socket whose outbox still holds more than `HALTLESS_WS_SEND_BUFFER_BYTES` of
earlier events when a new batch arrives is dropped from the hub at once (no more memory, no more
work) and closed with 4008. One batch of any size is always accepted on top of the budget, so a
large ingest request never cuts off a client that keeps up.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from haltless.core import wire
from haltless.core.event_ids import resync_required

SendText = Callable[[str], Awaitable[None]]


def _now_us() -> int:
    return time.time_ns() // 1000


class DashboardConnection:
    """One authenticated socket: an outbox bounded in bytes, a writer, and a heartbeat timer."""

    __slots__ = (
        "_buffered",
        "_heartbeat_handle",
        "_heartbeat_interval",
        "_limit",
        "_loop",
        "_outbox",
        "_send",
        "_wakeup",
        "dead",
        "overflowed",
        "tenant_id",
    )

    def __init__(self, tenant_id: str, send: SendText, *, limit_bytes: int, heartbeat_interval: float) -> None:
        self.tenant_id = tenant_id
        self._send = send
        self._limit = limit_bytes
        self._heartbeat_interval = heartbeat_interval
        self._outbox: deque[Sequence[str]] = deque()
        self._buffered = 0
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._heartbeat_handle: asyncio.TimerHandle | None = None
        self.dead = False
        # Set when the outbox overflowed; the socket handler then closes with SLOW_CONSUMER.
        self.overflowed = asyncio.Event()

    def push(self, events: Sequence[str], size: int) -> None:
        """Queue a batch of encoded events (`size` characters in all) without awaiting."""
        if self.dead:
            return
        if self._buffered > self._limit:
            self._overflow()
            return
        self._outbox.append(events)
        self._buffered += size
        self._wakeup.set()

    def _overflow(self) -> None:
        self.dead = True
        self._outbox.clear()
        self._buffered = 0
        self.overflowed.set()

    def start_heartbeats(self) -> None:
        """Queue a heartbeat now, and then one every interval."""
        self._heartbeat()

    def _heartbeat(self) -> None:
        if self.dead:
            return
        beat = wire.heartbeat(_now_us())
        self.push((beat,), len(beat))
        self._heartbeat_handle = self._loop.call_later(self._heartbeat_interval, self._heartbeat)

    async def run_writer(self) -> None:
        """Drain the outbox into the socket until cancelled."""
        outbox = self._outbox
        send = self._send
        wakeup = self._wakeup
        while not self.dead:
            await wakeup.wait()
            wakeup.clear()
            while outbox and not self.dead:
                for event in outbox.popleft():
                    if self.dead:
                        return
                    self._buffered -= len(event)
                    await send(event)

    def stop(self) -> None:
        """Stop heartbeats and drop whatever is queued."""
        self.dead = True
        if self._heartbeat_handle is not None:
            self._heartbeat_handle.cancel()
            self._heartbeat_handle = None
        self._outbox.clear()
        self._buffered = 0
        self._wakeup.set()


class DashboardHub:
    """All authenticated dashboard sockets of this process, grouped by tenant."""

    def __init__(self, *, max_pending: int) -> None:
        self._by_tenant: dict[str, set[DashboardConnection]] = {}
        self.max_pending = max_pending
        self.pending = 0

    def try_reserve_pending(self) -> bool:
        """Count a connection that waits to authenticate; False when the limit is reached."""
        if self.pending >= self.max_pending:
            return False
        self.pending += 1
        return True

    def release_pending(self) -> None:
        self.pending -= 1

    def add(self, connection: DashboardConnection) -> None:
        self._by_tenant.setdefault(connection.tenant_id, set()).add(connection)

    def remove(self, connection: DashboardConnection) -> None:
        members = self._by_tenant.get(connection.tenant_id)
        if members is not None:
            members.discard(connection)
            if not members:
                del self._by_tenant[connection.tenant_id]

    def deliver(self, tenant_id: str, events: Sequence[str]) -> None:
        """Bus sink: hand the tenant's encoded events to each of its sockets (no await, no copy)."""
        members = self._by_tenant.get(tenant_id)
        if members:
            size = sum(map(len, events))
            for connection in members:
                connection.push(events, size)

    def resync_all(self, reason: str) -> None:
        """Tell every socket that events may have been missed (the bus lost its connection)."""
        message = resync_required(reason)
        for members in self._by_tenant.values():
            for connection in members:
                connection.push((message,), len(message))

    def connection_count(self) -> int:
        return sum(len(members) for members in self._by_tenant.values())

    def close_all(self) -> None:
        for members in self._by_tenant.values():
            for connection in members:
                connection.stop()
        self._by_tenant.clear()
