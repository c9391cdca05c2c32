"""A dashboard socket after authentication: the transport, a few slots, and nothing else.

Once the dashboard route has authenticated a socket it detaches it from ASGI (server/ws/protocol.py hands the
transport over with asyncio's public `Transport.set_protocol`). From then on this object is the socket's
protocol: the hub writes pre-built frames shared by all sockets straight to the transport (no task, no `await`
and no encoding per socket), and what the client sends is read by a `FrameReader` (server/ws/frame_reader.py)
only to answer pings and the closing handshake; everything else is dropped.

An idle authenticated socket is then this slotted object and the transport (a reader exists only while a frame
is under way): no ASGI scope, no receive queue, no coroutine, no websockets `ServerProtocol`
(docs/benchmarks.md, M2, has what each part weighs). Only a socket whose handshake `ServerProtocol` held part
of a frame at detach keeps it, as a `HandedOverParser`.

Keepalive: one `Keepalive` timer per server pings every open socket with one shared frame and closes (1011) a
socket that has sent nothing since the previous ping, so a peer that vanished without a FIN is found within
one to two ping intervals, at the cost of one timer per process instead of one per socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from websockets.frames import Close, Frame, Opcode
from websockets.server import ServerProtocol

from haltless.server.ws.frame_reader import CloseReceived, Event, Failed, FrameReader, PingReceived

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


class HandedOverParser:
    """Frames still read by the handshake's `ServerProtocol`, in the rare case it holds part of one at detach.

    websockets buffers the bytes of a frame it has not finished and offers no public way to take them back, so
    such a socket keeps its ServerProtocol as a parser only; its answers are the socket's to write, as with a
    FrameReader, so the socket has one close path for both.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: ServerProtocol) -> None:
        self._conn = conn

    def feed(self, data: bytes) -> Sequence[Event]:
        conn = self._conn
        conn.receive_data(data)
        events: list[Event] = []
        for event in conn.events_received():
            if not isinstance(event, Frame):
                continue
            if event.opcode is Opcode.PING:
                events.append(PingReceived(bytes(event.data)))
            elif event.opcode is Opcode.CLOSE and conn.close_rcvd is not None:
                events.append(CloseReceived(int(conn.close_rcvd.code), conn.close_rcvd.reason, bytes(event.data)))
            else:
                # Text and binary frames are ignored by contract; websockets' parser keeps the last frame it
                # read until the next one: drop its payload now.
                event.data = b""
        # Its pongs and close frames: the socket writes its own.
        conn.data_to_send()
        if conn.parser_exc is not None and conn.close_sent is not None:
            events.append(Failed(int(conn.close_sent.code), conn.close_sent.reason))
        return events


class DetachedSocket(asyncio.Protocol, Pingable):
    """The protocol of an authenticated dashboard socket; also the hub's `FrameWriter` for it."""

    __slots__ = (
        "_callbacks",
        "_close_rcvd",
        "_close_sent",
        "_close_timer",
        "_connections",
        "_keepalive",
        "_max_size",
        "_reader",
        "_unanswered",
        "transport",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        handed_over: HandedOverParser | None,
        max_size: int | None,
        keepalive: Keepalive,
        connections: set[object],
    ) -> None:
        self.transport = transport
        # What reads the client's frames. A FrameReader only while a frame or message is under way: between
        # frames it holds nothing worth keeping, and most sockets are idle (a reader per burst of frames costs
        # less than one kept by every socket). A HandedOverParser is kept for the connection's life.
        self._reader: FrameReader | HandedOverParser | None = handed_over
        self._max_size = max_size
        self._keepalive = keepalive
        # uvicorn's set of open connections: it calls `shutdown()` on each when the server stops and waits for
        # the set to empty, so a detached socket must be in it until its connection is lost.
        self._connections = connections
        # Made on the first `on_close`: most sockets get one callback, some none.
        self._callbacks: list[Callable[[], None]] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._unanswered = False
        # The closing handshake, one fact each: our close frame is written, the peer's close frame arrived.
        self._close_sent = False
        self._close_rcvd = False
        connections.add(self)
        keepalive.add(self)

    # The hub's FrameWriter

    @property
    def open(self) -> bool:
        """True while frames may still be written (no close frame sent, transport not closing)."""
        return not self._close_sent and not self.transport.is_closing()

    def write(self, frames: bytes) -> None:
        """Queue complete frames; the transport sends what it can now and buffers the rest."""
        if not self._close_sent and not self.transport.is_closing():
            self.transport.write(frames)

    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel: what this socket is behind by."""
        return self.transport.get_write_buffer_size()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once when the peer closes, the connection is lost, or it is already gone."""
        if self._close_rcvd or self.transport.is_closing():
            callback()
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def close(self, code: int, reason: str, timeout: float) -> None:
        """Send a close frame after whatever is buffered; drop the connection if it is not gone in `timeout`."""
        if not self.open:
            return
        self._send_close(code, reason)
        # abort, not close: close() would wait for a client that stopped reading to drain its buffer forever.
        self._close_timer = asyncio.get_running_loop().call_later(timeout, self.transport.abort)

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self._unanswered = False
        if self._close_rcvd or self.transport.is_closing():
            return  # after a close or a failure the rest is discarded (RFC 6455, 1.4 and 7.1.7)
        reader = self._reader
        if reader is None:
            reader = FrameReader(self._max_size)
        events = reader.feed(data)
        self._reader = None if isinstance(reader, FrameReader) and reader.idle else reader
        for event in events:
            if isinstance(event, PingReceived):
                # RFC 6455 allows control frames after our close frame; websockets answers those pings too.
                self.transport.write(Frame(Opcode.PONG, event.payload).serialize(mask=False))
            elif isinstance(event, CloseReceived):
                self._close_rcvd = True
                if not self._close_sent:
                    # Echo the received payload as is: an empty close gets an empty close (1005 is not sendable).
                    self._close_sent = True
                    self.transport.write(Frame(Opcode.CLOSE, event.payload).serialize(mask=False))
                self._close_tcp()
                return
            else:
                self._fail(event.code, event.reason)
                return

    def eof_received(self) -> bool | None:
        self._reader = None
        self._ended()
        return None  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._reader = None
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
            self._send_close(*SHUTDOWN_CLOSE)
        # uvicorn waits for its connections to go; a client that does not answer the close must not hold it.
        self.transport.close()

    def keepalive(self) -> None:
        if not self.open:
            return
        if self._unanswered:
            log.info("a dashboard socket did not answer a ping for a whole interval; closing it with 1011")
            self._fail(*KEEPALIVE_CLOSE)
            return
        self._unanswered = True
        self.transport.write(PING_FRAME)

    # Closing

    def _send_close(self, code: int, reason: str) -> None:
        self._close_sent = True
        self.transport.write(Frame(Opcode.CLOSE, Close(code, reason).serialize()).serialize(mask=False))

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455, 7.1.7): a close frame unless one was sent, then close TCP at once."""
        self._reader = None
        if not self._close_sent:
            self._send_close(code, reason)
        self._close_tcp()

    def _close_tcp(self) -> None:
        """The closing handshake is done or failed: the server closes TCP first (RFC 6455, 7.1.1)."""
        self._reader = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self.transport.close()
        self._ended()

    def _ended(self) -> None:
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback()
