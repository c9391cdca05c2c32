"""Every fenced sample of README.md and docs/*.md runs as written, against a real server the test starts.

How a block is checked, by its language tag:
- `sh`: run by bash (`set -euo pipefail`), the blocks of one file in order in one shell state (a variable set
  by one block is there in the next), with `.venv/bin` on the PATH; must exit 0 and print no API error body.
- `python`: run by the project's Python; must exit 0.
- `json`: parses (one document, or one document per line); `toml`: parses; `js`: `node --check` accepts it.
- no tag: output or a diagram, shown, never run.
A block that cannot run here (it starts a server, streams until Ctrl-C, needs a PLC or the internet) is marked
on the line above its fence: `<!-- not-runnable: the reason -->`, and the reason must say why.

The samples assume a server at localhost:8000 / 127.0.0.1:8000 (replaced by the test server's address), the
admin `ops@plant.example` / `a-long-password`, and the shell variables `TOKEN` (that admin's access token),
`MACHINE` (a machine's id) and `USER_ID` (another user's id); README.md creates its admin and token itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest

from haltless.admin import create_tenant
from haltless.settings import Settings
from tests.conftest import run_async, start_server
from tests.docs.markdown import DOCS, ROOT, Sample, samples

EMAIL, PASSWORD = "ops@plant.example", "a-long-password"
RUNS = {"sh", "python", "json", "toml", "js"}
VENV_BIN = Path(sys.executable).parent


def _json_documents(code: str) -> None:
    try:
        json.loads(code)
    except json.JSONDecodeError:
        for line in code.splitlines():
            if line.strip():
                json.loads(line)


def _prepare(base_url: str, settings: Settings, *, with_admin: bool) -> dict[str, str]:
    """The tenant, token, machine and user the samples of a doc assume (README.md makes its own)."""
    if not with_admin:
        return {}
    run_async(lambda: create_tenant(settings, name="Plant 1", email=EMAIL, password=PASSWORD))
    with httpx.Client(base_url=f"{base_url}/api/v1", timeout=30) as http:
        token = http.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        machine = http.post("/machines", json={"name": "Press 01"}, headers=auth).json()["id"]
        readings = [
            {"machine_id": machine, "metric_name": metric, "value": 70.0 + i, "timestamp": f"2026-04-04T10:{i:02d}:00Z"}
            for i in range(30)
            for metric in ("temperature", "vibration")
        ]
        assert http.post("/sensor-data", json={"readings": readings}, headers=auth).json()["accepted"] == 60
        user = http.post(
            "/users", json={"email": f"{uuid.uuid4().hex[:6]}@plant.example", "password": PASSWORD}, headers=auth
        ).json()["id"]
    return {"TOKEN": token, "MACHINE": machine, "USER_ID": user}


def _run_sh(sample: Sample, code: str, work: Path, env: dict[str, str]) -> None:
    state = work / ".sample-state.sh"
    script = (
        f"[ -f {state} ] && source {state}\nset -a\nset -euo pipefail\n{code}\nset +e\n"
        f"export -p | grep -v -E ' (BASHOPTS|BASH_VERSINFO|EUID|PPID|SHELLOPTS|UID)=' > {state}\n"
    )
    result = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert result.returncode == 0, (sample.where, result.stdout, result.stderr)
    assert '"detail"' not in result.stdout, (sample.where, result.stdout)


def _check(sample: Sample, base_url: str, work: Path, env: dict[str, str]) -> None:
    address = base_url.removeprefix("http://")
    code = sample.code.replace("localhost:8000", address).replace("127.0.0.1:8000", address)
    if sample.language == "json":
        _json_documents(sample.code)
    elif sample.language == "toml":
        tomllib.loads(sample.code)
    elif sample.language == "js":
        if shutil.which("node") is None:
            pytest.skip("node is missing: apt-get install nodejs to check the JavaScript samples")
        copy = work / "x.mjs"
        copy.write_text(code)
        checked = subprocess.run(["node", "--check", str(copy)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, (sample.where, checked.stderr)
    elif sample.language == "python":
        script = work / "sample.py"
        script.write_text(code)
        result = subprocess.run(
            [sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=90, check=False
        )
        assert result.returncode == 0, (sample.where, result.stderr)
    else:
        _run_sh(sample, code, work, env)


@pytest.mark.parametrize("doc", DOCS, ids=[str(doc.relative_to(ROOT)) for doc in DOCS])
def test_every_sample_of_the_doc_runs_as_written(doc: Path, tmp_path: Path) -> None:
    found = samples(doc)
    unknown = [s.where for s in found if s.language and s.language not in RUNS and s.not_runnable is None]
    assert not unknown, f"samples in a language the test cannot run; tag them or mark them not-runnable: {unknown}"
    for sample in found:
        if sample.not_runnable is not None:
            assert len(sample.not_runnable) >= 10, f"{sample.where}: say why it is not runnable"
    runnable = [s for s in found if s.language in RUNS and s.not_runnable is None]
    if not runnable:
        return
    settings = Settings(data_dir=tmp_path / "data", jwt_secret="docs-samples-" + uuid.uuid4().hex)
    server = start_server(settings)
    try:
        work = tmp_path / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
        env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            HALTLESS_DATA_DIR=str(settings.data_dir),
            **_prepare(server.base_url, settings, with_admin=doc.name != "README.md"),
        )
        for sample in runnable:
            _check(sample, server.base_url, work, env)
    finally:
        server.stop()
