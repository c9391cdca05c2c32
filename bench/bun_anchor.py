"""Anchor "Bun": Bun's built-in uWebSockets pub/sub serving our dashboard handshake (bench/bun/server.js).

Bun comes from the npm package `bun`, pinned in bench/bun/package.json and package-lock.json, and is installed on
demand into bench/bun/node_modules with `npm ci`. `ensure_bun()` says why it cannot be used instead of failing:
the fan-out bench then prints "skipped: <reason>" in Bun's place and measures the rest.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from bench import fanout
from bench.ports import free_port

FOLDER = Path(__file__).resolve().parent / "bun"
BINARY = FOLDER / "node_modules" / ".bin" / "bun"
SCRIPT = FOLDER / "server.js"
INSTALL_TIMEOUT = 600.0


def pinned_version() -> str:
    """The version of Bun package.json pins."""
    version: str = json.loads((FOLDER / "package.json").read_text())["dependencies"]["bun"]
    return version


def _version_of(binary: Path) -> str | None:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _npm_reason(output: str) -> str:
    """npm's error code and first message line (it prints usage and a log path after them), else the last line."""
    errors = [line.removeprefix("npm error").strip() for line in output.splitlines() if line.startswith("npm error")]
    code = next((line.removeprefix("code ").strip() for line in errors if line.startswith("code ")), "")
    message = next((line for line in errors if line and not line.startswith("code ")), "")
    if message:
        return f"{code}: {message}"[:200] if code else message[:200]
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("npm warn")]
    return lines[-1][:200] if lines else "no output"


@functools.cache
def ensure_bun() -> Path | str:
    """The pinned Bun binary, installed if needed; or why it cannot be had (a line for the table)."""
    wanted = pinned_version()
    if _version_of(BINARY) == wanted:
        return BINARY
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found"
    try:
        done = subprocess.run(
            [npm, "ci", "--prefix", str(FOLDER), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"npm ci failed ({type(exc).__name__})"
    if done.returncode != 0:
        return f"npm ci failed: {_npm_reason(done.stderr + done.stdout)}"
    if _version_of(BINARY) != wanted:
        # npm versions that hold back install scripts leave the package's own postinstall undone; it only
        # links the platform package's binary (shipped inside the registry package) into place.
        node = shutil.which("node")
        if node is not None:
            subprocess.run(
                [node, "install.js"], cwd=FOLDER / "node_modules" / "bun", capture_output=True, timeout=120, check=False
            )
    found = _version_of(BINARY)
    if found != wanted:
        return f"bun {wanted} does not run here (found {found or 'nothing runnable'} at bench/bun/node_modules)"
    return BINARY


def pin_all_threads(pid: int, cpu: int) -> None:
    """Pin every thread of a process (Bun runs its GC and I/O helpers on threads of their own)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tasks:
        fanout.pin(int(tid), cpu)


def start_bun(binary: Path, tenants: int, batch: int = fanout.BATCH) -> fanout.Server:
    """Bun with `tenants` tenants, fed the same bodies as ours and B."""
    port = free_port()
    table: dict[str, str] = {}
    groups = []
    for i in range(tenants):
        token = f"token-{i}-{uuid.uuid4().hex}"
        table[token] = f"tenant-{i}"
        machine_ids = [str(uuid.uuid4()) for _ in range(fanout.MACHINES_PER_TENANT)]
        groups.append({"token": token, "post_token": token, "body": fanout.reading_body(machine_ids, batch)})
    process = subprocess.Popen(
        [str(binary), str(SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=FOLDER,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    server = fanout.Server("Bun", process, port, port, batch=batch)
    try:
        process.stdin.write(json.dumps({"port": port, "tokens": table}) + "\n")
        process.stdin.flush()
        if "listening" not in process.stdout.readline():
            raise RuntimeError("Bun did not start")
        # Threads it starts later inherit the CPU of the thread that starts them.
        pin_all_threads(process.pid, fanout.SERVER_CPU)
    except BaseException:
        server.stop()
        raise
    server.groups = groups
    return server
