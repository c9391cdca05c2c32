"""server/ws/protocol.py and server/ws/socket.py: our WebSocket protocol under uvicorn, on public interfaces only.

uvicorn's side of the contract is its `ws` setting: it builds the class with (config, server_state, app_state),
calls `connection_made`, `Transport.set_protocol` and `data_received`, and `shutdown()` when it stops. These tests
run the real server and talk to it with websockets' own client, or with a raw client on websockets' sans-I/O
`ClientProtocol` where a test must decide exactly what is sent (no automatic pongs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from haltless.server.ws.frame_reader import FrameReader
from haltless.server.ws.protocol import UnparsedBytes, WebSocketProtocol, keepalive_of
from haltless.server.ws.socket import DetachedSocket, HandedOverParser
from haltless.settings import Settings
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, start_server

T = TypeVar("T")


def on_server_loop(running: RunningServer, call: Callable[[], T]) -> T:
    """Run `call` on the server's own loop (it lives in another thread) and return what it returns."""
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(call())
        except BaseException as exc:  # handed to the test thread
            done.set_exception(exc)

    running.server.servers[0].get_loop().call_soon_threadsafe(run)
    return done.result(timeout=EVENT_TIMEOUT)


class RawClient:
    """A WebSocket client that sends only what the test asks for: pongs too are the test's decision."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.events: list[Any] = []

    @classmethod
    async def connect(cls, url: str) -> RawClient:
        uri = parse_uri(url)
        protocol = ClientProtocol(uri)
        reader, writer = await asyncio.open_connection(uri.host, uri.port)
        client = cls(reader, writer, protocol)
        protocol.send_request(protocol.connect())
        writer.write(b"".join(protocol.data_to_send()))
        response = await client.next_event()
        assert isinstance(response, Response) and response.status_code == 101, response
        return client

    async def next_event(self) -> Any:
        """The next thing the server sent (a Response or a Frame), or None once the connection is closed."""
        async with asyncio.timeout(EVENT_TIMEOUT):
            while not self.events:
                data = await self.reader.read(65536)
                if data:
                    self.protocol.receive_data(data)
                else:
                    self.protocol.receive_eof()
                self.events.extend(self.protocol.events_received())
                # websockets queues a pong for every ping it reads: drop it, tests send their own.
                self.protocol.data_to_send()
                if not data and not self.events:
                    return None
        return self.events.pop(0)

    async def next_frame(self, *skip: Opcode) -> Frame:
        while True:
            event = await self.next_event()
            assert event is not None, "the server closed the connection"
            if isinstance(event, Frame) and event.opcode not in skip:
                return event

    def send(self, opcode: Opcode, data: bytes) -> None:
        self.protocol.send_frame(Frame(opcode, data))
        self.writer.write(b"".join(self.protocol.data_to_send()))

    async def authenticate(self, token: str) -> None:
        self.send(Opcode.TEXT, token.encode())
        first = await self.next_frame(Opcode.PING)
        assert orjson.loads(first.data)["type"] == "heartbeat"

    async def eof(self) -> None:
        """Wait until the server closes the TCP connection."""
        async with asyncio.timeout(EVENT_TIMEOUT):
            while await self.reader.read(65536):
                pass

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are: for frames websockets' client refuses to build, or a frame cut in pieces."""
        self.writer.write(data)

    async def close_code(self) -> int:
        """The code of the close frame the server sends next (pings and text skipped)."""
        close = await self.next_frame(Opcode.PING, Opcode.TEXT)
        assert close.opcode is Opcode.CLOSE, close
        return Close.parse(bytes(close.data)).code

    def close(self) -> None:
        self.writer.close()


def _detached(running: RunningServer) -> list[DetachedSocket]:
    def sockets() -> list[DetachedSocket]:
        return [c for c in running.server.server_state.connections if isinstance(c, DetachedSocket)]

    return on_server_loop(running, sockets)


def _socket_of(running: RunningServer, client: RawClient) -> DetachedSocket:
    """The server's side of `client`'s connection, once it is detached."""
    address = client.writer.get_extra_info("sockname")
    (socket,) = [s for s in _detached(running) if s.transport.get_extra_info("peername") == address]
    return socket


def masked_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, masked: bool = True) -> bytes:
    """A client frame built by hand (payload under 126 bytes), so it may break the rules."""
    head = bytes(((0x80 if fin else 0) | opcode, (0x80 if masked else 0) | len(payload)))
    return head + b"\x00\x00\x00\x00" + payload if masked else head + payload


async def _authenticated(running: RunningServer, tenant: Tenant) -> RawClient:
    client = await RawClient.connect(running.ws_url)
    await client.authenticate(tenant.access_token)
    return client


