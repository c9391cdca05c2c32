"""`DashboardStream`: the tenant's live events over the dashboard WebSocket, reconnecting until told to stop.

One loop owns the socket: connect, send the token, read until the connection ends, wait, connect again. Because
the loop is sequential, a stream never has two connections open at once. Reconnections resume after the last
`event_id` received, so nothing is missed or repeated; when the server cannot replay, it says `resync_required`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from haltless.client._backoff import Backoff
from haltless.client._base import USER_AGENT, websocket_url
from haltless.client._events import (
    Connected,
    Event,
    GaveUp,
    Heartbeat,
    Reconnecting,
    ResyncRequired,
    StreamStatus,
    parse_event,
)
from haltless.client._exceptions import ConnectError, ServerError, SessionExpired, StreamClosed

if TYPE_CHECKING:
    from haltless.client._client import AsyncHaltlessClient

StatusCallback = Callable[[StreamStatus], object]

# Close codes of the dashboard socket (docs/websocket.md).
CLOSE_INVALID_TOKEN = 4001
CLOSE_AUTH_TIMEOUT = 4002
CLOSE_TOO_MANY_PENDING = 4003
CLOSE_SESSION_REVOKED = 4004
CLOSE_SLOW_CONSUMER = 4008
# Closes that a refreshed access token may cure: refresh first (a failed refresh ends the stream).
_REFRESH_FIRST = frozenset({CLOSE_INVALID_TOKEN, CLOSE_SESSION_REVOKED})
# A dead heartbeat window means the server is gone: waiting long for its close frame would only delay the retry.
CLOSE_TIMEOUT = 2.0
OPEN_TIMEOUT = 10.0
# Missed heartbeats before the connection is declared dead (the guide's advice: 3x the interval).
MISSED_HEARTBEATS = 3
# HTTP statuses at the upgrade that a retry cannot fix (403: Origin refused, 404: not a Haltless server).
_PERMANENT_UPGRADE_STATUSES = frozenset({400, 401, 403, 404, 405, 410})


class _Dropped(Exception):
    """The connection ended; `reason` says why, `code` is the close code when there was one."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class DashboardStream:
    """Async iterator over the tenant's live events, with automatic reconnection.

    - Yields SensorUpdate, Alert, MachineStatusChanged and, for types it does not know, Event; Heartbeat only with
      `heartbeats=True`; Connected / Reconnecting / GaveUp only with `status_events=True` (`on_status` always
      gets them).
    - Filters on the client: `machine_ids` keeps events of those machines (events without a machine pass),
      `types` keeps those message types.
    - Reconnects after any drop, waiting per `backoff` (1 s doubling to 30 s with jitter; the count restarts
      after a healthy connection). Close 4001 (token refused) and 4004 (session revoked: the user was disabled,
      signed out, got a new password or role) refresh the access token first and retry at once; a refresh
      token that is revoked or expired ends the iteration with SessionExpired. 4003 (server busy) backs off.
    - No message for `3 * heartbeat_interval` seconds (set it to the server's HALTLESS_WS_HEARTBEAT_INTERVAL)
      counts as a dead connection and is reconnected.
    - `fail_fast` (default True): if the very first connection cannot be made (bad URL, refused, unknown host,
      login failure) the iteration raises ConnectError at once instead of retrying. After the first successful
      connection, network errors are always retried. `max_attempts` bounds consecutive failed attempts
      (None: retry forever); past it the iteration raises ConnectError.
    - An HTTP refusal at the upgrade that retrying cannot fix (403 Origin, 404) raises StreamClosed.
    - `resume` (default True): every reconnection asks the server for the events after `last_event_id`, the id
      of the last event received (yielded, or dropped by the filters), so none is missed or repeated. When the
      server cannot replay them (history too short, server restarted) it sends `resync_required`, yielded as
      ResyncRequired whatever the filters: reload state over REST, the stream carries on with live events. The
      first connection starts live. With `resume=False` reconnections start live too and missed events are lost.
    """

    def __init__(
        self,
        client: AsyncHaltlessClient,
        *,
        machine_ids: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        heartbeats: bool = False,
        status_events: bool = False,
        on_status: StatusCallback | None = None,
        heartbeat_interval: float = 15.0,
        backoff: Backoff | None = None,
        fail_fast: bool = True,
        max_attempts: int | None = None,
        ws_url: str | None = None,
        resume: bool = True,
    ) -> None:
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive")
        self._client = client
        self._machine_ids = frozenset(m.lower() for m in machine_ids) if machine_ids is not None else None
        self._types = frozenset(types) if types is not None else None
        self._heartbeats = heartbeats or (self._types is not None and "heartbeat" in self._types)
        self._status_events = status_events
        self._on_status = on_status
        self._dead_after = MISSED_HEARTBEATS * heartbeat_interval
        self._backoff = backoff or Backoff()
        self._fail_fast = fail_fast
        self._max_attempts = max_attempts
        self.url = ws_url or websocket_url(client.base_url)
        self.connected = False
        self.resume = resume
        # The id of the last event received (yielded or filtered out): where a reconnection resumes.
        self.last_event_id: str | None = None
        self._generator: AsyncGenerator[Event | StreamStatus, None] | None = None

    # --- iteration ----------------------------------------------------------------------------------------

    def __aiter__(self) -> DashboardStream:
        return self

    async def __anext__(self) -> Event | StreamStatus:
        if self._generator is None:
            self._generator = self._run()
        return await self._generator.__anext__()

    async def aclose(self) -> None:
        """Close the socket and end the iteration."""
        if self._generator is not None:
            await self._generator.aclose()

    async def __aenter__(self) -> DashboardStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- the loop -----------------------------------------------------------------------------------------

    def _wanted(self, event: Event) -> bool:
        if isinstance(event, ResyncRequired):
            return True  # whatever the filters: the caller's view may be stale
        if isinstance(event, Heartbeat):
            return self._heartbeats
        if self._types is not None and event.type not in self._types:
            return False
        if self._machine_ids is not None:
            machine_id = event.raw.get("machine_id")
            if isinstance(machine_id, str) and machine_id.lower() not in self._machine_ids:
                return False
        return True

    def _status(self, status: StreamStatus) -> bool:
        """Report a status change; True when it should also be yielded."""
        if self._on_status is not None:
            self._on_status(status)
        return self._status_events

    async def _run(self) -> AsyncGenerator[Event | StreamStatus, None]:
        attempt = 0  # failed attempts since the last healthy connection
        ever_connected = False
        previous_code: int | None = None
        while True:
            connected_at: float | None = None
            token: str | None = None
            try:
                token = await self._client.ensure_token()
                async with connect(
                    self.url,
                    open_timeout=OPEN_TIMEOUT,
                    close_timeout=CLOSE_TIMEOUT,
                    compression=None,
                    user_agent_header=USER_AGENT,
                ) as ws:
                    # The guide: the token is the first message, never in the URL.
                    await ws.send(self._auth_message(token))
                    while True:
                        try:
                            async with asyncio.timeout(self._dead_after):
                                raw = await ws.recv()
                        except TimeoutError:
                            raise _Dropped(
                                f"no heartbeat for {self._dead_after:g} s; connection presumed dead"
                            ) from None
                        try:
                            data = orjson.loads(raw)
                        except orjson.JSONDecodeError:
                            continue  # not one of ours; the guide says to ignore what we don't understand
                        if not isinstance(data, dict):
                            continue
                        event = parse_event(data)
                        if connected_at is None:
                            # The server sends no "authenticated" message: its first heartbeat is the confirmation.
                            connected_at = time.monotonic()
                            ever_connected, self.connected, previous_code = True, True, None
                            connected = Connected(self.url, attempt)
                            if self._status(connected):
                                yield connected
                        if event.event_id is not None:
                            self.last_event_id = event.event_id
                        if not isinstance(event, (Heartbeat, ResyncRequired)):
                            attempt = 0  # a real event: this connection is healthy
                        if self._wanted(event):
                            yield event
            except _Dropped as exc:
                reason, code = exc.reason, exc.code
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = _describe_close(code, exc.rcvd.reason if exc.rcvd is not None else "")
            except InvalidStatus as exc:
                http_status = exc.response.status_code
                if http_status in _PERMANENT_UPGRADE_STATUSES:
                    message = f"the server refused the WebSocket upgrade at {self.url} with HTTP {http_status}"
                    if http_status == 403:
                        message += " (Origin not allowed)"
                    if self._status(GaveUp(message)):
                        yield GaveUp(message)
                    raise StreamClosed(message, code=http_status) from None
                reason, code = f"HTTP {http_status} at the upgrade", None
            except InvalidURI as exc:
                raise ConnectError(f"not a WebSocket URL: {exc.uri!r}") from None
            except (OSError, TimeoutError, InvalidHandshake, ConnectError, ServerError) as exc:
                # Refused, unreachable, a handshake cut short, or the REST API down during login/refresh.
                reason, code = _describe_failure(exc), None
                if self._fail_fast and not ever_connected:
                    message = f"cannot connect to {self.url}: {reason}"
                    if self._status(GaveUp(message)):
                        yield GaveUp(message)
                    raise ConnectError(message) from exc
            self.connected = False
            if connected_at is not None and time.monotonic() - connected_at >= self._backoff.healthy_after:
                attempt = 0

            if code in _REFRESH_FIRST:
                try:
                    await self._client.refresh_after(token, reason)
                except SessionExpired as exc:
                    message = f"session expired: {exc.detail}"
                    if self._status(GaveUp(message)):
                        yield GaveUp(message)
                    raise
                except (ConnectError, ServerError) as exc:
                    reason = f"{reason}; token refresh failed: {_describe_failure(exc)}"
                else:
                    if previous_code not in _REFRESH_FIRST:
                        # A fresh token deserves an immediate retry; a second refusal in a row goes through backoff.
                        previous_code = code
                        status = Reconnecting(0.0, attempt + 1, f"{reason}; access token refreshed")
                        if self._status(status):
                            yield status
                        continue
            previous_code = code

            attempt += 1
            if self._max_attempts is not None and attempt > self._max_attempts:
                message = f"gave up after {self._max_attempts} failed attempts; last: {reason}"
                if self._status(GaveUp(message)):
                    yield GaveUp(message)
                raise ConnectError(message)
            delay = self._backoff.delay(attempt)
            status = Reconnecting(delay, attempt, reason)
            if self._status(status):
                yield status
            await asyncio.sleep(delay)

    def _auth_message(self, token: str) -> str:
        """The first message: the bare token, or with `resume_after` when reconnecting with resume on."""
        if not self.resume or self.last_event_id is None:
            return token
        return orjson.dumps({"token": token, "resume_after": self.last_event_id}).decode()


def _describe_close(code: int | None, reason: str) -> str:
    names = {
        1000: "closed normally",
        1001: "server going away",
        1006: "connection lost",
        1011: "server error",
        1012: "server restarting",
        CLOSE_INVALID_TOKEN: "access token refused (4001)",
        CLOSE_AUTH_TIMEOUT: "authentication timed out (4002)",
        CLOSE_TOO_MANY_PENDING: "server busy: too many pending connections (4003)",
        CLOSE_SESSION_REVOKED: "session revoked (4004)",
        CLOSE_SLOW_CONSUMER: "too slow: the server dropped us (4008)",
    }
    if code is None:
        return "connection lost"
    text = names.get(code, f"closed with code {code}")
    return f"{text}: {reason}" if reason else text


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return text if text else type(exc).__name__
