"""The dashboard hub: which sockets belong to which tenant, and a bounded outbox per socket.

Policy for clients that fall behind (docs/websocket.md): every socket has one writer task that
drains its outbox. Publishing appends the already-encoded batch of events (one shared tuple for all
sockets, so a backlog costs a pointer per socket, not a copy) to each outbox of the tenant without
awaiting anything. A socket whose outbox still holds more than `HALTLESS_WS_SEND_BUFFER_BYTES` of
earlier events when a new batch arrives is dropped from the hub at once (no more memory, no more
work) and closed with 4008. One batch of any size is always accepted on top of the budget, so a
large ingest request never cuts off a client that keeps up.

The fast path (a DetachedSocket from server/ws/socket.py, which `haltless serve` uses for every dashboard,
live or resumed): the hub builds each batch's WebSocket frames once and writes the same bytes object to every
socket's transport, with no task and no `await` per socket. The transport's write buffer is then the outbox,
and the same byte budget applies to it. A resumed socket queues in the outbox only while its replay is
written (`attach`). Under any other ASGI server a writer task drains the outbox through `send`.

Heartbeats: one timer per hub, not one per socket (`HeartbeatQueue`). Sockets start beating in the order they
authenticate and all share one interval, so a FIFO of them is always sorted by due time; each tick beats the
sockets that are due with one shared frame and puts them back at the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from enum import IntEnum
from typing import Protocol

from haltless.core import wire
from haltless.core.clock import Clock
from haltless.core.wire import CloseCode
from haltless.server.clock import SystemClock
from haltless.server.ws.frames import text_frame, text_frames

log = logging.getLogger("haltless.ws")

# How long we try to deliver a close frame to a socket that stopped reading before giving up on it.
SLOW_CLOSE_TIMEOUT = 5.0

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
    """Where the fast path writes pre-built frames (server.ws.socket.DetachedSocket)."""

    def write(self, frames: bytes) -> None: ...

    def buffered(self) -> int: ...

    def on_close(self, callback: Callable[[], None]) -> None: ...

    def close(self, code: int, reason: str, timeout: float) -> None: ...


# Never appended to nor waited on: the fast path only ever clears and sets them.
_NO_OUTBOX: deque[Sequence[str]] = deque(maxlen=0)
_NO_WAKEUP = asyncio.Event()
# Called with the connection once it is finished (`DashboardConnection.on_finish`).
FinishCallback = Callable[["DashboardConnection"], None]
# The close a connection reports when nobody chose another (`close_with`): shared, not one tuple per socket.
_GOING_AWAY: tuple[int, str] = (CloseCode.GOING_AWAY, "")


class DashboardConnection:
    """One authenticated socket: an outbox bounded in bytes and a writer (heartbeats: `HeartbeatQueue`)."""

    __slots__ = (
        "_buffered",
        "_close_with",
        "_finish_callbacks",
        "_finished",
        "_limit",
        "_outbox",
        "_send",
        "_wakeup",
        "beat_due",
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
        self._close_with = _GOING_AWAY
        # With a frame writer, events skip the outbox and the writer task: see write_frames.
        self.frames = frames
        self._send = send
        self._limit = limit_bytes
        # The fast path has no outbox and no writer to wake: share empty stand-ins (about 1.5 KiB per socket).
        self._outbox: deque[Sequence[str]] = deque() if frames is None else _NO_OUTBOX
        self._buffered = 0
        self._wakeup = asyncio.Event() if frames is None else _NO_WAKEUP
        # When the next heartbeat is due (loop time), while the socket is in its hub's HeartbeatQueue.
        self.beat_due = 0.0
        # True once the socket is finished for us: overflowed, stopped, or (fast path) closed by the peer. Plain
        # callbacks, not a future: an idle socket then keeps no future, no done-callback list and no handle.
        self._finished = False
        # One callback is kept as it is, more in a list: most sockets have one, and a list costs ~60 bytes each.
        self._finish_callbacks: FinishCallback | list[FinishCallback] | None = None
        if frames is not None:
            frames.on_close(self._finish)

    def attach(self, frames: FrameWriter) -> list[str]:
        """Switch an outbox connection to writing frames; returns the events its outbox held, in order.

        A resumed socket queues live events in the outbox while its replay is read and written; the caller
        writes those that the replay did not cover, then the fast path takes over. No writer task ever runs.
        """
        queued = [event for batch in self._outbox for event in batch]
        self._outbox = _NO_OUTBOX
        self._wakeup = _NO_WAKEUP
        self._buffered = 0
        self.frames = frames
        frames.on_close(self._finish)
        return queued if not self.state else []

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        callbacks, self._finish_callbacks = self._finish_callbacks, None
        if callbacks is not None:
            # Soon, not now: the end may come from inside a loop over the hub's sockets (deliver, close_all),
            # which the callbacks change.
            call_soon = asyncio.get_running_loop().call_soon
            for callback in callbacks if isinstance(callbacks, list) else (callbacks,):
                call_soon(callback, self)

    def on_finish(self, callback: FinishCallback) -> None:
        """Call `callback(connection)` once the socket overflowed, was stopped, or (fast path) was closed by the
        client. It takes the connection, so one function serves every socket (no partial kept per socket).

        Already finished: it runs soon (on the loop), never from inside this call, like a future's callback.
        """
        callbacks = self._finish_callbacks
        if self._finished:
            asyncio.get_running_loop().call_soon(callback, self)
        elif callbacks is None:
            self._finish_callbacks = callback
        elif isinstance(callbacks, list):
            callbacks.append(callback)
        else:
            self._finish_callbacks = [callbacks, callback]

    async def finished(self) -> None:
        """Wait until the socket overflowed, was stopped, or (fast path) was closed by the client."""
        if self._finished:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_connection: DashboardConnection) -> None:
            if not done.done():
                done.set_result(None)

        self.on_finish(wake)
        await done

    @property
    def beating(self) -> bool:
        """Still wants heartbeats: open and not finished."""
        return not (self.state or self._finished)

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

    def heartbeat(self, beat: str, frame: bytes) -> None:
        """Send one heartbeat: `beat` encoded, and `frame` the same as a WebSocket frame (shared by all sockets)."""
        if self.state:  # no longer OPEN
            return
        if self.frames is not None:
            self.write_frames(frame)
        else:
            self.push((beat,), len(beat))

    async def run_writer(self) -> None:
        """Drain the outbox into the socket until cancelled (fast path: just wait, frames need no writer)."""
        if self.frames is not None:
            await self.finished()
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
        self._outbox.clear()
        self._buffered = 0
        self._wakeup.set()
        self._finish()


class HeartbeatQueue:
    """Heartbeats for every socket of a hub on one timer: a heartbeat at start, then one every `interval`.

    All sockets share the interval and join in the order they start, so the FIFO is sorted by due time. A tick
    beats every socket that is due (one encoded beat and one frame for all of them), appends it again due
    `interval` later, and sleeps until the next one is due, but at least `interval / 16`: beats that fall due
    close together go out in one tick. A socket's beats are thus at least `interval` apart and at most
    `interval * 17/16`. A finished socket leaves the queue when it next comes due.
    """

    __slots__ = ("_clock", "_interval", "_loop", "_queue", "_timer")

    def __init__(self, interval: float, clock: Clock) -> None:
        self._interval = interval
        self._clock = clock
        self._queue: deque[DashboardConnection] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def start(self, connection: DashboardConnection) -> None:
        """Send `connection` a heartbeat now and queue it for the next one."""
        beat = wire.heartbeat(self._clock.now_us())
        connection.heartbeat(beat, text_frame(beat))
        if not connection.beating:
            return
        loop = self._loop = asyncio.get_running_loop()
        connection.beat_due = loop.time() + self._interval
        self._queue.append(connection)
        if self._timer is None:
            self._timer = loop.call_at(connection.beat_due, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer = None
        now = loop.time()
        queue = self._queue
        beat = ""
        frame = b""
        while queue and queue[0].beat_due <= now:
            connection = queue.popleft()
            if not connection.beating:
                continue
            if not beat:
                beat = wire.heartbeat(self._clock.now_us())
                frame = text_frame(beat)
            connection.heartbeat(beat, frame)
            if connection.beating:
                connection.beat_due = now + self._interval
                queue.append(connection)
        if queue:
            self._timer = loop.call_at(max(queue[0].beat_due, now + self._interval / 16), self._tick)

    def stop(self) -> None:
        """Cancel the timer and forget every socket."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()


