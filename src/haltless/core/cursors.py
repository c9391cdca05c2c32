"""Page cursors: opaque tokens the server signs, so a client can hand back only what the server gave it.

A cursor holds positions the server reads back into queries (timestamps, row ids, the pinned query window).
Unsigned, anyone could write one with any values and reach code paths no real page leads to; signed with a key
derived from the deployment's JWT secret, every process of a deployment accepts the others' cursors and nobody
else can make one. Each kind of cursor (history, alerts) signs under its own name, so one is never taken for
another. A token is `base64url(JSON list of fields) "." base64url(HMAC-SHA256 tag)`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

import orjson

from haltless.errors import InvalidRequest

# A real cursor is well under 200 characters; anything much longer is refused before any work is done on it.
MAX_CURSOR_LENGTH = 512
# 128 bits of tag: forging one is as hopeless as guessing the key.
_TAG_BYTES = 16
_KEY_PURPOSE = b"haltless page cursor key v1"

CursorField = int | str

INVALID_CURSOR = "invalid cursor; pass next_cursor of the previous page unchanged"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Encodes and verifies the cursors of every paged endpoint, with one key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_secret(cls, secret: str) -> CursorCodec:
        """The codec of a deployment: its key derived from the JWT secret (never the JWT key itself)."""
        return cls(hmac.new(secret.encode(), _KEY_PURPOSE, hashlib.sha256).digest())

    def _tag(self, kind: str, payload: bytes) -> bytes:
        return hmac.new(self._key, kind.encode() + b"\x00" + payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, kind: str, fields: Sequence[CursorField]) -> str:
        """A signed, URL-safe token for `fields` (ints and strs), valid only as a cursor of `kind`."""
        payload = orjson.dumps(list(fields))
        return f"{_b64encode(payload)}.{_b64encode(self._tag(kind, payload))}"

    def decode(self, kind: str, token: str, shape: Sequence[type[int] | type[str]]) -> list[CursorField]:
        """The fields of a token from `encode(kind, ...)`, of the types in `shape`; InvalidRequest otherwise."""
        if len(token) > MAX_CURSOR_LENGTH or token.count(".") != 1:
            raise InvalidRequest(INVALID_CURSOR)
        encoded, _, encoded_tag = token.partition(".")
        try:
            payload = _b64decode(encoded)
            tag = _b64decode(encoded_tag)
        except (binascii.Error, ValueError):
            raise InvalidRequest(INVALID_CURSOR) from None
        if not hmac.compare_digest(tag, self._tag(kind, payload)):
            raise InvalidRequest(INVALID_CURSOR)
        # Signed by us, so well-formed unless the format changed under the same kind; checked all the same.
        try:
            fields = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise InvalidRequest(INVALID_CURSOR) from None
        if (
            not isinstance(fields, list)
            or len(fields) != len(shape)
            or not all(type(value) is expected for value, expected in zip(fields, shape, strict=True))
        ):
            raise InvalidRequest(INVALID_CURSOR)
        return fields
