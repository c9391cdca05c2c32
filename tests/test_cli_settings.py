"""A bad setting stops `haltless serve` and `haltless demo` with one line naming the variable and the fix, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port


def _start(tmp_path: Path, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    return subprocess.run(
        [sys.executable, "-m", "haltless", command, "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("HALTLESS_JWT_SECRET", "short", "at least 32 random characters"),
        ("HALTLESS_OFFLINE_AFTER", "abc", "(got 'abc'): Input should be a valid number"),
        ("HALTLESS_DATABASE_URL", "mysql://ops:hunter22@db/plant", "unknown database 'mysql'; use sqlite+aiosqlite"),
        ("HALTLESS_DATABASE_URL", "postgresql+asyncpg://ops:hunter22@127.0.0.1:1/plant", "cannot connect to"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_bad_setting_is_one_line_with_the_variable_and_the_fix(
    tmp_path: Path, command: str, variable: str, value: str, says: str
) -> None:
    result = _start(tmp_path, command, **{variable: value})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {variable}")
    assert says in lines[0]
    assert "Traceback" not in result.stderr
    assert "hunter22" not in result.stderr  # a password in a URL is never echoed


def test_make_demo_takes_a_port() -> None:
    """`make demo PORT=8001` runs `haltless demo --port 8001` (dry run: nothing starts)."""
    root = Path(__file__).resolve().parents[1]
    planned = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "demo", "PORT=8001"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".venv/bin/haltless demo --port 8001" in planned.stdout
