"""Client-to-server WebSocket frames (RFC 6455 §5) read incrementally, without I/O, for a detached socket.

A dashboard socket after authentication only answers pings, runs the closing handshake and drops whatever
else the client sends (docs/websocket.md). websockets' `ServerProtocol` does that too, but keeps about 2 KB per
socket for it (instance dict, parser generators, logger, the last frame): at thousands of idle sockets that is
most of what each one costs. `FrameReader` keeps a few slots instead, and no buffer at all between frames.

Bytes go in (`feed`), decisions come out: a ping to answer, the peer's close to echo, or a failure with the
close code websockets' `ServerProtocol` would send for the same bytes (tests/server/test_frame_reader.py feeds
both the same streams). No extension is ever negotiated (server/ws/protocol.py builds the `ServerProtocol`
without any), so RSV bits must be 0 and payloads are what is on the wire. Data frame payloads are never kept:
binary ones are skipped, text ones are unmasked only to check they are UTF-8, as they arrive.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

from websockets.exceptions import ProtocolError
from websockets.frames import Close
from websockets.utils import apply_mask

_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_NO_EVENTS: tuple[Event, ...] = ()
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


@dataclass(frozen=True, slots=True)
class PingReceived:
    """Answer with a pong carrying `payload`."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer closed: echo `payload` (the received one, so an empty close is echoed empty) and close TCP."""

    code: int
    reason: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Failed:
    """The peer broke the protocol: send a close with `code` and `reason` (RFC 6455 §7.1.7) and close TCP."""

    code: int
    reason: str


Event = PingReceived | CloseReceived | Failed


class FrameReader:
    """The incoming half of a WebSocket connection whose data messages are ignored (see the module docstring)."""

    __slots__ = (
        "_buffer",
        "_decoder",
        "_ended",
        "_fin",
        "_mask",
        "_max_size",
        "_message_size",
        "_remaining",
    )

    def __init__(self, max_size: int | None) -> None:
        # The largest message (all fragments) accepted, as websockets' ServerProtocol(max_size=...) counts it.
        self._max_size = max_size
        # Bytes of a header or a control frame that is not complete yet; None between frames.
        self._buffer: bytes | None = None
        # Payload bytes of the current data frame still to come (0: the next byte starts a frame).
        self._remaining = 0
        # The current text frame's mask, rotated to the next payload byte; None for binary frames.
        self._mask: bytes | None = None
        # UTF-8 decoder of the text message under way (kept across its fragments); None otherwise.
        self._decoder: codecs.IncrementalDecoder | None = None
        # Whether the current data frame ends its message.
        self._fin = False
        # Payload bytes of the fragments received so far, while a fragmented message is under way, else None.
        self._message_size: int | None = None
        # After a close or a failure everything is discarded (RFC 6455 §1.4, §7.1.7).
        self._ended = False

    @property
    def idle(self) -> bool:
        """True between frames: nothing buffered and no message under way."""
        return self._buffer is None and not self._remaining and self._message_size is None

    def feed(self, data: bytes) -> Sequence[Event]:
        """Read `data`, the next bytes from the client; return what must be answered, in order."""
        if self._ended or not data:
            return _NO_EVENTS
        if self._buffer is not None:
            # Only a header or a control frame is ever buffered (at most 131 bytes): cheap to join.
            data = self._buffer + data
            self._buffer = None
        events: list[Event] | None = None
        position, end = 0, len(data)
        while position < end:
            event: Event | None
            if self._remaining:
                event, position = self._payload(data, position, end)
            else:
                event, position = self._frame(data, position, end)
            if event is None:
                continue
            if events is None:
                events = [event]
            else:
                events.append(event)
            if self._ended:
                break
        return events or _NO_EVENTS

    def _frame(self, data: bytes, start: int, end: int) -> tuple[Event | None, int]:
        """Read one frame header (and a control frame's payload) at `start`; buffer it if it is incomplete."""
        available = end - start
        if available < 2:
            self._buffer = data[start:end]
            return None, end
        head1, head2 = data[start], data[start + 1]
        opcode = head1 & 0x0F
        # The checks follow websockets' Frame.parse and ServerProtocol.recv_frame, in their order, so the
        # same bytes get the same close code.
        if opcode not in (_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG):
            return self._fail(1002, "invalid opcode"), end
        if not head2 & 0x80:
            return self._fail(1002, "incorrect masking"), end
        length = head2 & 0x7F
        header = 6
        if length == 126:
            header = 8
        elif length == 127:
            header = 14
        if available < header:
            self._buffer = data[start:end]
            return None, end
        if length == 126:
            length = int.from_bytes(data[start + 2 : start + 4], "big")
        elif length == 127:
            length = int.from_bytes(data[start + 2 : start + 10], "big")
        if self._max_size is not None:
            limit = self._max_size - (self._message_size or 0)
            if length > limit:
                return self._fail(1009, f"frame with {length} bytes exceeds limit of {limit} bytes"), end
        if head1 & 0x70:
            return self._fail(1002, "reserved bits must be 0"), end
        fin = bool(head1 & 0x80)
        mask = data[start + header - 4 : start + header]
        if opcode >= _CLOSE:
            if length > 125:
                return self._fail(1002, "control frame too long"), end
            if not fin:
                return self._fail(1002, "fragmented control frame"), end
            if available < header + length:
                self._buffer = data[start:end]
                return None, end
            payload = apply_mask(data[start + header : start + header + length], mask)
            return self._control(opcode, payload), start + header + length
        if opcode == _CONT:
            if self._message_size is None:
                return self._fail(1002, "unexpected continuation frame"), end
        elif self._message_size is not None:
            return self._fail(1002, "expected a continuation frame"), end
        else:
            self._decoder = _utf8_decoder() if opcode == _TEXT else None
        # websockets counts fragments but the last toward the message size.
        self._message_size = None if fin else (self._message_size or 0) + length
        self._fin = fin
        self._mask = mask if self._decoder is not None else None
        self._remaining = length
        if not length:
            return self._data_frame_end(), start + header
        return None, start + header

    def _payload(self, data: bytes, start: int, end: int) -> tuple[Failed | None, int]:
        """Skip (binary) or check (text) the current data frame's payload bytes that `data` holds."""
        stop = min(end, start + self._remaining)
        self._remaining -= stop - start
        if self._decoder is not None:
            mask = self._mask
            assert mask is not None
            chunk = apply_mask(data[start:stop], mask)
            shift = (stop - start) % 4
            self._mask = mask[shift:] + mask[:shift]
            try:
                self._decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return self._fail(1007, f"{exc.reason} in a text message"), end
        if not self._remaining:
            return self._data_frame_end(), stop
        return None, stop

    def _data_frame_end(self) -> Failed | None:
        self._mask = None
        if not self._fin:
            return None
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                return self._fail(1007, f"{exc.reason} in a text message")
        return None

    def _control(self, opcode: int, payload: bytes) -> Event | None:
        if opcode == _PING:
            return PingReceived(payload)
        if opcode == _PONG:
            return None
        try:
            close = Close.parse(payload)
        except ProtocolError as exc:
            return self._fail(1002, str(exc))
        except UnicodeDecodeError as exc:
            return self._fail(1007, f"{exc.reason} in the close reason")
        if self._message_size is not None:
            return self._fail(1002, "incomplete fragmented message")
        self._end()
        return CloseReceived(int(close.code), close.reason, payload)

    def _fail(self, code: int, reason: str) -> Failed:
        self._end()
        return Failed(code, reason)

    def _end(self) -> None:
        self._ended = True
        self._buffer = None
        self._decoder = None
        self._mask = None
        self._remaining = 0
