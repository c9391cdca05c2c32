"""Real headless Chromium against a real `haltless demo` (server + simulated fleet) in a subprocess.

The tests skip when Debian's /usr/bin/chromium or the `playwright` package is missing, and fail instead when
HALTLESS_TEST_REQUIRE_SERVICES=1 (as in CI). Playwright drives the system Chromium through its bundled driver;
it never downloads a browser.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import EVENT_TIMEOUT, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_EMAIL = "demo@haltless.local"
DEMO_PASSWORD = "haltless-demo"
# Short enough that the tests see the heartbeat watchdog and token refreshes at work within seconds.
DEMO_ENV = {"HALTLESS_WS_HEARTBEAT_INTERVAL": "1", "HALTLESS_ACCESS_TOKEN_TTL": "20"}


def _missing(reason: str) -> None:
    if os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (HALTLESS_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@dataclass
class Demo:
    """`python -m haltless demo` in a subprocess, on a fixed port and data dir so it can be restarted."""

    port: int
    data_dir: Path
    log_path: Path
    machines: int = 3
    # Settings of this demo beyond DEMO_ENV (HALTLESS_* variables).
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the demo and wait until every simulated machine has reported; stop it again on failure."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
        env.update(DEMO_ENV)
        env.update(self.env)
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "haltless",
                "demo",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--machines",
                str(self.machines),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"demo exited with {self.process.returncode}: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("demo did not come up")
        # The simulator creates the tenant and fleet right after the server starts; wait until all report.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            login = httpx.post(
                f"{self.base_url}/api/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
            )
            if login.status_code == 200:
                listing = httpx.get(
                    f"{self.base_url}/api/v1/machines",
                    params={"include": "latest"},
                    headers=self.auth(login.json()["access_token"]),
                ).json()
                if len(listing["items"]) >= self.machines and all(m["latest"] for m in listing["items"]):
                    return
            time.sleep(0.2)
        raise AssertionError("demo fleet did not start reporting")

    def login(self, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> str:
        response = httpx.post(f"{self.base_url}/api/v1/auth/login", json={"email": email, "password": password})
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One REST call as the demo admin."""
        return httpx.request(method, f"{self.base_url}/api/v1{path}", headers=self.auth(self.login()), **kwargs)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no graceful close of any socket, as in a crash or a power cut."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self._close_log()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


# Module scope: the sync Playwright API runs an event loop of its own, which must be gone before the next
# module's asyncio tests start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: apt-get install chromium to run the dashboard tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is missing: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def demo_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Demo]]:
    demos: list[Demo] = []

    def factory() -> Demo:
        root = tmp_path_factory.mktemp("demo")
        demo = Demo(port=free_port(), data_dir=root / "data", log_path=root / "demo.log")
        demo.start()
        demos.append(demo)
        return demo

    yield factory
    for demo in demos:
        demo.stop()


@pytest.fixture(scope="module")
def shared_demo(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo for the tests of a module that don't stop the server (starting one takes seconds)."""
    root = tmp_path_factory.mktemp("shared-demo")
    demo = Demo(port=free_port(), data_dir=root / "data", log_path=root / "demo.log")
    demo.start()
    yield demo
    demo.stop()


@pytest.fixture
def page_factory(browser: Browser) -> Iterator[Callable[..., Page]]:
    """A fresh browser context (its own sessionStorage) per page; page errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def factory(width: int = 1400, height: int = 900) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        # Playwright's assertions wait 5 s by default, whatever the page's timeout: too short for a render on a
        # loaded CI machine (it failed a run). They return as soon as they hold, so this bounds only a failure.
        from playwright.sync_api import expect

        expect.set_options(timeout=20_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield factory
    for context in contexts:
        context.close()
    assert not errors, errors


def log_in(page: Page, demo: Demo, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> None:
    """Open the dashboard, sign in through the form, wait for the live socket."""
    page.goto(f"{demo.base_url}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#connection[data-state='live']")


@dataclass
class HeldAnswer:
    """The page's first request matching a pattern, held back until `release`: its answer arrives late, after
    whatever the test makes the page do meanwhile (a slow link). Later matching requests pass at once."""

    page: Page
    held: list[Route] = field(default_factory=list)

    def _route(self, route: Route) -> None:
        if self.held:
            route.continue_()
        else:
            self.held.append(route)

    def wait_held(self) -> None:
        """Wait until the first matching request is held. Playwright runs the route handler only while it
        waits, so this waits in the page, in short steps; the deadline only bounds a failure."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        while not self.held:
            assert time.monotonic() < deadline, "the page never made the request to hold"
            self.page.wait_for_timeout(50)

    def release(self) -> None:
        """Let the held request through and wait until its response has been read in full. The page handles
        the answer after that, in its own time: a test that must know waits
        on the page for it."""
        assert self.held, "no request is held: call wait_held() first"
        route = self.held[0]
        with self.page.expect_response(lambda response: response.request == route.request) as answer:
            route.continue_()
        answer.value.finished()


def hold_first_answer(page: Page, url: str | re.Pattern[str]) -> HeldAnswer:
    """Hold the page's first request to `url` (a glob or a regular expression, as for `page.route`)."""
    held = HeldAnswer(page)
    page.route(url, held._route)
    return held
