"""`/openapi.json` describes the API as it behaves: schemathesis, every check, 100 examples per operation.

schemathesis (`st run … --checks all`) runs against a real server as an admin and fails on any answer the
document does not describe: an undocumented status, a body of another shape, a 5xx, a schema-valid request
refused or a schema-violating one taken, a 405 without the path's methods, an operation that ignores its
credential. hooks.py gives the run its credential (a new admin for every token it needs, so nothing the
fuzzing does to its own account can cost it its login); schemathesis.toml says, each with its reason, where a
check is told what the contract is (per-item rejection in a 202; a 422 for rules across parameters that JSON
Schema cannot state).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import RunningServer, Tenant

CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("hooks.py")
ROOT = Path(__file__).resolve().parents[2]  # hooks.py imports tests.contract.credential
# 100 examples per operation keeps both backends' runs within a few minutes of the default test run; issue 15's
# bar is 200: HALTLESS_CONTRACT_EXAMPLES=200 pytest tests/contract.
EXAMPLES = int(os.environ.get("HALTLESS_CONTRACT_EXAMPLES", "100"))
# A fixed seed: CI reruns the same cases. Set HALTLESS_CONTRACT_SEED to explore others.
SEED = os.environ.get("HALTLESS_CONTRACT_SEED", "20261203")


@pytest.mark.timeout(1800)
async def test_openapi_describes_every_answer_of_every_operation(
    database_backend: str,
    server_factory: Callable[..., RunningServer],
    tenant_factory: Callable[..., Awaitable[Tenant]],
    tmp_path: Path,
) -> None:
    # Fuzzed notification channels may reach nothing: one loopback address where nothing listens. The server
    # trusts 127.0.0.1 as a proxy: the run's own logins come "through" it from an address of their own (hooks.py).
    nowhere = ["127.255.255.254/32"]
    running = server_factory(trusted_proxies=["127.0.0.1"], webhook_allow_networks=nowhere, smtp_allow_networks=nowhere)
    tenant = await tenant_factory(running)
    # schemathesis gives the schema 10 s; building it the first time takes seconds on a loaded machine. The
    # server keeps it once built: ask for it first, with time to spare.
    assert (await tenant.http.get("/openapi.json", timeout=120)).status_code == 200
    env = {
        **os.environ,
        # The run's credential: a new admin of this tenant for every token it needs (hooks.py says why).
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HALTLESS_CONTRACT_URL": running.base_url,
        "HALTLESS_CONTRACT_DATABASE_URL": running.settings.effective_database_url,
        "HALTLESS_CONTRACT_TENANT_ID": tenant.tenant_id,
        "NO_COLOR": "1",
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{running.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        SEED,
    ]
    # In tmp_path: schemathesis keeps a cache of what it found in its working directory; a run starts afresh.
    try:
        result = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1700, check=False
        )
    except subprocess.TimeoutExpired as exc:
        # What it got through, to tell a slow machine from a stuck run.
        raise AssertionError(f"schemathesis ran out of time:\n{_text(exc.stdout)[-20_000:]}") from None
    report = result.stdout[-20_000:] + result.stderr[-5_000:]
    assert result.returncode == 0, report


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""
