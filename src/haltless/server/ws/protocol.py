"""The WebSocket protocol `haltless serve` runs under uvicorn, on public interfaces only.

uvicorn takes a WebSocket protocol class in its `ws` setting and, when an HTTP request asks for an upgrade,
hands the connection to a new instance: `Class(config=, server_state=, app_state=)`, then `connection_made`,
`Transport.set_protocol` and `data_received` with the request. This class speaks that contract, runs the
opening handshake and the messages through websockets' public sans-I/O `ServerProtocol`, and bridges them to
the ASGI app (ASGI WebSocket spec 2.4, the "websocket.http.response" extension included).

What it adds: the FastAPI route may *detach* an accepted socket (`DETACH` in the scope's extensions). The ASGI
coroutine then returns without closing it, this object hands the transport to a `DetachedSocket`
(server/ws/socket.py) and is dropped with its scope, queue and handshake. Dashboards use it after
authentication, so every open dashboard, live or resumed, is written to one way: frames straight to the
transport. tests/server/test_ws_protocol.py checks the contract with uvicorn.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import weakref
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import SEND_EOF
from websockets.server import ServerProtocol

from haltless.server.ws.socket import SHUTDOWN_CLOSE, DetachedSocket, HandedOverParser, Keepalive, Pingable

# The key under scope["extensions"] of a callable that detaches the accepted socket and returns its new
# protocol (a DetachedSocket: the hub's FrameWriter). After calling it the app must not use the socket again.
DETACH = "haltless.detach"

# How long a close handshake we started may take before the connection is dropped.
CLOSE_TIMEOUT = 10.0
# Messages the app has not read yet before we stop reading the socket (backpressure on the client).
MAX_QUEUED_MESSAGES = 16

_access = logging.getLogger("uvicorn.error")

# One keepalive timer per running server (uvicorn's ServerState), shared by every socket it accepts.
_keepalives: weakref.WeakKeyDictionary[object, Keepalive] = weakref.WeakKeyDictionary()


def keepalive_of(server_state: object) -> Keepalive:
    """The keepalive timer of a running server (tests drive it with `ping_all`)."""
    return _keepalives[server_state]


class SocketClosed(OSError):
    """Raised by `send` once the connection is gone (ASGI 2.4: Starlette turns an OSError into a disconnect)."""


def _keepalive_for(server_state: object, interval: float | None) -> Keepalive:
    keepalive = _keepalives.get(server_state)
    if keepalive is None:
        keepalive = _keepalives[server_state] = Keepalive(interval, asyncio.get_running_loop())
    return keepalive


def _address(info: Any) -> tuple[str, int] | None:
    # A TCP socket's (host, port, ...) as ASGI wants it; None for a Unix socket or an unknown peer.
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


class UnparsedBytes:
    """Bytes fed to a ServerProtocol's frame parser that are not yet part of a frame it returned.

    0 means it holds no partial frame, so a detached socket can read on with a FrameReader from the next byte.
    Counted from the end of the upgrade request (`value` is None until websockets has parsed the request).
    """

    __slots__ = ("_tail", "value")

    def __init__(self) -> None:
        self.value: int | None = None
        # The last 3 bytes fed before the request was complete, where its final CRLFCRLF may begin.
        self._tail = b""

    def count(self, data: bytes, events: Sequence[object]) -> None:
        """`data` was fed to the ServerProtocol, which returned `events` (Request and Frame objects)."""
        if self.value is None:
            if not events:
                self._tail = (self._tail + data)[-3:]
                return
            # websockets reads a request without a body, up to its first empty line: the stream's first
            # CRLFCRLF ends it (a header line cannot hold one), and its parser took what follows as frames.
            # (uvicorn hands the request over rebuilt, without what followed it, so today this is 0.)
            window = self._tail + data
            self._tail = b""
            request_end = window.find(b"\r\n\r\n") + 4 - len(window) + len(data)
            value = len(data) - request_end
        else:
            value = self.value + len(data)
        for event in events:
            if isinstance(event, Frame):
                # A client frame on the wire: 2 header bytes, the extended length, the 4-byte mask, the payload
                # (no extension is negotiated, so the parsed payload has the wire payload's length).
                n = len(event.data)
                value -= 6 + n + (0 if n < 126 else 2 if n < 65536 else 8)
        self.value = value


class WebSocketProtocol(asyncio.Protocol, Pingable):
    """One WebSocket connection from the upgrade request until it closes or is detached."""

    def __init__(
        self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.root_path: str = config.root_path
        self.asgi_version: str = config.asgi_version
        self.app_state = app_state
        self.connections: set[object] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.default_headers: list[tuple[bytes, bytes]] = server_state.default_headers
        self.keepalive_set = _keepalive_for(server_state, config.ws_ping_interval)
        # No `extensions`: permessage-deflate is never negotiated, so frames are what is on the wire (the
        # FrameReader a detached socket gets relies on it).
        self.max_size: int | None = config.ws_max_size
        self.conn = ServerProtocol(max_size=self.max_size, logger=_access)
        self.transport: asyncio.Transport = cast(asyncio.Transport, None)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.writable = asyncio.Event()
        self.writable.set()
        self.scope: dict[str, Any] = {}
        self.response: Response | None = None
        self.request: Request | None = None
        self.denial: tuple[int, list[tuple[str, str]], bytes] | None = None
        # One state per fact: accepted (101 sent), answered (an HTTP answer instead of 101), detached, gone.
        self.accepted = False
        self.answered = False
        self.detached = False
        self.gone = False
        self.read_paused = False
        self.unanswered = False
        self.close_timer: asyncio.TimerHandle | None = None
        self.message: list[bytes] = []
        self.message_is_text = False
        self.unparsed = UnparsedBytes()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.unanswered = False
        conn = self.conn
        conn.receive_data(data)
        if conn.handshake_exc is not None and self.response is None:
            # websockets could not parse the upgrade request; it queued a 414/431 for exceeded limits.
            self.answered = True
            output = b"".join(conn.data_to_send())
            self.transport.write(output or conn.reject(400, "Invalid WebSocket upgrade request.\n").serialize())
            self.transport.close()
            return
        events = conn.events_received()
        self.unparsed.count(data, events)
        for event in events:
            if isinstance(event, Request):
                self._upgrade_requested(event)
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()

    def eof_received(self) -> bool | None:
        self.conn.receive_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.keepalive_set.discard(self)
        self.gone = True
        # asyncio never calls resume_writing on a transport lost while paused: unblock any send().
        self.writable.set()
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # uvicorn and the keepalive timer

    def shutdown(self) -> None:
        if self.accepted and not self.answered and self.conn.close_sent is None:
            self.queue.put_nowait({"type": "websocket.disconnect", "code": SHUTDOWN_CLOSE[0]})
            self.conn.send_close(*SHUTDOWN_CLOSE)
            self.transport.write(b"".join(self.conn.data_to_send()))
        elif not self.accepted and not self.answered:
            self._reject(500, "Internal Server Error")
        self.transport.close()

    def keepalive(self) -> None:
        if self.conn.close_sent is not None or self.transport.is_closing():
            return
        if self.unanswered:
            self.conn.fail(1011, "keepalive ping timeout")
            self._flush()
            return
        self.unanswered = True
        try:
            self.conn.send_ping(b"")
        except InvalidState:  # the peer's close arrived and is being answered: nothing to keep alive
            return
        self._flush()

    # Incoming

    def _upgrade_requested(self, request: Request) -> None:
        response = self.conn.accept(request)
        if response.status_code != 101:
            # Not a valid upgrade (websockets says why in the body): answer it without running the app.
            self.answered = True
            self.conn.send_response(response)
            self._flush()
            self.transport.close()
            return
        self.response = response
        self.request = request
        raw_path, _, query_string = request.path.partition("?")
        subprotocols = [
            token.strip() for header in request.headers.get_all("Sec-WebSocket-Protocol") for token in header.split(",")
        ]
        transport = self.transport
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if transport.get_extra_info("sslcontext") else "ws",
            "server": _address(transport.get_extra_info("sockname")),
            "client": _address(transport.get_extra_info("peername")),
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": self.root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query_string.encode("ascii"),
            # websockets 17 documents header values as ISO-8859-1 text.
            "headers": [
                (name.lower().encode("ascii"), value.encode("latin-1")) for name, value in request.headers.raw_items()
            ],
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}, DETACH: self._detach},
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = asyncio.get_running_loop().create_task(self._run_app())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self.message_is_text = opcode is Opcode.TEXT
            self.message = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self.message.append(bytes(frame.data))
        elif opcode is Opcode.CLOSE:
            # The ServerProtocol answers the close (or completes ours); _flush then closes TCP on SEND_EOF.
            close = self.conn.close_rcvd
            code, reason = (close.code, close.reason) if close is not None else (1005, "")
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            return
        else:
            return  # ping (answered by the ServerProtocol) or pong
        if frame.fin:
            self._message_complete()

    def _message_complete(self) -> None:
        data = self.message[0] if len(self.message) == 1 else b"".join(self.message)
        self.message = []
        if self.conn.close_sent is not None:
            return  # the app is past websocket.close: reading goes on until the peer's close arrives
        if self.message_is_text:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.conn.fail(1007, "invalid UTF-8 in a text message")
                self.queue.put_nowait({"type": "websocket.disconnect", "code": 1007, "reason": ""})
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if self.queue.qsize() >= MAX_QUEUED_MESSAGES and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    # The ASGI app

    async def _run_app(self) -> None:
        try:
            result = await self.app(self.scope, self._receive, self._send)
        except SocketClosed:
            pass
        except BaseException:
            _access.exception("Exception in ASGI application\n")
            if not self.accepted and not self.answered:
                self._reject(500, "Internal Server Error")
            elif self.accepted and not self.detached and self.conn.close_sent is None:
                self._close_frame(1011, "")
        else:
            if not self.accepted and not self.answered:
                _access.error("ASGI callable returned without completing handshake.")
                self._reject(500, "Internal Server Error")
            elif result is not None:
                _access.error("ASGI callable should return None, but returned '%s'.", result)
        if self.detached:
            return
        if self.accepted and not self.answered and self.conn.close_sent is None and not self.gone:
            # The app returned without closing: close normally rather than leave the client hanging.
            self._close_frame(1000, "")
        elif self.close_timer is None:
            self.transport.close()

    async def _receive(self) -> dict[str, Any]:
        message = await self.queue.get()
        if self.read_paused and self.queue.qsize() < MAX_QUEUED_MESSAGES // 2:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    async def _send(self, message: dict[str, Any]) -> None:
        await self.writable.wait()
        if self.gone or self.detached:
            raise SocketClosed("the WebSocket connection is closed")
        kind = message["type"]
        if self.denial is not None:
            self._denial_body(message)
        elif not self.accepted and not self.answered:
            self._handshake_reply(message)
        elif self.answered:
            raise RuntimeError(f"Unexpected ASGI message {kind!r}: the handshake was answered with HTTP.")
        elif kind == "websocket.send":
            text, data = message.get("text"), message.get("bytes")
            try:
                if data is not None:
                    self.conn.send_binary(data)
                elif text is not None:
                    self.conn.send_text(text.encode())
                else:
                    raise RuntimeError("websocket.send needs 'text' or 'bytes'")
            except InvalidState:
                raise SocketClosed("the WebSocket connection is closing") from None
            self._flush()
        elif kind == "websocket.close":
            if self.conn.close_sent is not None:
                raise RuntimeError("Unexpected ASGI message 'websocket.close', after sending 'websocket.close'.")
            self._close_frame(message.get("code", 1000), message.get("reason") or "")
        else:
            raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got {kind!r}.")

    def _handshake_reply(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        query = self.scope["query_string"].decode("ascii")
        path = self.scope["path"] + (f"?{query}" if query else "")
        client = self.scope["client"]
        client_text = f"{client[0]}:{client[1]}" if client else ""
        if kind == "websocket.accept":
            _access.info('%s - "WebSocket %s" [accepted]', client_text, path)
            response = self.response
            assert response is not None
            headers = [
                (name.decode("latin-1").lower(), value.decode("latin-1"))
                for name, value in (*self.default_headers, *message.get("headers", ()))
            ]
            if message.get("subprotocol"):
                headers.append(("Sec-WebSocket-Protocol", message["subprotocol"]))
            del response.headers["Date"]
            response.headers.update(headers)
            if self.transport.is_closing():
                raise SocketClosed("the client left during the handshake")
            self.accepted = True
            self.conn.send_response(response)
            self._flush()
            self.response = None
            self.keepalive_set.add(self)
        elif kind == "websocket.close":
            # Closing before accepting answers the upgrade with 403 (ASGI spec).
            _access.info('%s - "WebSocket %s" 403', client_text, path)
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
            self._reject(HTTPStatus.FORBIDDEN, "")
        elif kind == "websocket.http.response.start":
            status = message["status"]
            if not 100 <= status < 600:
                raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
            _access.info('%s - "WebSocket %s" %d', client_text, path, status)
            headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in message.get("headers", ())]
            self.denial = (status, headers, b"")
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' or 'websocket.http.response.start' "
                f"but got {kind!r}."
            )

    def _denial_body(self, message: dict[str, Any]) -> None:
        assert self.denial is not None
        if message["type"] != "websocket.http.response.body":
            raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got {message['type']!r}.")
        status, headers, body = self.denial
        body += message.get("body", b"")
        self.denial = (status, headers, body)
        if message.get("more_body", False):
            return
        response_headers = Headers(headers)
        response_headers.setdefault("Date", email.utils.formatdate(usegmt=True))
        response_headers.setdefault("Connection", "close")
        response_headers.setdefault("Content-Length", str(len(body)))
        response_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self.answered = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
        self.conn.send_response(Response(status, _phrase(status), response_headers, body))
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    # Writing

    def _reject(self, status: int, text: str) -> None:
        self.answered = True
        self.conn.send_response(self.conn.reject(status, text))
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    def _close_frame(self, code: int, reason: str) -> None:
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self._flush()
        if self.read_paused:
            # Read on, so the peer's answering close frame is seen.
            self.read_paused = False
            self.transport.resume_reading()
        if not self.transport.is_closing():
            self.close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.transport.abort)

    def _flush(self) -> None:
        """Write what the ServerProtocol queued; close TCP when it ends with SEND_EOF (see DetachedSocket)."""
        writes = self.conn.data_to_send()
        if not writes:
            return
        self.transport.write(b"".join(writes))
        if writes[-1] == SEND_EOF:
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            self.transport.close()

    # Detaching

    def _detach(self) -> DetachedSocket:
        """Hand the transport to a DetachedSocket; the app's coroutine returns and this object is dropped."""
        if not self.accepted or self.gone or self.detached or self.conn.close_sent is not None:
            raise SocketClosed("only an open, accepted socket can be detached")
        self.detached = True
        self.connections.discard(self)
        self.keepalive_set.discard(self)
        # The normal case (the client sent only its auth message) leaves the ServerProtocol between frames and
        # messages: a FrameReader reads on from there. Otherwise it holds bytes of a frame, with no public way
        # to take them back, and goes on parsing for the socket.
        at_boundary = self.unparsed.value == 0 and not self.message
        handed_over = None if at_boundary else HandedOverParser(self.conn)
        socket = DetachedSocket(self.transport, handed_over, self.max_size, self.keepalive_set, self.connections)
        self.transport.set_protocol(socket)
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # Drop what only the ASGI phase needed; the app's task holds this object until it returns.
        # websockets' parser keeps the upgrade request for the connection's life (a local of its generator):
        # empty its headers in case a HandedOverParser keeps it (Headers.clear is public API).
        if self.request is not None:
            self.request.headers.clear()
            self.request = None
        self.scope = {}
        self.app_state = {}
        self.message = []
        return socket


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
