"""server/ws/frame_reader.py: the same decisions as websockets' ServerProtocol for the same bytes, however chunked.

Every stream is fed to both, split at every point (sampled for long streams) and byte by byte. websockets'
ServerProtocol does not check that text is UTF-8 (its asyncio layer does, and so does our ASGI phase): the
reference adds that check per frame, as its callers do, so 1007 is compared too.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.utils import apply_mask

from haltless.server.ws.frame_reader import CloseReceived, Failed, FrameReader, PingReceived

MAX_SIZE = 1000
Decision = tuple[object, ...]


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    """A client frame built byte by byte, so it may break any rule (websockets' serialize refuses to)."""
    head1 = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        header = bytes((head1, mask_bit | n))
    elif n < 65536:
        header = bytes((head1, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((head1, mask_bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + apply_mask(payload, mask)


def close(code: int, reason: bytes = b"") -> bytes:
    return frame(Opcode.CLOSE, code.to_bytes(2, "big") + reason)


def websockets_decisions(chunks: list[bytes], max_size: int | None) -> list[Decision]:
    """What websockets' ServerProtocol decides for these chunks, plus the UTF-8 check of text messages."""
    server = ServerProtocol(state=State.OPEN, max_size=max_size)
    decisions: list[Decision] = []
    decoder: codecs.IncrementalDecoder | None = None
    for chunk in chunks:
        server.receive_data(chunk)
        for event in server.events_received():
            assert isinstance(event, Frame)
            if event.opcode is Opcode.PING:
                decisions.append(("ping", bytes(event.data)))
            elif event.opcode is Opcode.CLOSE:
                parsed = Close.parse(bytes(event.data))
                decisions.append(("close", parsed.code, parsed.reason, bytes(event.data)))
            elif event.opcode is not Opcode.PONG:
                if event.opcode is Opcode.TEXT:
                    decoder = codecs.getincrementaldecoder("utf-8")()
                elif event.opcode is Opcode.BINARY:
                    decoder = None
                if decoder is not None:
                    try:
                        decoder.decode(bytes(event.data), final=event.fin)
                    except UnicodeDecodeError:
                        return [*decisions, ("fail", 1007)]
        if server.parser_exc is not None:
            assert server.close_sent is not None
            return [*decisions, ("fail", server.close_sent.code)]
    return decisions


def reader_decisions(chunks: list[bytes], max_size: int | None) -> list[Decision]:
    reader = FrameReader(max_size)
    decisions: list[Decision] = []
    for chunk in chunks:
        for event in reader.feed(chunk):
            if isinstance(event, PingReceived):
                decisions.append(("ping", event.payload))
            elif isinstance(event, CloseReceived):
                decisions.append(("close", event.code, event.reason, event.payload))
            else:
                assert isinstance(event, Failed)
                decisions.append(("fail", event.code))
    return decisions


def splits(stream: bytes) -> Iterator[list[bytes]]:
    """The stream whole, in two at every point (sampled when long), in three, and byte by byte."""
    yield [stream]
    n = len(stream)
    points = range(1, n) if n <= 400 else sorted({*range(1, 200), *range(n - 200, n), *range(1, n, 997)})
    for point in points:
        yield [stream[:point], stream[point:]]
    for point in points[:: max(1, len(points) // 20)]:
        yield [stream[:point], stream[point : point + 3], stream[point + 3 :]]
    if n <= 400:
        yield [stream[i : i + 1] for i in range(n)]


def check(stream: bytes, expected: list[Decision], max_size: int | None = MAX_SIZE) -> None:
    assert websockets_decisions([stream], max_size) == expected, "the reference disagrees with the test"
    for chunks in splits(stream):
        assert reader_decisions(chunks, max_size) == expected, [len(c) for c in chunks]


PING, PONG, TEXT, BINARY, CONT, CLOSE = (
    Opcode.PING,
    Opcode.PONG,
    Opcode.TEXT,
    Opcode.BINARY,
    Opcode.CONT,
    Opcode.CLOSE,
)

CASES: dict[str, tuple[bytes, list[Decision]]] = {
    "ping": (frame(PING, b"hello"), [("ping", b"hello")]),
    "empty ping": (frame(PING), [("ping", b"")]),
    "longest ping": (frame(PING, bytes(range(125))), [("ping", bytes(range(125)))]),
    "pong": (frame(PONG, b"x"), []),
    "data is dropped, pings between answered": (
        frame(TEXT, b"token") + frame(PING, b"1") + frame(BINARY, os.urandom(300)) + frame(PING, b"2"),
        [("ping", b"1"), ("ping", b"2")],
    ),
    "empty data frames": (frame(TEXT) + frame(BINARY) + frame(PING, b"p"), [("ping", b"p")]),
    "16-bit length": (frame(BINARY, b"b" * 500) + frame(PING), [("ping", b"")]),
    "fragmented text with a ping inside": (
        # "é" split between the fragments
        frame(TEXT, b"ab\xc3", fin=False) + frame(PING, b"mid") + frame(CONT, b"\xa9cd") + frame(PING, b"end"),
        [("ping", b"mid"), ("ping", b"end")],
    ),
    "fragmented binary": (
        frame(BINARY, b"\xff" * 10, fin=False) + frame(CONT, b"\xfe", fin=False) + frame(CONT) + frame(PING),
        [("ping", b"")],
    ),
    "close": (close(1000, b"bye"), [("close", 1000, "bye", (1000).to_bytes(2, "big") + b"bye")]),
    "empty close is 1005": (frame(CLOSE), [("close", 1005, "", b"")]),
    "close 3000": (close(3000), [("close", 3000, "", (3000).to_bytes(2, "big"))]),
    "close 4999 with a UTF-8 reason": (
        close(4999, "fermé".encode()),
        [("close", 4999, "fermé", (4999).to_bytes(2, "big") + "fermé".encode())],
    ),
    "after a close everything is ignored": (
        close(1001) + frame(PING, b"late") + b"\x00\x01garbage",
        [("close", 1001, "", (1001).to_bytes(2, "big"))],
    ),
    "close of one byte": (frame(CLOSE, b"\x03"), [("fail", 1002)]),
    "close reason not UTF-8": (close(1000, b"\xff"), [("fail", 1007)]),
    "close during a fragmented message": (frame(TEXT, b"a", fin=False) + close(1000), [("fail", 1002)]),
    "unmasked frame": (frame(PING, b"x", masked=False), [("fail", 1002)]),
    "unmasked after a good ping": (
        frame(PING, b"1") + frame(TEXT, b"x", masked=False),
        [("ping", b"1"), ("fail", 1002)],
    ),
    "rsv1": (frame(TEXT, b"x", rsv=4), [("fail", 1002)]),
    "rsv2": (frame(BINARY, b"x", rsv=2), [("fail", 1002)]),
    "rsv3": (frame(PING, b"x", rsv=1), [("fail", 1002)]),
    "control frame of 126 bytes": (frame(PING, b"p" * 126), [("fail", 1002)]),
    "fragmented ping": (frame(PING, b"p", fin=False), [("fail", 1002)]),
    "continuation without a message": (frame(CONT, b"x"), [("fail", 1002)]),
    "text inside a fragmented message": (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), [("fail", 1002)]),
    "binary inside a fragmented message": (frame(BINARY, b"a", fin=False) + frame(BINARY, b"b"), [("fail", 1002)]),
    "message exactly max_size": (frame(BINARY, bytes(MAX_SIZE)) + frame(PING), [("ping", b"")]),
    "frame over max_size": (frame(BINARY, bytes(MAX_SIZE + 1)), [("fail", 1009)]),
    "fragments over max_size together": (
        frame(BINARY, bytes(600), fin=False) + frame(CONT, bytes(300), fin=False) + frame(CONT, bytes(101)),
        [("fail", 1009)],
    ),
    "fragments at max_size together": (
        frame(TEXT, b"a" * 600, fin=False) + frame(CONT, b"b" * 400) + frame(PING),
        [("ping", b"")],
    ),
    "oversized frame with rsv bits is 1009 first": (frame(BINARY, bytes(MAX_SIZE + 1), rsv=4), [("fail", 1009)]),
    "invalid UTF-8": (frame(TEXT, b"\xff\xfe token"), [("fail", 1007)]),
    "invalid UTF-8 in a later fragment": (
        frame(TEXT, b"ok", fin=False) + frame(PING, b"p") + frame(CONT, b"\xc3\x28"),
        [("ping", b"p"), ("fail", 1007)],
    ),
    "text ending inside a character": (frame(TEXT, b"ab\xe2\x82"), [("fail", 1007)]),
    "surrogate in UTF-8": (frame(TEXT, b"\xed\xa0\x80"), [("fail", 1007)]),
    "binary is not UTF-8 checked": (frame(BINARY, b"\xff\xfe") + frame(PING), [("ping", b"")]),
}

for _opcode in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
    CASES[f"opcode {_opcode:#x}"] = (frame(_opcode, b"x"), [("fail", 1002)])
for _code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
    CASES[f"close code {_code}"] = (close(_code), [("fail", 1002)])


@pytest.mark.parametrize("name", list(CASES))
def test_decisions_match_websockets_however_the_bytes_are_chunked(name: str) -> None:
    stream, expected = CASES[name]
    check(stream, expected)


def test_a_64_bit_length_and_no_limit() -> None:
    big = frame(BINARY, os.urandom(70_000)) + frame(TEXT, "ü".encode() * 40_000) + frame(PING, b"after")
    check(big, [("ping", b"after")], max_size=None)
    check(big, [("fail", 1009)], max_size=65_536)


def test_text_checked_across_chunk_and_mask_boundaries() -> None:
    # 4-byte characters over a payload whose length is not a multiple of the mask: every split shifts both.
    text = ("a😀" * 50 + "bc").encode()
    check(frame(TEXT, text[:101], fin=False) + frame(CONT, text[101:]) + frame(PING), [("ping", b"")])


def test_an_idle_reader_holds_no_buffer() -> None:
    reader = FrameReader(MAX_SIZE)
    assert not hasattr(reader, "__dict__")
    ping = frame(PING, b"x")
    assert reader.feed(ping[:3]) == ()
    assert not reader.idle
    assert reader.feed(ping[3:]) == [PingReceived(b"x")]
    assert reader.idle
    reader.feed(frame(TEXT, b"partial", fin=False))
    assert not reader.idle  # a fragmented message is under way
    reader.feed(frame(CONT, b" done") + frame(BINARY, os.urandom(50)))
    assert reader.idle


def test_nothing_is_read_after_a_failure() -> None:
    reader = FrameReader(MAX_SIZE)
    assert reader.feed(frame(CONT, b"x")) == [Failed(1002, "unexpected continuation frame")]
    assert reader.feed(frame(PING, b"x")) == ()
    assert reader.idle
