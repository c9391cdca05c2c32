"""The hub's heartbeats (server/ws/hub.py HeartbeatQueue): one timer for all sockets, beats an interval apart."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import orjson

from haltless.core.clock import ManualClock
from haltless.server.ws.hub import DashboardConnection, DashboardHub
from tests.conftest import wait_until

INTERVAL = 0.2


class _Transport:
    """Where the fast path writes frames (server/ws/hub.py FrameWriter): records each heartbeat and its loop time."""

    def __init__(self) -> None:
        self.beats: list[tuple[float, str]] = []

    def write(self, frames: bytes) -> None:
        # One unmasked text frame of under 126 bytes: a two-byte header, then the JSON.
        assert frames[0] == 0x81 and frames[1] == len(frames) - 2
        self.beats.append((asyncio.get_running_loop().time(), orjson.loads(frames[2:])["server_time"]))

    def buffered(self) -> int:
        return 0

    def on_close(self, callback: Callable[[], None]) -> None:
        return None

    def close(self, code: int, reason: str, timeout: float) -> None:
        return None


async def _no_send(_text: str) -> None:
    raise AssertionError("the fast path never sends through ASGI")


def _open(hub: DashboardHub, transport: _Transport) -> DashboardConnection:
    connection = DashboardConnection("tenant", _no_send, limit_bytes=1 << 20, frames=transport)
    hub.add(connection)
    hub.heartbeats.start(connection)
    return connection


async def test_sockets_share_one_timer_and_get_beats_an_interval_apart() -> None:
    clock = ManualClock(1_700_000_000_000_000)
    hub = DashboardHub(max_pending=1, heartbeat_interval=INTERVAL, clock=clock)
    first, second = _Transport(), _Transport()
    a = _open(hub, first)
    b = _open(hub, second)
    try:
        await wait_until(lambda: len(first.beats) >= 4 and len(second.beats) >= 4, "four heartbeats each")
        for record in (first, second):
            times = [at for at, _ in record.beats]
            # A lower bound only, with room for the writer being preempted inside a tick on a loaded machine (the
            # hub schedules by the loop time it read before writing): the queue never beats a socket a tick early
            # (interval / 16 apart) or twice in one tick.
            assert all(later - earlier >= INTERVAL / 2 for earlier, later in itertools.pairwise(times)), times
        # Stamped by the hub's clock (here a manual one that never moves).
        assert {stamp for _, stamp in first.beats} == {"2023-11-14T22:13:20Z"}

        # A stopped socket leaves the queue when it next comes due, and gets no more beats.
        b.stop()
        got = len(second.beats)
        await wait_until(lambda: len(hub.heartbeats) == 1, "the stopped socket leaves the queue")
        before = len(first.beats)
        await wait_until(lambda: len(first.beats) >= before + 2, "the open socket keeps beating")
        assert len(second.beats) == got
    finally:
        a.stop()
        hub.close_all()
    assert len(hub.heartbeats) == 0


async def test_on_finish_runs_soon_and_never_inside_the_end() -> None:
    hub = DashboardHub(max_pending=1)
    connection = DashboardConnection("tenant", _no_send, limit_bytes=1, frames=_Transport())
    hub.add(connection)
    ran: list[str] = []
    connection.on_finish(lambda finished: ran.append("first" if finished is connection else "?"))
    connection.on_finish(lambda finished: ran.append("second" if finished is connection else "?"))
    hub.close_all()  # ends the connection while looping over the hub's sockets
    assert ran == []
    await connection.finished()
    await wait_until(lambda: ran == ["first", "second"], "the callbacks, in order, each given the connection")
    connection.on_finish(lambda _connection: ran.append("late"))  # already finished: still soon, not now
    assert ran == ["first", "second"]
    await wait_until(lambda: ran == ["first", "second", "late"], "the late callback")
