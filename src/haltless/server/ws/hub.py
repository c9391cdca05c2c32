"""The dashboard hub: which sockets belong to which tenant, and a bounded outbox per socket.

Policy for clients that fall behind (docs/websocket.md): every socket has one writer task that
drains its outbox. Publishing appends the already-encoded batch of events (one shared tuple for all
sockets, so a backlog costs a pointer per socket, not a copy) to each outbox of the tenant without
awaiting anything. A socket whose outbox still holds more than `HALTLESS_WS_SEND_BUFFER_BYTES` of
earlier events when a new batch arrives is dropped from the hub at once (no more memory, no more
work) and closed with 4008. One batch of any size is always accepted on top of the budget, so a
large ingest request never cuts off a client that keeps up.

The fast path (a FrameSink from server/ws/fastws.py, which `haltless serve` uses): the hub builds each
batch's WebSocket frames once and writes the same bytes object to every socket's transport, with no
task and no `await` per socket. The transport's write buffer is then the outbox, and the same byte budget
applies to it. Without a sink (any other ASGI server) the writer task drains the outbox through `send`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from enum import IntEnum
from typing import Protocol

from haltless.core import wire
from haltless.core.clock import Clock
from haltless.core.wire import CloseCode
from haltless.server.ws.frames import text_frame, text_frames

SendText = Callable[[str], Awaitable[None]]


class ConnectionState(IntEnum):
    """Where a dashboard connection is; every state but OPEN is final and says how the socket is closed.

    OPEN is 0 so that `if connection.state:` reads "no longer open" at the cost of a bool check: the hot path
    asks it for every socket of every batch.
    """

    OPEN = 0
    # Stopped by the hub (shutdown) or by its handler: closed with 1001, or not at all when the client left.
    STOPPED = 1
    # `close_with(code, reason)`: the user's session was revoked (4004).
    CLOSING = 2
    # The client fell behind the byte budget: closed with 4008.
    OVERFLOWED = 3


SLOW_CONSUMER_REASON = "too slow: send buffer overflowed"


class FrameWriter(Protocol):
    """Where the fast path writes pre-built frames (server.ws.fastws.FrameSink)."""

    def write(self, frames: bytes) -> None: ...

    def buffered(self) -> int: ...

    def on_close(self, callback: Callable[[], None]) -> None: ...


# Never appended to nor waited on: the fast path only ever clears and sets them.
_NO_OUTBOX: deque[Sequence[str]] = deque(maxlen=0)
_NO_WAKEUP = asyncio.Event()


class DashboardConnection:
    """One authenticated socket: an outbox bounded in bytes, a writer, and a heartbeat timer."""

    __slots__ = (
        "_buffered",
        "_close_with",
        "_finished",
        "_heartbeat_handle",
        "_heartbeat_interval",
        "_limit",
        "_loop",
        "_outbox",
        "_send",
        "_wakeup",
        "frames",
        "state",
        "subject_id",
        "tenant_id",
        "token_generation",
    )

    def __init__(
        self,
        tenant_id: str,
        send: SendText,
        *,
        limit_bytes: int,
        heartbeat_interval: float,
        frames: FrameWriter | None = None,
        subject_id: str = "",
        token_generation: int = 0,
    ) -> None:
        self.tenant_id = tenant_id
        # The user whose access token opened the socket, and the token's generation (core.accounts): when the
        # user is disabled, deleted or signed out, `DashboardHub.close_subject` closes the socket.
        self.subject_id = subject_id
        self.token_generation = token_generation
        self.state = ConnectionState.OPEN
        # Set by `close_with`: the close code and reason the socket handler sends.
        self._close_with: tuple[int, str] = (CloseCode.GOING_AWAY, "")
        # With a frame writer, events skip the outbox and the writer task: see write_frames.
        self.frames = frames
        self._send = send
        self._limit = limit_bytes
        self._heartbeat_interval = heartbeat_interval
        # The fast path has no outbox and no writer to wake: share empty stand-ins (about 1.5 KiB per socket).
        self._outbox: deque[Sequence[str]] = deque() if frames is None else _NO_OUTBOX
        self._buffered = 0
        self._wakeup = asyncio.Event() if frames is None else _NO_WAKEUP
        self._loop = asyncio.get_running_loop()
        self._heartbeat_handle: asyncio.TimerHandle | None = None
        # Done when the socket is finished for us: overflowed, stopped, or (fast path) closed by the peer.
        self._finished: asyncio.Future[None] = self._loop.create_future()
        if frames is not None:
            frames.on_close(self._finish)

    def _finish(self) -> None:
        if not self._finished.done():
            self._finished.set_result(None)

    def on_finish(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the socket overflowed, was stopped, or (fast path) was closed by the client."""
        self._finished.add_done_callback(lambda _: callback())

    async def finished(self) -> None:
        """Wait until the socket overflowed, was stopped, or (fast path) was closed by the client."""
        await self._finished

    def close_frame(self) -> tuple[int, str] | None:
        """The close code and reason the socket's handler sends now that it is finished; None while OPEN (the
        client left, or sending failed: there is nobody to tell)."""
        state = self.state
        if state is ConnectionState.OPEN:
            return None
        if state is ConnectionState.OVERFLOWED:
            return CloseCode.SLOW_CONSUMER, SLOW_CONSUMER_REASON
        if state is ConnectionState.CLOSING:
            return self._close_with
        return CloseCode.GOING_AWAY, ""

    def push(self, events: Sequence[str], size: int) -> None:
        """Queue a batch of encoded events (`size` characters in all) without awaiting."""
        if self.state:  # no longer OPEN
            return
        if self.frames is not None:
            self.write_frames(text_frames(events))
            return
        if self._buffered > self._limit:
            self._overflow()
            return
        self._outbox.append(events)
        self._buffered += size
        self._wakeup.set()

    def write_frames(self, frames: bytes) -> None:
        """Fast path: write a batch's pre-built frames (shared by all sockets) to this socket's transport."""
        if self.state:  # no longer OPEN
            return
        writer = self.frames
        assert writer is not None
        # The transport's buffer is the outbox here: over budget means the client stopped reading.
        if writer.buffered() > self._limit:
            self._overflow()
            return
        writer.write(frames)

    def _overflow(self) -> None:
        self._end(ConnectionState.OVERFLOWED)

    def start_heartbeats(self, clock: Clock) -> None:
        """Queue a heartbeat now, and then one every interval (stamped by `clock`)."""
        self._heartbeat(clock)

    def _heartbeat(self, clock: Clock) -> None:
        if self.state:  # no longer OPEN
            return
        beat = wire.heartbeat(clock.now_us())
        if self.frames is not None:
            self.write_frames(text_frame(beat))
        else:
            self.push((beat,), len(beat))
        self._heartbeat_handle = self._loop.call_later(self._heartbeat_interval, self._heartbeat, clock)

    async def run_writer(self) -> None:
        """Drain the outbox into the socket until cancelled (fast path: just wait, frames need no writer)."""
        if self.frames is not None:
            await self._finished
            return
        outbox = self._outbox
        send = self._send
        wakeup = self._wakeup
        while not self.state:
            await wakeup.wait()
            wakeup.clear()
            while outbox and not self.state:
                for event in outbox.popleft():
                    if self.state:
                        return
                    self._buffered -= len(event)
                    await send(event)

    def close_with(self, code: int, reason: str) -> None:
        """Stop, and have the socket's handler close it with `code` and `reason`."""
        if not self.state:
            self._close_with = (code, reason)
            self._end(ConnectionState.CLOSING)

    def stop(self) -> None:
        """Stop heartbeats and drop whatever is queued (a connection already ended keeps its state)."""
        self._end(ConnectionState.STOPPED)

    def _end(self, state: ConnectionState) -> None:
        if not self.state:
            self.state = state
        if self._heartbeat_handle is not None:
            self._heartbeat_handle.cancel()
            self._heartbeat_handle = None
        self._outbox.clear()
        self._buffered = 0
        self._wakeup.set()
        self._finish()


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
            frames = None
            for connection in members:
                if connection.frames is not None:
                    if frames is None:
                        # Built once for the batch, on first need; every socket writes this same object.
                        frames = text_frames(events)
                    connection.write_frames(frames)
                else:
                    connection.push(events, size)

    def resync(self, tenant_id: str | None, reason: str) -> None:
        """Bus gap listener: tell the tenant's sockets (None: every socket) that events may have been missed.

        A failed publish concerns one tenant; only a lost bus subscription concerns them all. Telling the
        others would make every dashboard of the process reload for nothing.
        """
        message = wire.resync_required(reason)
        groups = list(self._by_tenant.values()) if tenant_id is None else [self._by_tenant.get(tenant_id, set())]
        for members in groups:
            for connection in members:
                connection.push((message,), len(message))

    def subjects(self) -> dict[str, int]:
        """The users with sockets here, each with the lowest token generation among their sockets."""
        lowest: dict[str, int] = {}
        for members in self._by_tenant.values():
            for connection in members:
                subject, generation = connection.subject_id, connection.token_generation
                if subject and generation < lowest.get(subject, generation + 1):
                    lowest[subject] = generation
        return lowest

    def close_subject(self, subject_id: str, code: int, reason: str, *, below_generation: int | None = None) -> int:
        """Close the user's sockets (only those opened with a token generation below `below_generation`, when
        given) with `code` and `reason`; returns how many. A scan of every socket: it runs only on a change."""
        closing = [
            connection
            for members in self._by_tenant.values()
            for connection in members
            if connection.subject_id == subject_id
            and (below_generation is None or connection.token_generation < below_generation)
        ]
        for connection in closing:
            self.remove(connection)
            connection.close_with(code, reason)
        return len(closing)

    def connection_count(self) -> int:
        return sum(len(members) for members in self._by_tenant.values())

    def close_all(self) -> None:
        for members in self._by_tenant.values():
            for connection in members:
                connection.stop()
        self._by_tenant.clear()
