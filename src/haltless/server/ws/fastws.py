"""The WebSocket protocol `haltless serve` runs: uvicorn's sans-I/O protocol plus a frame sink for dashboards.

Per-message ASGI `send` costs a task wake-up, an `await` and a frame build per socket per event. After the
dashboard route has accepted and authenticated a socket through plain ASGI, it asks for the `FrameSink`
(published in the scope's extensions under FRAME_SINK) and from then on writes pre-built frames shared by
all sockets straight to the transport: no task, no await and no encoding per socket. Close codes, pings and
the closing handshake stay with uvicorn's protocol; the sink only adds writes of whole frames, which cannot
interleave with uvicorn's own whole-frame writes because both run synchronously on the one event loop.

The route then *detaches* the socket: its ASGI coroutine returns and the protocol keeps the connection open,
driven by callbacks (hub → sink writes, close → hub removal). An idle dashboard socket then costs the
protocol objects and no coroutine stack of the framework (about half its memory; see docs/benchmarks.md, M2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.http11 import Request

# The key under scope["extensions"] where the dashboard route finds the sink.
FRAME_SINK = "haltless.frame_sink"


class _Nothing:
    """Stands in for the ASGI receive queue and the `writable` event of a detached socket.

    Nobody reads them once the app has returned, so one shared object saves each socket a Queue and an Event
    (about 3 KiB); uvicorn still calls put_nowait/set/clear on them, which must do nothing.
    """

    def put_nowait(self, _message: object) -> None:
        return None

    def set(self) -> None:
        return None

    def clear(self) -> None:
        return None


_NOTHING = _Nothing()


class FrameSink:
    """Direct access to one socket's transport for complete, pre-built server frames."""

    __slots__ = ("_callbacks", "_protocol")

    def __init__(self, protocol: DashboardWSProtocol) -> None:
        self._protocol = protocol
        self._callbacks: list[Callable[[], None]] = []

    @property
    def open(self) -> bool:
        """True while frames may still be written (no close frame sent, transport not closing)."""
        protocol = self._protocol
        return not (protocol.close_sent or protocol.disconnected or protocol.transport.is_closing())

    def write(self, frames: bytes) -> None:
        """Queue complete frames; the transport sends what it can now and buffers the rest."""
        if self.open:
            self._protocol.transport.write(frames)

    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel: what this socket is behind by."""
        size: int = self._protocol.transport.get_write_buffer_size()
        return size

    def discard_incoming(self) -> None:
        """Drop what the client sends from now on, and never pause reading (pings and close still work)."""
        self._protocol.discard_incoming()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once when the peer closes or the connection is lost."""
        if self._protocol.disconnected or self._protocol.peer_closed:
            callback()
        else:
            self._callbacks.append(callback)

    def detach(self) -> None:
        """Keep the connection open after the ASGI app returns; callbacks drive it from now on."""
        self._protocol.detached = True

    def close(self, code: int, reason: str, timeout: float) -> None:
        """Send a close frame after whatever is buffered; drop the connection if it is not gone in `timeout`."""
        self._protocol.close_after_buffered(code, reason, timeout)

    def _closed(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


class DashboardWSProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol, publishing a FrameSink to the app for every upgraded socket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = FrameSink(self)
        self.peer_closed = False
        self.detached = False
        self._discarding = False

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            # The app task was only scheduled, so it sees the extension when it first reads the scope.
            scope["extensions"][FRAME_SINK] = self.sink

    def discard_incoming(self) -> None:
        self._discarding = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def send_receive_event_to_app(self) -> None:
        if self._discarding:
            # Nobody reads the ASGI queue any more; queueing would grow it and pause reading for good.
            self.frames = []
            return
        super().send_receive_event_to_app()

    def handle_close(self, event: Frame) -> None:
        super().handle_close(event)
        self.peer_closed = True
        self.sink._closed()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.sink._closed()

    async def run_asgi(self) -> None:
        # uvicorn's run_asgi (0.3x-0.5x), except that a detached socket stays open when the app returns.
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.detached and not self.close_sent and not self.disconnected:
            # The handshake objects are never read again; dropping them is most of what a socket weighs.
            self.scope = None  # type: ignore[assignment]
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            self.queue = _NOTHING  # type: ignore[assignment]
            self.writable = _NOTHING  # type: ignore[assignment]
            return
        if self.close_timer is None:
            self.transport.close()

    def close_after_buffered(self, code: int, reason: str, timeout: float) -> None:
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # abort, not close: close() would wait for a client that stopped reading to drain its buffer forever.
        self.close_timer = self.loop.call_later(timeout, self.transport.abort)
