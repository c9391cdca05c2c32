"""A dashboard connection's state is one enum (server/ws/hub.py ConnectionState); it alone decides the close."""

from __future__ import annotations

import asyncio

from haltless.core.wire import CloseCode
from haltless.server.ws.hub import SLOW_CONSUMER_REASON, ConnectionState, DashboardConnection


async def _ignore(_text: str) -> None:
    return None


def _connection(limit_bytes: int = 10) -> DashboardConnection:
    return DashboardConnection("tenant", _ignore, limit_bytes=limit_bytes, heartbeat_interval=3600.0)


async def test_an_open_connection_has_no_close_frame() -> None:
    connection = _connection()
    assert connection.state is ConnectionState.OPEN and not connection.state
    assert connection.close_frame() is None


async def test_overflow_closes_with_4008_and_a_later_stop_keeps_it() -> None:
    connection = _connection()
    connection.push(("x" * 20,), 20)  # one batch is always taken, whatever its size
    connection.push(("y",), 1)  # the next finds the outbox over budget
    assert connection.state is ConnectionState.OVERFLOWED
    connection.stop()  # the socket handler always stops the connection it is done with
    connection.close_with(CloseCode.SESSION_REVOKED, "too late")
    assert connection.state is ConnectionState.OVERFLOWED
    assert connection.close_frame() == (CloseCode.SLOW_CONSUMER, SLOW_CONSUMER_REASON)


async def test_close_with_is_the_frame_sent_and_stop_alone_is_going_away() -> None:
    revoked = _connection()
    revoked.close_with(CloseCode.SESSION_REVOKED, "signed out")
    revoked.stop()
    assert revoked.state is ConnectionState.CLOSING
    assert revoked.close_frame() == (CloseCode.SESSION_REVOKED, "signed out")

    shut_down = _connection()
    shut_down.stop()
    shut_down.push(("z",), 1)  # nothing is queued once ended
    assert shut_down.state is ConnectionState.STOPPED
    assert shut_down.close_frame() == (CloseCode.GOING_AWAY, "")


async def test_every_ended_state_finishes_the_connection() -> None:
    for end in (
        lambda c: c.stop(),
        lambda c: c.close_with(4004, "x"),
        lambda c: [c.push(("a" * 20,), 20) for _ in "ab"],
    ):
        connection = _connection()
        end(connection)
        async with asyncio.timeout(5):  # already done: returns at once
            await connection.finished()
