"""The SDK sample of docs/client.md runs as written (only the server address and the login swapped)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PASSWORD, RunningServer, Tenant
from tests.docs.markdown import ROOT, sample_containing


async def test_sync_sdk_sample_runs_as_written(server: RunningServer, tenant: Tenant) -> None:
    """The sample stores reading "press1-0001" of a new "Press 1": another machine of the tenant having sent the
    same reading id first must not make it a silent duplicate (reading ids are unique per machine)."""
    other = await tenant.add_machine("Press 0")
    sent = await tenant.ingest(
        [{"machine_id": other, "metric_name": "temperature", "value": 1, "reading_id": "press1-0001"}]
    )
    assert sent.json()["accepted"] == 1
    sample = sample_containing(ROOT / "docs" / "client.md", 'client.create_machine("Press 1"')
    code = (
        sample.code.replace("http://127.0.0.1:8000", server.base_url)
        .replace("ops@plant.example", tenant.admin_email)
        .replace('password="..."', f'password="{PASSWORD}"')
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, (sample.where, run.stderr)
    assert run.stdout == "73.2\n"
