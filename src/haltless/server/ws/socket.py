"""A dashboard socket after authentication: the transport, websockets' `ServerProtocol`, and nothing else.

Once the dashboard route has authenticated a socket it detaches it from ASGI (server/ws/protocol.py hands the
transport over with asyncio's public `Transport.set_protocol`). From then on this object is the socket's
protocol: the hub writes pre-built frames shared by all sockets straight to the transport (no task, no `await`
and no encoding per socket), and what the client sends is parsed by websockets' public sans-I/O
`ServerProtocol` only to answer pings and the closing handshake; everything else is dropped.

An idle authenticated socket is then this slotted object, the `ServerProtocol` and the transport: no ASGI
scope, no receive queue, no coroutine (docs/benchmarks.md, M2, has what each part weighs).

Keepalive: one `Keepalive` timer per server pings every open socket with one shared frame and closes (1011) a
socket that has sent nothing since the previous ping, so a peer that vanished without a FIN is found within
one to two ping intervals, at the cost of one timer per process instead of one per socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from websockets.frames import Frame, Opcode
from websockets.protocol import SEND_EOF
from websockets.server import ServerProtocol

log = logging.getLogger("haltless.ws")

# A ping frame from server to client (FIN, opcode 9, unmasked, empty payload): the same bytes for every socket.
PING_FRAME = b"\x89\x00"

# Close code and reason for a peer that did not answer a ping for a whole interval (RFC 6455: 1011, as
# websockets' own keepalive uses).
KEEPALIVE_CLOSE = (1011, "keepalive ping timeout")
# What every open socket is told when the server shuts down (uvicorn's choice for its own sockets: "restart").
SHUTDOWN_CLOSE = (1012, "")


class Pingable:
    """What the keepalive timer needs of a socket (both protocol phases implement it)."""

    __slots__ = ()

    def keepalive(self) -> None:
        raise NotImplementedError


class Keepalive:
    """One timer per server: every `interval`, ping every registered socket or close those that never answered."""

    __slots__ = ("_interval", "_loop", "_sockets", "_timer")

    def __init__(self, interval: float | None, loop: asyncio.AbstractEventLoop) -> None:
        self._interval = interval if interval and interval > 0 else None
        self._loop = loop
        self._sockets: set[Pingable] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._sockets)

    def add(self, socket: Pingable) -> None:
        if self._interval is None:
            return
        self._sockets.add(socket)
        if self._timer is None:
            self._timer = self._loop.call_later(self._interval, self.ping_all)

    def discard(self, socket: Pingable) -> None:
        self._sockets.discard(socket)

    def ping_all(self) -> None:
        """One round (the timer's; tests call it to drive the keepalive without waiting)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # A socket may close (and leave the set) while we ping another: iterate over a copy.
        for socket in list(self._sockets):
            socket.keepalive()
        if self._sockets and self._interval is not None:
            self._timer = self._loop.call_later(self._interval, self.ping_all)


class DetachedSocket(asyncio.Protocol, Pingable):
    """The protocol of an authenticated dashboard socket; also the hub's `FrameWriter` for it."""

    __slots__ = (
        "_callbacks",
        "_close_timer",
        "_conn",
        "_connections",
        "_keepalive",
        "_unanswered",
        "transport",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        conn: ServerProtocol,
        keepalive: Keepalive,
        connections: set[object],
    ) -> None:
        self.transport = transport
        self._conn = conn
        self._keepalive = keepalive
        # uvicorn's set of open connections: it calls `shutdown()` on each when the server stops and waits for
        # the set to empty, so a detached socket must be in it until its connection is lost.
        self._connections = connections
        # Made on the first `on_close`: most sockets get one callback, some none.
        self._callbacks: list[Callable[[], None]] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._unanswered = False
        connections.add(self)
        keepalive.add(self)

    # The hub's FrameWriter

    @property
    def open(self) -> bool:
        """True while frames may still be written (no close frame sent, transport not closing)."""
        return self._conn.close_sent is None and not self.transport.is_closing()

    def write(self, frames: bytes) -> None:
        """Queue complete frames; the transport sends what it can now and buffers the rest."""
        if self._conn.close_sent is None and not self.transport.is_closing():
            self.transport.write(frames)

    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel: what this socket is behind by."""
        return self.transport.get_write_buffer_size()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once when the peer closes, the connection is lost, or it is already gone."""
        if self._conn.close_rcvd is not None or self.transport.is_closing():
            callback()
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def close(self, code: int, reason: str, timeout: float) -> None:
        """Send a close frame after whatever is buffered; drop the connection if it is not gone in `timeout`."""
        if not self.open:
            return
        self._conn.send_close(code, reason)
        self._flush()
        # abort, not close: close() would wait for a client that stopped reading to drain its buffer forever.
        self._close_timer = asyncio.get_running_loop().call_later(timeout, self.transport.abort)

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self._unanswered = False
        conn = self._conn
        conn.receive_data(data)
        for event in conn.events_received():
            if isinstance(event, Frame) and event.opcode is not Opcode.CLOSE:
                # Pings are answered by the ServerProtocol itself (in data_to_send); text and binary frames
                # after the token are ignored by contract (docs/websocket.md). websockets' parser keeps the
                # last frame it read until the next one: drop its payload now.
                event.data = b""
        self._flush()
        if conn.close_rcvd is not None or conn.parser_exc is not None:
            self._ended()

    def eof_received(self) -> bool | None:
        self._conn.receive_eof()
        self._ended()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._keepalive.discard(self)
        self._connections.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._ended()

    # uvicorn and the keepalive timer

    def shutdown(self) -> None:
        """The server is stopping: close with 1012 unless a close is already under way."""
        if self.open:
            self._conn.send_close(*SHUTDOWN_CLOSE)
            self._flush()
        # uvicorn waits for its connections to go; a client that does not answer the close must not hold it.
        self.transport.close()

    def keepalive(self) -> None:
        if not self.open:
            return
        if self._unanswered:
            log.info("a dashboard socket did not answer a ping for a whole interval; closing it with 1011")
            self._conn.fail(*KEEPALIVE_CLOSE)
            self._flush()  # fail() ends with SEND_EOF: the transport closes after the close frame
            return
        self._unanswered = True
        self.transport.write(PING_FRAME)

    def _flush(self) -> None:
        """Write what the ServerProtocol has queued (pongs, close frames); close TCP when it asks to.

        websockets ends the queue with an empty write (SEND_EOF) once the closing handshake is complete or the
        connection failed: the server then closes the TCP connection first (RFC 6455, 7.1.1).
        """
        writes = self._conn.data_to_send()
        if not writes:
            return
        self.transport.write(b"".join(writes))
        if writes[-1] == SEND_EOF:
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            self.transport.close()

    def _ended(self) -> None:
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback()
