"""Supervised background loops: run a job every N seconds; a run that fails is logged and the loop goes on.

The offline watcher, the no_data watcher, the maintenance window scheduler, retention, the revoked-session
sweep and the notification dispatcher are each one `every(...)`; the three watchers share `Watcher` (start,
stop and the pass counters tests wait on). A job may ask for its next run sooner than
the interval (by returning seconds), and `wake()` runs it soon from outside (the dispatcher, when outbox rows
are written). `stop()` cancels the loop, a run in flight included, and waits for it. Tests drive the loop
through `sleep`, the one way it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

log = logging.getLogger("haltless.background")

# A run: None to be called again after the interval, or the seconds after which it wants to run again
# (at most the interval).
Job = Callable[[], Awaitable[float | None]]
Sleep = Callable[[float], Awaitable[None]]


class Background:
    """A running loop (from `every`)."""

    __slots__ = ("_task", "_woken", "name")

    def __init__(self, name: str, task: asyncio.Task[None], woken: asyncio.Event) -> None:
        self.name = name
        self._task = task
        self._woken = woken

    @property
    def running(self) -> bool:
        return not self._task.done()

    def wake(self) -> None:
        """Run the job soon rather than at the end of the interval (from the loop's thread)."""
        self._woken.set()

    async def stop(self) -> None:
        """Cancel the loop, a run in flight too, and wait until it has ended."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def every(interval: float, job: Job, *, name: str, at_start: bool = False, sleep: Sleep = asyncio.sleep) -> Background:
    """Run `job` every `interval` seconds in a task of the running loop, until stopped.

    `at_start`: the first run at once rather than after one interval. An exception from a run is logged
    with its traceback and the loop goes on at the interval's pace; only cancellation (stop) ends it.
    """
    if interval <= 0:
        raise ValueError(f"{name}: the interval must be positive, not {interval}")
    woken = asyncio.Event()
    task = asyncio.create_task(_loop(interval, job, name, at_start, sleep, woken), name=f"haltless {name}")
    task.add_done_callback(_report_end)
    return Background(name, task, woken)


async def _loop(interval: float, job: Job, name: str, at_start: bool, sleep: Sleep, woken: asyncio.Event) -> None:
    delay = 0.0 if at_start else interval
    while True:
        await _wait(delay, sleep, woken)
        woken.clear()  # a wake during the run below means: run again without waiting
        try:
            wanted = await job()
        except Exception:
            log.exception("%s failed; trying again in %g s", name, interval)
            wanted = None
        delay = interval if wanted is None else min(interval, max(0.0, wanted))


async def _wait(delay: float, sleep: Sleep, woken: asyncio.Event) -> None:
    """Until `delay` has passed or the loop is woken; yields to the event loop even when neither waits."""
    if woken.is_set() or delay <= 0:
        await asyncio.sleep(0)
        return
    sleeping = asyncio.ensure_future(sleep(delay))
    waking = asyncio.ensure_future(woken.wait())
    try:
        await asyncio.wait((sleeping, waking), return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeping.cancel()
        waking.cancel()


def _report_end(task: asyncio.Task[None]) -> None:
    """A loop ends only by stop(); anything else (a BaseException from a job) is said, never silent."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background loop %s ended: %r", task.get_name(), exc, exc_info=exc)


class Watcher(ABC):
    """A service that makes one pass (`run_pass`) every `tick` seconds on one supervised loop, between `start()`
    and `stop()`; `check()` makes a pass now (tests, and the loop itself).

    `passes_started` / `passes_finished` count passes: a test that moved the clock waits for a pass started after
    that (`mark = w.passes_started`, then until `w.passes_finished > mark`), never for a time."""

    #: The loop's name in logs ("no_data check failed; trying again in 0.5 s").
    name: str = "watcher"

    def __init__(self, *, tick: float) -> None:
        self._tick = tick
        self._loop: Background | None = None
        self.passes_started = 0
        self.passes_finished = 0

    def start(self) -> None:
        if self._loop is None:
            self.starting()
            # A database hiccup must not stop the watcher for good: `every` logs the failed pass and goes on.
            self._loop = every(self._tick, self.check, name=self.name)

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None

    async def check(self) -> None:
        """One pass now."""
        self.passes_started += 1
        try:
            await self.run_pass()
        finally:
            self.passes_finished += 1

    def starting(self) -> None:  # noqa: B027 (an optional hook, empty on purpose)
        """Called by `start()` before the loop's first pass is scheduled."""

    @abstractmethod
    async def run_pass(self) -> None:
        """One pass at the clock's `now`."""
