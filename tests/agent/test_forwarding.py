"""`haltless agent --once` against a real server: delivery, idempotent replays, rejections, refusals, overflow."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.agent.conftest import create_api_key, run_agent_once, stored_readings, write_config, write_csv
from tests.conftest import RunningServer, Tenant, free_port


def _summary(stdout: str) -> dict[str, int]:
    summary: dict[str, int] = json.loads(stdout.strip().splitlines()[-1])
    return summary


async def test_csv_replay_delivers_everything_and_a_second_replay_only_duplicates(
    server: RunningServer, tenant: Tenant, tmp_path: Path
) -> None:
    machine_id = await tenant.add_machine()
    ids = write_csv(tmp_path / "replay.csv", machine_id, 1200)
    config = write_config(
        tmp_path, server.base_url, await create_api_key(tenant), '[[sources]]\ntype = "csv"\npath = "replay.csv"\n'
    )

    first = run_agent_once(config)
    assert first.returncode == 0, first.stderr
    assert _summary(first.stdout) == {
        "captured": 1200,
        "sent": 1200,
        "duplicates": 0,
        "rejected": 0,
        "dropped": 0,
        "skipped": 0,
        "buffered": 0,
        "complete": True,
    }
    second = run_agent_once(config)
    assert second.returncode == 0, second.stderr
    assert (_summary(second.stdout)["sent"], _summary(second.stdout)["duplicates"]) == (0, 1200)
    stored = stored_readings(server)
    assert sorted(reading_id for reading_id, _ in stored) == sorted(ids)


async def test_rejected_readings_are_counted_and_never_retried(
    server: RunningServer, tenant: Tenant, tmp_path: Path
) -> None:
    machine_id = await tenant.add_machine()
    unknown_machine = str(uuid.uuid4())
    (tmp_path / "mixed.csv").write_text(
        "machine_id,metric_name,value\n"
        f"{machine_id},temperature,1\n{unknown_machine},temperature,2\n{machine_id},temperature,3\n"
    )
    key = await create_api_key(tenant)
    config = write_config(tmp_path, server.base_url, key, '[[sources]]\ntype = "csv"\npath = "mixed.csv"\n')

    result = run_agent_once(config)
    assert result.returncode == 1, "a rejected reading means not everything could be sent"
    summary = _summary(result.stdout)
    assert (summary["sent"], summary["rejected"], summary["buffered"]) == (2, 1, 0)
    assert "unknown machine_id" in result.stderr

    drain_only = write_config(tmp_path, server.base_url, key, name="drain.toml")
    again = run_agent_once(drain_only)
    assert again.returncode == 0, again.stderr
    assert (_summary(again.stdout)["sent"], _summary(again.stdout)["rejected"]) == (0, 0)
    assert sorted(value for _, value in stored_readings(server)) == [1.0, 3.0]


async def test_refused_api_key_stops_with_a_clear_error_and_keeps_the_readings(
    server: RunningServer, tenant: Tenant, tmp_path: Path
) -> None:
    machine_id = await tenant.add_machine()
    write_csv(tmp_path / "replay.csv", machine_id, 10)
    config = write_config(tmp_path, server.base_url, "hlk_wrong", '[[sources]]\ntype = "csv"\npath = "replay.csv"\n')
    result = run_agent_once(config)
    assert result.returncode == 1
    assert "refused the API key (401" in result.stderr
    assert "Traceback" not in result.stderr

    fixed = write_config(tmp_path, server.base_url, await create_api_key(tenant), name="fixed.toml")
    drained = run_agent_once(fixed)
    assert drained.returncode == 0, drained.stderr
    assert _summary(drained.stdout)["sent"] == 10


async def test_simulator_source_reuses_the_demo_fleet(server: RunningServer, tenant: Tenant, tmp_path: Path) -> None:
    machine_id = await tenant.add_machine()
    body = f'[machines]\npress = "{machine_id}"\n[[sources]]\ntype = "simulator"\nmachines = ["press"]\nsamples = 3\ninterval = 0.01\n'
    result = run_agent_once(write_config(tmp_path, server.base_url, await create_api_key(tenant), body))
    assert result.returncode == 0, result.stderr
    assert _summary(result.stdout)["sent"] == 3 * 4  # four metrics per machine per sample
    assert len(stored_readings(server)) == 12


@pytest.mark.parametrize(("policy", "kept"), [("drop_oldest", slice(150, 250)), ("drop_newest", slice(0, 100))])
async def test_overflow_policy_keeps_what_the_docs_say(
    server: RunningServer, tenant: Tenant, tmp_path: Path, policy: str, kept: slice
) -> None:
    """With the server unreachable and a cap of 100 rows, 250 readings leave exactly 100, chosen by the policy."""
    machine_id = await tenant.add_machine()
    ids = write_csv(tmp_path / "replay.csv", machine_id, 250)
    key = await create_api_key(tenant)
    offline = write_config(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        key,
        '[[sources]]\ntype = "csv"\npath = "replay.csv"\n',
        buffer=f'max_rows = 100\noverflow = "{policy}"',
    )

    result = run_agent_once(offline)
    assert result.returncode == 1
    summary = _summary(result.stdout)
    assert (summary["captured"], summary["dropped"], summary["buffered"]) == (250, 150, 100)

    drained = run_agent_once(write_config(tmp_path, server.base_url, key, name="drain.toml"))
    assert drained.returncode == 0, drained.stderr
    assert sorted(reading_id for reading_id, _ in stored_readings(server)) == sorted(ids[kept])
