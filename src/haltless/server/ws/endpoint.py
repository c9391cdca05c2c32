"""`/api/v1/ws/dashboard`: token as the first message, then heartbeats and the tenant's events.

The handshake follows docs/websocket.md: accept, wait for one text frame (at most
HALTLESS_WS_AUTH_TIMEOUT, counted against HALTLESS_WS_MAX_PENDING), verify the access token, send a
heartbeat, then stream. Query parameters are never read: a token in the URL is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from haltless.core import wire
from haltless.core.auth_message import AuthRefusal, parse_first_message
from haltless.core.event_ids import EventKey, event_key_of, parse_event_id
from haltless.core.models import Principal
from haltless.core.wire import CloseCode
from haltless.errors import AuthenticationError
from haltless.server.http.origins import origin_allowed
from haltless.server.http.security import principal_from_access_token
from haltless.server.state import AppState, app_state
from haltless.server.ws.frames import text_frames
from haltless.server.ws.hub import SLOW_CLOSE_TIMEOUT, DashboardConnection, closing
from haltless.server.ws.protocol import DETACH
from haltless.server.ws.socket import DetachedSocket

log = logging.getLogger("haltless.ws")
router = APIRouter()


async def _close(websocket: WebSocket, code: int, reason: str = "") -> None:
    with contextlib.suppress(Exception):
        if websocket.application_state is not WebSocketState.DISCONNECTED:
            await websocket.close(code=code, reason=reason)


async def _first_message(websocket: WebSocket, wait_seconds: float) -> tuple[str | None, bytes | None] | None:
    """The first frame as (text, bytes); None if the client left or the timeout passed."""
    async with asyncio.timeout(wait_seconds):
        message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    return message.get("text"), message.get("bytes")


@router.websocket("/api/v1/ws/dashboard")
async def dashboard(websocket: WebSocket) -> None:
    state: AppState = app_state(websocket)
    settings = state.settings
    if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), settings.allowed_origins):
        # Closing before accept makes the server answer the upgrade with HTTP 403.
        await websocket.close(code=1008)
        return

    hub = state.hub
    await websocket.accept()
    if not hub.try_reserve_pending():
        await _close(websocket, CloseCode.TOO_MANY_PENDING, "too many pending connections")
        return
    try:
        try:
            first = await _first_message(websocket, settings.ws_auth_timeout)
        except TimeoutError:
            await _close(websocket, CloseCode.AUTH_TIMEOUT, "authentication timeout")
            return
    finally:
        hub.release_pending()
    if first is None:
        return

    request = parse_first_message(*first)
    if isinstance(request, AuthRefusal):
        await _close(websocket, request.code, request.reason)
        return
    try:
        principal = await principal_from_access_token(state, request.token)
    except AuthenticationError as exc:
        await _close(websocket, CloseCode.INVALID_TOKEN, exc.detail)
        return

    await _stream(websocket, state, principal, request.resume_after)


class _SkipReplayed:
    """Drops live events a resumed socket already got from its replay.

    Live events published while the history was being read can also be in the replay; ids are ordered,
    so everything up to the last replayed id is skipped, and the check ends at the first newer event.
    Events without an id (heartbeats, control messages) always pass.
    """

    __slots__ = ("through",)

    def __init__(self, through: EventKey | None = None) -> None:
        self.through = through

    def passes(self, event: str) -> bool:
        if self.through is not None:
            key = event_key_of(event)
            if key is not None:
                if key <= self.through:
                    return False
                self.through = None
        return True


async def _replay(state: AppState, tenant_id: str, resume_after: str) -> tuple[list[str], EventKey | None]:
    """What a resumed socket gets first: a heartbeat, then every retained event after `resume_after` (or
    `resync_required` when that is too old or unreadable); and the last id it covers, for `_SkipReplayed`."""
    messages = [wire.heartbeat(state.clock.now_us())]
    resume_key = parse_event_id(resume_after)
    try:
        replay = await state.bus.history(tenant_id, resume_after) if resume_key is not None else None
    except Exception:  # e.g. Redis is down: the client can still reload over REST and stay live
        log.warning("event history of tenant %s could not be read for a resume; asking to resync", tenant_id)
        messages.append(wire.resync_required("event history could not be read; reload state"))
        return messages, None
    if replay is None:
        messages.append(wire.resync_required("resume point is no longer retained; reload state"))
        return messages, None
    messages.extend(replay)
    last = event_key_of(replay[-1]) if replay else None
    return messages, last or resume_key


async def _stream(websocket: WebSocket, state: AppState, principal: Principal, resume_after: str | None) -> None:
    detach = websocket.scope.get("extensions", {}).get(DETACH)
    if callable(detach):
        await _stream_frames(state, principal, resume_after, detach)
    else:
        await _stream_asgi(websocket, state, principal, resume_after)


async def _stream_frames(
    state: AppState, principal: Principal, resume_after: str | None, detach: Callable[[], DetachedSocket]
) -> None:
    """The one delivery path of `haltless serve`, live and resumed: the hub writes shared pre-built frames.

    The socket is detached from ASGI (server/ws/protocol.py): once this coroutine returns, an open dashboard
    costs no task and no coroutine stack, and callbacks handle its end.
    """
    hub = state.hub
    tenant_id = principal.tenant_id
    limit = state.settings.ws_send_buffer_bytes
    if resume_after is None:
        socket = detach()
        connection = DashboardConnection(
            tenant_id,
            _no_send,
            limit_bytes=limit,
            frames=socket,
            subject_id=principal.subject_id,
            token_generation=principal.token_generation,
        )
    else:
        # Join the live stream first (its events wait in the connection's outbox, under the same byte budget),
        # then write the replay: no gap between history and live, and duplicates are skipped by id.
        connection = DashboardConnection(
            tenant_id,
            _no_send,
            limit_bytes=limit,
            subject_id=principal.subject_id,
            token_generation=principal.token_generation,
        )
        hub.add(connection)
        socket = detach()
        try:
            messages, through = await _replay(state, tenant_id, resume_after)
        except BaseException:
            hub.remove(connection)
            connection.stop()
            socket.close(CloseCode.GOING_AWAY, "", SLOW_CLOSE_TIMEOUT)
            raise
        socket.write(text_frames(messages))
        skip = _SkipReplayed(through)
        live = [event for event in connection.attach(socket) if skip.passes(event)]
        if live:
            connection.write_frames(text_frames(live))
    connection.on_finish(hub.frames_finished)
    hub.heartbeats.start(connection)
    if resume_after is None:
        hub.add(connection)  # a resumed socket joined before its replay


async def _stream_asgi(websocket: WebSocket, state: AppState, principal: Principal, resume_after: str | None) -> None:
    """Under any other ASGI server: a writer task per socket drains its outbox through `send`."""
    tenant_id = principal.tenant_id
    skip = _SkipReplayed()

    async def send_new(event: str) -> None:
        if skip.passes(event):
            await websocket.send_text(event)

    connection = DashboardConnection(
        tenant_id,
        send_new if resume_after is not None else websocket.send_text,
        limit_bytes=state.settings.ws_send_buffer_bytes,
        subject_id=principal.subject_id,
        token_generation=principal.token_generation,
    )
    if resume_after is None:
        state.hub.heartbeats.start(connection)
        state.hub.add(connection)
    else:
        state.hub.add(connection)
        try:
            messages, skip.through = await _replay(state, tenant_id, resume_after)
            for message in messages:
                await websocket.send_text(message)
        except Exception:  # the socket went away mid-replay: nothing to tell anyone
            log.debug("a resumed socket of tenant %s closed during its replay", tenant_id, exc_info=True)
            state.hub.remove(connection)
            connection.stop()
            return
        state.hub.heartbeats.start(connection)
    writer = asyncio.create_task(connection.run_writer())
    reader = asyncio.create_task(_drain_incoming(websocket))
    ended = asyncio.ensure_future(connection.finished())
    try:
        await asyncio.wait({writer, reader, ended}, return_when=asyncio.FIRST_COMPLETED)
        # Read before stop(): the client left or sending failed (nothing to send), or it ended here.
        close = closing(connection)
    finally:
        state.hub.remove(connection)
        connection.stop()
        for task in (writer, ended):
            task.cancel()
    if close is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SLOW_CLOSE_TIMEOUT):
                await _close(websocket, *close)
    reader.cancel()
    await asyncio.gather(writer, reader, ended, return_exceptions=True)


async def _no_send(_text: str) -> None:
    raise AssertionError("the fast path writes frames, never through send")


async def _drain_incoming(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends after auth, until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
