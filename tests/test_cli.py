"""The `haltless` command as users run it: admin create-tenant, serve (log hygiene), demo + the guide's sample."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

HALTLESS = [sys.executable, "-m", "haltless"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    env["HALTLESS_DATA_DIR"] = str(tmp_path / "data")
    return env


def _create_acme(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`haltless admin create-tenant` for the Acme tenant, as an operator types it."""
    args = ["admin", "create-tenant", "--name", "Acme", "--email", "ops@acme.test", "--password", "s3cret-pass"]
    return subprocess.run([*HALTLESS, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def _wait_http(url: str, process: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited early with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def _has_alert_lines(lines: list[str]) -> bool:
    critical = any(line.startswith("[critical] ") for line in lines)
    warning = any(line.startswith("Machine ") and line.endswith(": healthy → warning") for line in lines)
    return critical and warning


def _lines_until(process: subprocess.Popen[str], done: Callable[[list[str]], bool], seconds: float) -> list[str]:
    """Lines of a child's stdout until `done(lines)` holds or the time is up."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not done(lines) and time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line.strip())
    return lines


@pytest.fixture
def stop_later() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_admin_create_tenant_prints_ids_as_json(tmp_path: Path) -> None:
    result = _create_acme(_env(tmp_path))
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"tenant_id", "user_id"}
    again = _create_acme(_env(tmp_path))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr


def test_server_logs_never_contain_a_token_from_the_url(
    tmp_path: Path, stop_later: list[subprocess.Popen[str]]
) -> None:
    env = _env(tmp_path)
    assert _create_acme(env).returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [*HALTLESS, "serve", "--port", str(port), "--log-level", "info"],
        env={**env, "HALTLESS_WS_AUTH_TIMEOUT": "0.5"},
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    stop_later.append(server)
    base = f"http://127.0.0.1:{port}"
    _wait_http(f"{base}/api/v1/health", server)
    token = httpx.post(f"{base}/api/v1/auth/login", json={"email": "ops@acme.test", "password": "s3cret-pass"}).json()[
        "access_token"
    ]
    client = textwrap.dedent(
        f"""
        import asyncio, websockets
        async def main():
            async with websockets.connect("ws://127.0.0.1:{port}/api/v1/ws/dashboard?token={token}") as ws:
                try:
                    await ws.recv()
                except websockets.ConnectionClosed as exc:
                    print(exc.rcvd.code)
        asyncio.run(main())
        """
    )
    closed = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True, timeout=30, check=True)
    assert closed.stdout.strip() == "4002"
    httpx.get(f"{base}/api/v1/health?token={token}")
    server.send_signal(signal.SIGINT)
    _, stderr = server.communicate(timeout=60)
    assert "WebSocket" in stderr
    assert "[redacted]" in stderr
    assert token not in stderr
    assert token.split(".")[2] not in stderr


def test_demo_feeds_the_guide_python_sample(tmp_path: Path, stop_later: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [*HALTLESS, "demo", "--port", str(port), "--machines", "3"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stop_later.append(demo)
    base = f"http://127.0.0.1:{port}"
    _wait_http(f"{base}/api/v1/health", demo)
    assert demo.stdout is not None
    banner = demo.stdout.readline() + demo.stdout.readline()
    assert base in banner
    assert "demo@haltless.local" in banner
    token = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": "demo@haltless.local", "password": "haltless-demo"}
    ).json()["access_token"]
    # The guide's Python quick start, verbatim but for WS_URL and the token.
    sample = textwrap.dedent(
        f'''
        import asyncio
        import json
        import websockets
        WS_URL = "ws://127.0.0.1:{port}/api/v1/ws/dashboard"
        async def connect(access_token: str):
            async with websockets.connect(WS_URL) as ws:
                # Authenticate
                await ws.send(access_token)
                print("Connected and authenticated")
                async for raw_message in ws:
                    data = json.loads(raw_message)
                    if data["type"] == "sensor_update":
                        print(f"{{data['machine_id']}}: {{data['metric_name']}} = {{data['value']}}")
                    elif data["type"] == "alert":
                        print(f"[{{data['severity']}}] {{data['message']}}")
                    elif data["type"] == "machine_status":
                        print(f"Machine {{data['machine_id']}}: {{data['old_status']}} → {{data['new_status']}}")
        asyncio.run(connect("{token}"))
        '''
    )
    reader = subprocess.Popen(
        [sys.executable, "-u", "-c", sample], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "Connected and authenticated"
        lines = [reader.stdout.readline().strip() for _ in range(8)]
        # The demo's first degrading machine warns within ~15 s and goes critical within ~40 s.
        later = _lines_until(reader, lambda seen: _has_alert_lines(seen), seconds=75)
    finally:
        reader.kill()
        reader.communicate()
    metrics = {line.split(": ", 1)[1].split(" = ")[0] for line in lines}
    assert metrics <= {"temperature", "vibration", "spindle_speed", "current"}
    assert "temperature" in metrics
    for line in lines:
        float(line.rsplit(" = ", 1)[1])
    assert _has_alert_lines(later), later[-20:]
    demo.send_signal(signal.SIGINT)
    assert demo.wait(60) == 0
