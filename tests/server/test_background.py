"""The supervised background loop (server/service/background.py), driven through its injected `sleep`."""

from __future__ import annotations

import asyncio
import logging

import pytest

from haltless.server.service.background import Watcher, every

BOUND = 10.0  # seconds any wait below may take at most; each ends on an event, never on elapsed time


class Ticks:
    """An injected `sleep` that returns only when the test says a tick has passed; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.waiting = asyncio.Event()
        self._ticks: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.waiting.set()
        await self._ticks.get()

    def tick(self) -> None:
        self.waiting.clear()
        self._ticks.put_nowait(None)

    async def next_wait(self) -> float:
        async with asyncio.timeout(BOUND):
            await self.waiting.wait()
        return self.asked[-1]


class Calls:
    """A job that counts its runs and lets the test wait for the n-th."""

    def __init__(self, *, fail: bool = False, wants: float | None = None) -> None:
        self.count = 0
        self.fail = fail
        self.wants = wants
        self._changed = asyncio.Condition()

    async def __call__(self) -> float | None:
        async with self._changed:
            self.count += 1
            self._changed.notify_all()
        if self.fail:
            raise RuntimeError(f"run {self.count} broke")
        return self.wants

    async def reach(self, n: int) -> None:
        async with asyncio.timeout(BOUND), self._changed:
            await self._changed.wait_for(lambda: self.count >= n)


async def test_a_job_that_raises_keeps_being_called_and_each_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks, job = Ticks(), Calls(fail=True)
    loop = every(30.0, job, name="flaky job", sleep=ticks.sleep)
    try:
        for n in range(1, 4):
            assert await ticks.next_wait() == 30.0
            ticks.tick()
            await job.reach(n)
        assert await ticks.next_wait() == 30.0  # still looping after three failures
        assert loop.running
    finally:
        await loop.stop()
    failures = [r for r in caplog.records if r.name == "haltless.background" and r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failures] == ["flaky job failed; trying again in 30 s"] * 3
    assert all(r.exc_info is not None and "broke" in str(r.exc_info[1]) for r in failures)


async def test_stop_is_prompt_while_waiting_and_while_a_run_is_in_flight() -> None:
    loop = every(3600.0, Calls(), name="idle")
    async with asyncio.timeout(BOUND):
        await loop.stop()
    assert not loop.running

    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop = every(3600.0, stuck, name="stuck", at_start=True)
    async with asyncio.timeout(BOUND):
        await started.wait()
        await loop.stop()
    assert cancelled.is_set() and not loop.running


async def test_first_run_waits_an_interval_unless_at_start() -> None:
    ticks, job = Ticks(), Calls()
    loop = every(5.0, job, name="later", sleep=ticks.sleep)
    assert await ticks.next_wait() == 5.0
    assert job.count == 0
    await loop.stop()

    ticks, waits_before_run = Ticks(), asyncio.Queue[int]()

    async def first() -> None:
        waits_before_run.put_nowait(len(ticks.asked))

    loop = every(5.0, first, name="now", sleep=ticks.sleep, at_start=True)
    async with asyncio.timeout(BOUND):
        assert await waits_before_run.get() == 0
    assert await ticks.next_wait() == 5.0
    await loop.stop()


async def test_a_job_may_ask_to_run_sooner_but_never_later_than_the_interval() -> None:
    ticks = Ticks()
    job = Calls(wants=2.5)
    loop = every(10.0, job, name="eager", sleep=ticks.sleep, at_start=True)
    assert await ticks.next_wait() == 2.5
    job.wants = 99.0
    ticks.tick()
    await job.reach(2)
    assert await ticks.next_wait() == 10.0
    job.wants = -1.0  # overdue: runs again without sleeping
    ticks.tick()
    await job.reach(4)
    await loop.stop()


async def test_wake_runs_the_job_before_the_interval_ends() -> None:
    job = Calls()
    loop = every(3600.0, job, name="woken")
    loop.wake()
    await job.reach(1)
    loop.wake()
    await job.reach(2)
    await loop.stop()


async def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        every(0.0, Calls(), name="busy")


class Failing(Watcher):
    """A watcher whose every other pass fails; records its passes and its `starting` calls."""

    name = "test watcher"

    def __init__(self) -> None:
        super().__init__(tick=0.01)
        self.runs = 0
        self.started = 0

    def starting(self) -> None:
        self.started += 1

    async def run_pass(self) -> None:
        self.runs += 1
        if self.runs % 2:
            raise RuntimeError(f"pass {self.runs} broke")


async def _passes(watcher: Watcher, n: int) -> None:
    async with asyncio.timeout(BOUND):
        while watcher.passes_finished < n:
            await asyncio.sleep(0)


async def test_a_watcher_counts_failed_passes_too_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    watcher = Failing()
    with pytest.raises(RuntimeError, match="pass 1 broke"):
        await watcher.check()  # a pass now, outside the loop: its failure is the caller's, and it is counted
    assert (watcher.passes_started, watcher.passes_finished) == (1, 1)
    await watcher.check()
    assert (watcher.passes_started, watcher.passes_finished, watcher.started) == (2, 2, 0)

    with caplog.at_level(logging.ERROR, logger="haltless.background"):
        watcher.start()
        watcher.start()  # one loop, however often started
        await _passes(watcher, 7)
        await watcher.stop()
    assert watcher.started == 1
    assert any(r.getMessage().startswith("test watcher failed") for r in caplog.records)
    assert watcher.passes_started == watcher.passes_finished  # stop waits for a pass in flight
    finished = watcher.passes_finished
    await watcher.stop()  # stopping twice is harmless
    await asyncio.sleep(0)
    assert watcher.passes_finished == finished  # no pass after stop