def test_the_class_takes_the_arguments_uvicorn_passes() -> None:
    parameters = inspect.signature(WebSocketProtocol).parameters
    assert [name for name in parameters if not name.startswith("_")] == ["config", "server_state", "app_state"]
    for method in ("connection_made", "data_received", "connection_lost", "shutdown"):
        assert callable(getattr(WebSocketProtocol, method))
    assert callable(DetachedSocket.shutdown)


async def test_live_and_resumed_dashboards_are_both_detached_sockets(server: RunningServer, tenant: Tenant) -> None:
    async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as live:
        await live.send(tenant.access_token)
        assert orjson.loads(await asyncio.wait_for(live.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
        async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as resumed:
            await resumed.send(orjson.dumps({"token": tenant.access_token, "resume_after": "0-0"}).decode())
            assert orjson.loads(await asyncio.wait_for(resumed.recv(), EVENT_TIMEOUT))["type"] == "heartbeat"
            sockets = _detached(server)
            assert len(sockets) == 2
            # What an idle socket keeps: slots only, no instance dict (docs/benchmarks.md, M2).
            assert not any(hasattr(socket, "__dict__") for socket in sockets)
            # ... and no callback object of its own: both share the hub's one finish callback.
            hub = server.state.hub
            connections = [c for members in hub._by_tenant.values() for c in members]
            assert len(connections) == 2
            assert all(c._finish_callbacks is hub.frames_finished for c in connections)
            # The one delivery path: events reach both through the hub's shared frames.
            machine_id = await tenant.add_machine()
            await tenant.ingest([{"machine_id": machine_id, "metric_name": "temperature", "value": 7.0}])
            for ws in (live, resumed):
                while True:
                    event = orjson.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT))
                    if event["type"] == "sensor_update":
                        assert event["value"] == 7.0
                        break


async def test_a_detached_socket_answers_pings_and_the_closing_handshake(server: RunningServer, tenant: Tenant) -> None:
    async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT, ping_interval=None) as ws:
        await ws.send(tenant.access_token)
        await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT)
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, EVENT_TIMEOUT)
        await ws.close(1000, "done")
    assert ws.close_code == 1000  # the server echoed our close
    assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.reason == "done"


async def test_the_keepalive_closes_a_peer_that_stops_answering_and_keeps_one_that_answers(
    make_settings: Callable[..., Settings], tenant_factory: Any
) -> None:
    # Pings only when the test says (ping_all), never on their own: no test here waits for a timer.
    running = start_server(make_settings(ws_heartbeat_interval=3600), ws_ping_interval=3600)
    try:
        tenant: Tenant = await tenant_factory(running)
        answering = await RawClient.connect(running.ws_url)
        silent = await RawClient.connect(running.ws_url)
        keepalive = keepalive_of(running.server.server_state)  # made with the server's first socket
        await answering.authenticate(tenant.access_token)
        await silent.authenticate(tenant.access_token)
        for _ in range(3):
            on_server_loop(running, keepalive.ping_all)
            ping = await answering.next_frame()
            assert ping.opcode is Opcode.PING
            # A pong, then a ping of our own: the server's answer to it proves it has read our pong first.
            answering.send(Opcode.PONG, bytes(ping.data))
            answering.send(Opcode.PING, b"sync")
            assert (await answering.next_frame()).opcode is Opcode.PONG
        assert (await silent.next_frame()).opcode is Opcode.PING
        # The silent peer answered none of the three: the next round after its first ping closes it.
        close = await silent.next_frame(Opcode.PING)
        assert close.opcode is Opcode.CLOSE
        assert Close.parse(bytes(close.data)).code == 1011
        await silent.eof()
        # The answering one is still open and streaming.
        machine_id = await tenant.add_machine()
        await tenant.ingest([{"machine_id": machine_id, "metric_name": "rpm", "value": 3.0}])
        while True:
            frame = await answering.next_frame(Opcode.PING)
            assert frame.opcode is Opcode.TEXT, frame
            if orjson.loads(frame.data)["type"] == "sensor_update":
                break
        answering.close()
        silent.close()
    finally:
        running.stop()


async def test_server_shutdown_closes_open_dashboards_with_1012(
    make_settings: Callable[..., Settings], tenant_factory: Any
) -> None:
    running = start_server(make_settings(ws_heartbeat_interval=3600))
    try:
        tenant: Tenant = await tenant_factory(running)
        client = await RawClient.connect(running.ws_url)
        await client.authenticate(tenant.access_token)
        running.server.should_exit = True
        close = await client.next_frame(Opcode.PING, Opcode.TEXT)
        assert close.opcode is Opcode.CLOSE
        assert Close.parse(bytes(close.data)).code == 1012
        await client.eof()
        client.close()
    finally:
        running.stop()
    assert not running.thread.is_alive(), "uvicorn must not wait on a closed dashboard"


