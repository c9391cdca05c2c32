"""Request bodies: bounded, JSON, and never read before the caller is authenticated.

FastAPI reads and parses a route's whole JSON body before its dependencies (authentication among them) run,
with no size limit: an unauthenticated client could make the server buffer hundreds of MiB. `BodyGuard`
sits in front of every route (and of the ingest fast path, which skips the middleware stack) and decides
from the request's headers alone, before one byte of the body is read:

1. `Content-Length` over the route's limit: 413.
2. A route that is not in the `open_paths` list (login, refresh, logout take no credential): the
   Authorization header is authenticated now (401 otherwise), and the principal is left in the scope for the
   route's `require()` dependency (`security.PRINCIPAL_SCOPE_KEY`), which then checks the role without
   verifying the credential again.
3. `Content-Type` not JSON: 415.

Then the body is read here (within its limit) and decoded as JSON, with the rules of the `json.loads` that
FastAPI applies next: a body that is not text or not JSON gets a 422 whose detail says where it broke (FastAPI
would answer a body that is not UTF-8 with a 400 "There was an error parsing the body"). The route gets the
same bytes. Routes in `raw_paths` decode their own bodies (ingest: per-item rejection, its own parser) and get
theirs unread.

A chunked body (no `Content-Length`) is counted as it is received and refused with 413 the moment it passes
the limit; the app never sees more than the limit.

The unread rest of a refused body: a connection closed while its client is still sending is reset, and most
clients (httpx among them: it writes the whole body before reading) then lose the answer. So, like a web
server's lingering close, the answer goes out at once and the server reads and drops what follows, but only
so much: a declared body up to limit + `LINGER_BYTES` is drained by uvicorn and the connection kept; past
that, and for chunked bodies, the answer says `Connection: close`, the next `LINGER_BYTES` (or
`LINGER_SECONDS`) are dropped, and the connection is closed. The server never holds more than the limit of a
body and never reads more than limit + LINGER_BYTES (+ one network read) of it.

HTTP/1.1 framing: a request has a body when it declares a non-zero `Content-Length` or a
`Transfer-Encoding`; uvicorn's parser keeps a body to its declared length, so only chunked bodies are counted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from haltless.errors import HaltlessError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from haltless.server.http.errors import error_response, unexpected_error_response
from haltless.server.http.security import PRINCIPAL_SCOPE_KEY, authenticate

# Every JSON body but ingest's: the largest legitimate one (an alert rule, a machine with 50 tags) is a few
# KiB, so 64 KiB leaves room and keeps what any one request can make the server buffer small.
JSON_BODY_LIMIT = 64 * 1024
# How much of a refused body is read and dropped after the answer, so its sender can still read the answer;
# and for how long at most (a sender that stops sending but keeps the connection open).
LINGER_BYTES = 4 * 1024 * 1024
LINGER_SECONDS = 5.0

_CLOSE = (b"connection", b"close")


def _limit_text(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


def too_large_detail(limit: int) -> str:
    """The 413 detail for a body over `limit` bytes."""
    return f"request body over {_limit_text(limit)}, this route's limit"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes its limit.

    A Starlette HTTPException on purpose: FastAPI re-raises those from its body reading (any other exception
    becomes a 400 "error parsing the body"), and `errors.py` renders them as `{"detail": ...}`.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_detail(limit))


def check_json_body(body: bytes) -> None:
    """InvalidRequest unless `body` is JSON as `json.loads(body)` (FastAPI's reader) takes it, saying what is wrong.

    The same rules: UTF-8 (or UTF-16/32, told apart by their zero bytes), a UTF-8 BOM skipped, lone surrogates
    taken (the fields' validators refuse them by name)."""
    encoding = json.detect_encoding(body)
    try:
        text = body.decode(encoding, "surrogatepass")
    except UnicodeDecodeError as exc:
        expected = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
        raise InvalidRequest(
            f"request body is not valid JSON (UTF-8): byte 0x{body[exc.start]:02x} at offset {exc.start} "
            f"is not {expected} text"
        ) from None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise InvalidRequest("request body is not valid JSON: nested too deeply") from None


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app whose body was read already: the body in one message, then the connection's own."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


async def _drop_rest(receive: Receive) -> None:
    """Read and drop up to LINGER_BYTES (within LINGER_SECONDS) of a body nobody will read."""
    dropped = 0
    try:
        async with asyncio.timeout(LINGER_SECONDS):
            while dropped <= LINGER_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return  # the end of the body, or the client went away
                dropped += len(message.get("body", b""))
    except TimeoutError:
        pass


def _lingering(send: Send, receive: Receive) -> Send:
    """`send` for an answer given while the body is still coming: `Connection: close`, and before the
    connection closes (on the answer's last message) the sender gets time to finish (`_drop_rest`)."""

    async def lingering_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            await send({**message, "more_body": True})  # the whole answer is out (Content-Length)...
            await _drop_rest(receive)
            message = {"type": "http.response.body", "body": b"", "more_body": False}  # ...then uvicorn closes
        await send(message)

    return lingering_send


class BodyGuard:
    """ASGI middleware: every request body bounded, JSON, and read only once its sender is authenticated."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Mapping[str, int] | None = None,
        open_paths: Collection[str] = (),
        raw_paths: Collection[str] = (),
        default_limit: int = JSON_BODY_LIMIT,
    ) -> None:
        self.app = app
        self._limits = dict(limits or {})
        self._open_paths = frozenset(open_paths)
        self._raw_paths = frozenset(raw_paths)
        self._default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: bytes | None = None
        chunked = False
        authorization: bytes | None = None
        content_type = b""
        # Hot path (every request): one pass over the raw headers, no Headers object built.
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
        length = 0
        if declared is not None and not chunked:
            try:
                length = int(declared)
            except ValueError:
                await self._refuse(InvalidRequest("invalid Content-Length header"), scope, receive, send, True)
                return
        if not chunked and length <= 0:
            await self.app(scope, receive, send)  # no body: nothing to guard
            return
        limit = self._limits.get(scope["path"], self._default_limit)
        # A declared body within limit + LINGER_BYTES is drained by uvicorn after the answer; one beyond, or a
        # chunked one, could be anything: that connection lingers briefly and closes.
        linger = chunked or length > limit + LINGER_BYTES
        if length > limit:
            await self._refuse(PayloadTooLarge(too_large_detail(limit)), scope, receive, send, linger)
            return
        try:
            if scope["path"] not in self._open_paths:
                header = authorization.decode("latin-1") if authorization is not None else None
                scope[PRINCIPAL_SCOPE_KEY] = await authenticate(scope["app"].state.haltless, header)
            if not _is_json(content_type):
                shown = content_type.decode("latin-1")[:100] or "none"
                raise UnsupportedMediaType(f"request body must be JSON: Content-Type: application/json (got {shown})")
        except HaltlessError as exc:
            await self._refuse(exc, scope, receive, send, linger)
            return
        except Exception:
            # Answered here, not by the app's handler: the ingest fast path has no handler around this guard.
            await self._answer(unexpected_error_response(Request(scope)), scope, receive, send, linger)
            return
        if scope["path"] not in self._raw_paths:
            await self._run_decoded(scope, receive, send, limit)
        elif not chunked:
            await self.app(scope, receive, send)  # uvicorn passes on at most `length` <= limit bytes
        else:
            await self._run_counted(scope, receive, send, limit)

    async def _run_decoded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Read the whole body (413 past `limit`), refuse it unless it is JSON, run the app on it."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:  # only a chunked body can (uvicorn keeps a declared one to its length)
                await self._refuse(PayloadTooLarge(too_large_detail(limit)), scope, receive, send, True)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            check_json_body(body)
        except HaltlessError as exc:
            await self._refuse(exc, scope, receive, send, False)
            return
        await self.app(scope, _replaying(body, receive), send)

    async def _run_counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app on a chunked body, counted as it arrives (BodyTooLarge past `limit`); an answer given
        before the body's end lingers and closes the connection."""
        received = 0
        done = False

        async def counted_receive() -> Message:
            nonlocal received, done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        lingering_send = _lingering(send, receive)

        async def guarded_send(message: Message) -> None:
            nonlocal done
            if not done:
                await lingering_send(message)
                return
            await send(message)

        await self.app(scope, counted_receive, guarded_send)

    @classmethod
    async def _refuse(cls, exc: HaltlessError, scope: Scope, receive: Receive, send: Send, linger: bool) -> None:
        await cls._answer(error_response(exc), scope, receive, send, linger)

    @staticmethod
    async def _answer(response: Response, scope: Scope, receive: Receive, send: Send, linger: bool) -> None:
        await response(scope, receive, _lingering(send, receive) if linger else send)
