"""`haltless admin notifications`: delivery status from the server's host, without a token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from haltless.core.clock import ManualClock
from tests.conftest import RunningServer, Tenant
from tests.notifications.conftest import MailRelay, run_cycle
from tests.notifications.test_delivery import _email, _notifications, _policy, _reading, _rule


async def test_failed_deliveries_are_listed_with_their_reason(
    server: RunningServer, tenant: Tenant, clock: ManualClock, smtp_relay: MailRelay
) -> None:
    bad = await _email(tenant, smtp_relay, password="wrong-password-123")
    await _policy(tenant, [bad], group_wait=0)
    await _rule(tenant)
    machine = await tenant.add_machine("Boiler")
    await tenant.ingest([_reading(machine, 99.0)])
    await run_cycle(server)
    assert [n["state"] for n in await _notifications(tenant)] == ["failed"]

    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    env["HALTLESS_DATA_DIR"] = str(server.settings.data_dir)
    if server.settings.database_url:
        env["HALTLESS_DATABASE_URL"] = server.settings.database_url
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "haltless",
            "admin",
            "notifications",
            "--tenant-id",
            tenant.tenant_id,
            "--state",
            "failed",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["channel_id"], r["state"], r["kind"]) for r in rows] == [(bad, "failed", "firing")]
    assert rows[0]["last_error"].startswith("SMTP authentication failed: 535")
    assert "wrong-password-123" not in result.stdout