async def test_a_malformed_upgrade_request_gets_400(server: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /api/v1/ws/dashboard HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"  # no Sec-WebSocket-Key
    )
    async with asyncio.timeout(EVENT_TIMEOUT):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]


async def test_invalid_utf8_in_a_text_frame_closes_1007(server: RunningServer) -> None:
    client = await RawClient.connect(server.ws_url)
    client.send(Opcode.TEXT, b"\xff\xfe token")
    close = await client.next_frame(Opcode.PING)
    assert close.opcode is Opcode.CLOSE
    assert Close.parse(bytes(close.data)).code == 1007
    await client.eof()
    client.close()


async def test_a_detached_socket_reads_with_a_frame_reader_and_answers_pings(
    server: RunningServer, tenant: Tenant
) -> None:
    client = await _authenticated(server, tenant)
    socket = _socket_of(server, client)
    assert socket._reader is None  # between frames a detached socket holds no reader (no HandedOverParser)
    client.send(Opcode.PING, b"one")
    client.send(Opcode.BINARY, b"ignored by contract")
    client.send(Opcode.PING, b"two")
    assert bytes((await client.next_frame(Opcode.TEXT)).data) == b"one"
    assert bytes((await client.next_frame(Opcode.TEXT)).data) == b"two"
    # A message under way keeps a reader until it ends (each pong proves the server read what came before).
    client.send_raw(masked_frame(Opcode.TEXT, b"part", fin=False) + masked_frame(Opcode.PING, b"three"))
    assert bytes((await client.next_frame(Opcode.TEXT)).data) == b"three"
    assert isinstance(on_server_loop(server, lambda: socket._reader), FrameReader)
    client.send_raw(masked_frame(Opcode.CONT, b" done") + masked_frame(Opcode.PING, b"four"))
    assert bytes((await client.next_frame(Opcode.TEXT)).data) == b"four"
    assert on_server_loop(server, lambda: socket._reader) is None
    client.close()


async def test_frames_sent_byte_by_byte_are_read(server: RunningServer, tenant: Tenant) -> None:
    client = await _authenticated(server, tenant)
    text = Frame(Opcode.TEXT, "ignoré".encode()).serialize(mask=True)
    ping = Frame(Opcode.PING, b"slow").serialize(mask=True)
    for byte in text + ping:
        client.send_raw(bytes((byte,)))
        await client.writer.drain()
    pong = await client.next_frame(Opcode.TEXT)
    assert pong.opcode is Opcode.PONG and bytes(pong.data) == b"slow"
    client.close()


async def test_the_peer_close_is_echoed_then_tcp_closed(server: RunningServer, tenant: Tenant) -> None:
    client = await _authenticated(server, tenant)
    client.send(Opcode.CLOSE, Close(1000, "bye").serialize())
    close = await client.next_frame(Opcode.PING, Opcode.TEXT)
    assert close.opcode is Opcode.CLOSE and Close.parse(bytes(close.data)) == Close(1000, "bye")
    await client.eof()
    client.close()


async def test_an_empty_close_is_echoed_empty(server: RunningServer, tenant: Tenant) -> None:
    client = await _authenticated(server, tenant)
    client.send_raw(masked_frame(Opcode.CLOSE))
    close = await client.next_frame(Opcode.PING, Opcode.TEXT)
    assert close.opcode is Opcode.CLOSE and bytes(close.data) == b""
    await client.eof()
    client.close()


async def test_a_server_close_waits_for_the_peer_close(server: RunningServer, tenant: Tenant) -> None:
    client = await _authenticated(server, tenant)
    socket = _socket_of(server, client)
    closed: list[bool] = []
    on_server_loop(server, lambda: socket.on_close(lambda: closed.append(True)))
    on_server_loop(server, lambda: socket.close(4000, "going", 60.0))
    assert await client.close_code() == 4000
    # Still open and reading: a ping is answered while the server waits for our close. (Our ClientProtocol
    # reads nothing after a close frame: the pong is read raw.)
    client.send_raw(masked_frame(Opcode.PING, b"still there?"))
    expected = Frame(Opcode.PONG, b"still there?").serialize(mask=False)
    async with asyncio.timeout(EVENT_TIMEOUT):
        assert await client.reader.readexactly(len(expected)) == expected
    assert not on_server_loop(server, lambda: socket.transport.is_closing())
    client.send(Opcode.CLOSE, Close(4000, "going").serialize())
    await client.eof()
    assert on_server_loop(server, lambda: closed) == [True]
    client.close()


