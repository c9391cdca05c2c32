"""`haltless watch` as an operator runs it: against `haltless demo`, through a demo restart, stopped by Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

HALTLESS = [sys.executable, "-m", "haltless"]


class Process:
    """A subprocess whose stdout lines are collected by a thread, so a test can wait for a line with a timeout.

    The timeouts only bound a failure: on a loaded CI machine a demo takes tens of seconds to start, and the
    watch's reconnect backoff (up to 30 s with jitter) may then wait that long again before it connects.
    """

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 120) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}; saw {self.seen[-20:]}") from None
            self.seen.append(line)
            if text in line:
                return line

    def interrupt(self) -> int:
        self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise

    def cleanup(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.cleanup()


def test_watch_prints_live_demo_events_through_a_restart(tmp_path: Path, processes: list[Process]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    port = free_port()
    demo_args = [*HALTLESS, "demo", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--machines", "2"]
    demo = Process(demo_args, env)
    processes.append(demo)
    demo.wait_for("Haltless demo running")

    env_watch = env | {
        "HALTLESS_URL": f"http://127.0.0.1:{port}",
        "HALTLESS_EMAIL": "demo@haltless.local",
        "HALTLESS_PASSWORD": "haltless-demo",
    }
    watch = Process([*HALTLESS, "watch", "--type", "sensor_update", "--machine", "Press 01"], env_watch)
    processes.append(watch)
    watch.wait_for("connected to ws://")
    line = watch.wait_for("temperature")
    assert "Press 01" in line and "celsius" in line
    assert not any("Lathe 01" in seen for seen in watch.seen)

    assert demo.interrupt() == 0
    watch.wait_for("reconnecting in")
    again = Process(demo_args, env)
    processes.append(again)
    again.wait_for("Haltless demo running")
    watch.wait_for("connected to ws://")
    assert "Press 01" in watch.wait_for("temperature")

    assert watch.interrupt() == 0
    assert not any("Traceback" in seen for seen in watch.seen)