class DashboardHub:
    """All authenticated dashboard sockets of this process, grouped by tenant, and their heartbeats."""

    def __init__(self, *, max_pending: int, heartbeat_interval: float = 15.0, clock: Clock | None = None) -> None:
        self._by_tenant: dict[str, set[DashboardConnection]] = {}
        self.max_pending = max_pending
        self.pending = 0
        self.heartbeats = HeartbeatQueue(heartbeat_interval, clock or SystemClock())
        # One bound method for every fast-path socket's `on_finish`: a partial per socket cost each idle one
        # ~200 bytes (bench.socket_memory).
        self.frames_finished: FinishCallback = self._frames_finished

    def try_reserve_pending(self) -> bool:
        """Count a connection that waits to authenticate; False when the limit is reached."""
        if self.pending >= self.max_pending:
            return False
        self.pending += 1
        return True

    def release_pending(self) -> None:
        self.pending -= 1

    def _frames_finished(self, connection: DashboardConnection) -> None:
        """A fast-path socket is finished: leave the hub, and close it unless the client already did."""
        close = closing(connection)  # None: the client closed the socket
        self.remove(connection)
        connection.stop()
        if close is not None and connection.frames is not None:
            connection.frames.close(*close, SLOW_CLOSE_TIMEOUT)

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
        self.heartbeats.stop()
        for members in self._by_tenant.values():
            for connection in members:
                connection.stop()
        self._by_tenant.clear()


def closing(connection: DashboardConnection) -> tuple[int, str] | None:
    """How a finished socket is closed (the connection's state decides; docs/websocket.md has the codes)."""
    close = connection.close_frame()
    if close is not None and close[0] == CloseCode.SLOW_CONSUMER:
        log.warning("dashboard socket of tenant %s fell behind; closing with 4008", connection.tenant_id)
    return close