async def test_protocol_errors_after_detach_close_with_their_codes(server: RunningServer, tenant: Tenant) -> None:
    cases = {
        masked_frame(Opcode.PING, b"x", masked=False): 1002,  # a client frame must be masked
        masked_frame(0x3, b"x"): 1002,  # reserved opcode
        masked_frame(Opcode.CONT, b"x"): 1002,  # continuation of nothing
        masked_frame(Opcode.PING, b"x", fin=False): 1002,  # fragmented control frame
        masked_frame(Opcode.CLOSE, b"\x03"): 1002,  # a close payload of one byte
        masked_frame(Opcode.CLOSE, (1005).to_bytes(2, "big")): 1002,  # a code no close frame may carry
        masked_frame(Opcode.CLOSE, (1000).to_bytes(2, "big") + b"\xff"): 1007,  # reason not UTF-8
        masked_frame(Opcode.TEXT, b"\xff\xfe"): 1007,  # text not UTF-8 (ignored text is still checked)
    }
    # A binary frame over the server's ws_max_size: refused at its header, before its payload is read.
    too_big = server.server.config.ws_max_size + 1
    cases[bytes((0x82, 0xFF)) + too_big.to_bytes(8, "big") + b"\x00" * 4 + b"\x00" * 100] = 1009
    for data, code in cases.items():
        client = await _authenticated(server, tenant)
        client.send_raw(data)
        assert await client.close_code() == code, data[:16]
        await client.eof()
        client.close()


async def test_a_frame_cut_by_the_detach_is_still_read(server: RunningServer, tenant: Tenant) -> None:
    """The auth message and half a ping in one write: the handshake's parser holds the half and goes on parsing."""
    client = await RawClient.connect(server.ws_url)
    token = Frame(Opcode.TEXT, tenant.access_token.encode()).serialize(mask=True)
    ping = Frame(Opcode.PING, b"across the detach").serialize(mask=True)
    client.send_raw(token + ping[:5])
    first = await client.next_frame(Opcode.PING)
    assert orjson.loads(first.data)["type"] == "heartbeat"
    assert isinstance(_socket_of(server, client)._reader, HandedOverParser)
    client.send_raw(ping[5:])
    pong = await client.next_frame(Opcode.TEXT)
    assert pong.opcode is Opcode.PONG and bytes(pong.data) == b"across the detach"
    # The same close path as with a FrameReader: errors get their codes, closes are echoed.
    client.send_raw(masked_frame(Opcode.CONT, b"x"))
    assert await client.close_code() == 1002
    await client.eof()
    client.close()
    other = await RawClient.connect(server.ws_url)
    other.send_raw(token + ping[:1])
    await other.next_frame(Opcode.PING)
    assert isinstance(_socket_of(server, other)._reader, HandedOverParser)
    other.send_raw(ping[1:] + Frame(Opcode.CLOSE, Close(1001, "").serialize()).serialize(mask=True))
    assert (await other.next_frame(Opcode.TEXT)).opcode is Opcode.PONG
    assert await other.close_code() == 1001
    await other.eof()
    other.close()


def test_unparsed_bytes_are_zero_exactly_between_frames() -> None:
    """What a detached socket's reader choice rests on, against websockets' own parser, at every split."""
    client = ClientProtocol(parse_uri("ws://example.com/api/v1/ws/dashboard"))
    client.send_request(client.connect())
    request = b"".join(client.data_to_send())
    frames = [
        Frame(Opcode.TEXT, b"token").serialize(mask=True),
        Frame(Opcode.BINARY, b"b" * 300).serialize(mask=True),
        Frame(Opcode.PING, b"").serialize(mask=True),
        Frame(Opcode.BINARY, b"c" * 70_000).serialize(mask=True),
        Frame(Opcode.PONG, b"x").serialize(mask=True),
    ]
    stream = request + b"".join(frames)
    boundaries = {len(request)}
    for data in frames:
        boundaries.add(max(boundaries) + len(data))
    points = [*range(1, 400), *range(len(stream) - 400, len(stream)), *range(400, len(stream), 1009)]
    for point in points:
        server = ServerProtocol(max_size=None)
        unparsed = UnparsedBytes()
        fed = 0
        for chunk in (stream[:point], stream[point:]):
            server.receive_data(chunk)
            unparsed.count(chunk, server.events_received())
            fed += len(chunk)
            if fed < len(request):
                assert unparsed.value is None
            else:
                assert unparsed.value is not None
                assert (unparsed.value == 0) == (fed in boundaries), point
