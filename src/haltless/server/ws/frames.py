"""Server-to-client WebSocket text frames (RFC 6455 §5.2), built once per batch and shared by every socket.

Server frames are never masked and we never compress or fragment, so a frame is a 2-, 4- or 10-byte header
followed by the UTF-8 payload; building it here costs one header per event instead of one `Frame` object
per event per socket in the protocol library.
"""

from __future__ import annotations

from collections.abc import Sequence

# FIN + text opcode.
_FIN_TEXT = 0x81
# Headers of every payload shorter than 126 bytes, prebuilt (heartbeats are that short).
_SHORT_HEADERS = tuple(bytes((_FIN_TEXT, n)) for n in range(126))
_MEDIUM = bytes((_FIN_TEXT, 126))
_LONG = bytes((_FIN_TEXT, 127))


def text_frame(text: str) -> bytes:
    """One complete, unmasked FIN text frame."""
    return text_frames((text,))


def text_frames(events: Sequence[str]) -> bytes:
    """Every event as its own text frame, concatenated, ready for one `transport.write` per socket."""
    parts: list[bytes] = []
    append = parts.append  # bound once: this loop runs for every event the server publishes
    for event in events:
        payload = event.encode()
        n = len(payload)
        if n < 126:
            append(_SHORT_HEADERS[n])
        elif n < 65536:
            append(_MEDIUM + n.to_bytes(2, "big"))
        else:
            append(_LONG + n.to_bytes(8, "big"))
        append(payload)
    return b"".join(parts)
