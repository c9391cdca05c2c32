"""I/O-free parsing of the dashboard socket's first message: a bare JWT or `{"token": ..., ...}`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from haltless.core.wire import MAX_AUTH_MESSAGE_BYTES, CloseCode

# A JWT is three base64url parts joined by dots; anything else cannot be a token.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]*)*$")


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What a client asked for in its first message."""

    token: str
    # Resume point: every event after this event_id is replayed before live ones (None: live only).
    resume_after: str | None = None


@dataclass(frozen=True, slots=True)
class AuthRefusal:
    """The first message cannot authenticate: close with `code`, `reason` for humans."""

    code: CloseCode
    reason: str


def parse_first_message(text: str | None, data: bytes | None) -> AuthRequest | AuthRefusal:
    """Turn the first frame into a token request, or into the close code that refuses it."""
    if text is None:
        if data is not None and len(data) > MAX_AUTH_MESSAGE_BYTES:
            return AuthRefusal(CloseCode.MESSAGE_TOO_BIG, "first message too big")
        return AuthRefusal(CloseCode.UNSUPPORTED_DATA, "send the token as a text message")
    if len(text) > MAX_AUTH_MESSAGE_BYTES:
        return AuthRefusal(CloseCode.MESSAGE_TOO_BIG, "first message too big")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            payload = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return AuthRefusal(CloseCode.INVALID_TOKEN, "first message is not valid JSON")
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            return AuthRefusal(CloseCode.INVALID_TOKEN, "JSON first message needs a string 'token'")
        request = _token(token.strip())
        resume = payload.get("resume_after")
        if isinstance(request, AuthRequest) and resume is not None:
            # An unusable resume point is not fatal: the client is told to resync instead.
            return AuthRequest(request.token, resume if isinstance(resume, str) else "")
        return request
    if stripped.startswith('"'):
        # A JSON string literal (a client that JSON-encoded the bare token).
        try:
            token = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return AuthRefusal(CloseCode.INVALID_TOKEN, "invalid token")
        if isinstance(token, str) and token:
            return _token(token.strip())
        return AuthRefusal(CloseCode.INVALID_TOKEN, "invalid token")
    if not stripped:
        return AuthRefusal(CloseCode.INVALID_TOKEN, "empty token")
    if stripped.lower().startswith("bearer "):
        stripped = stripped[7:].strip()
    return _token(stripped)


def _token(candidate: str) -> AuthRequest | AuthRefusal:
    if not _TOKEN_SHAPE.match(candidate):
        return AuthRefusal(CloseCode.INVALID_TOKEN, "invalid token")
    return AuthRequest(token=candidate)
