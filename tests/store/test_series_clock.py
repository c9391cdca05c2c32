"""The series clock (`Fleet.series_ts`): the newest stored measurement time of each (machine, metric), which
decides what is late for threshold rules. Looked up one index seek per series, at start-up for the series rules
watch and, with several processes, for the series of each batch (issue 21)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from haltless.bus.memory import MemoryBus
from haltless.core.clock import ManualClock
from haltless.core.readings import Reading
from haltless.core.rules import IDLE, Condition, Rule, RuleState
from haltless.server.service.changes import Changes
from haltless.server.service.ingest import IngestPipeline
from haltless.settings import Settings
from haltless.store import alerts as alert_store
from haltless.store import machines, readings
from tests.core.test_rules import make_rule
from tests.store.conftest import Fleet

SECOND = 1_000_000
T0 = 1_767_607_200 * SECOND  # 2026-01-05 10:00:00Z


def _rule(fleet: Fleet, rule_id: str, metric: str, machine_id: str | None) -> Rule:
    rule = make_rule(Condition.GT, 85.0, 0.0, 0.0)
    return replace(rule, id=rule_id, tenant_id=fleet.tenant_id, metric_name=metric, machine_id=machine_id)


async def _store(fleet: Fleet, rows: list[tuple[str, str, int]]) -> None:
    batch = [
        Reading(i, machine_id, metric, 20.0, "celsius", ts, None) for i, (machine_id, metric, ts) in enumerate(rows)
    ]
    async with fleet.engine.begin() as conn:
        await readings.store_batch(
            conn, tenant_id=fleet.tenant_id, batch=batch, received_at=T0, machine_ids={m for m, _, _ in rows}
        )


async def test_the_newest_of_each_series_is_looked_up_whatever_its_history(fleet: Fleet) -> None:
    m = fleet.machine_id
    metrics = [f"m{i:03}" for i in range(450)]  # three statements' worth: 200 + 200 + 50 series
    await _store(fleet, [(m, metric, T0 + i) for i, metric in enumerate(metrics)])
    await _store(fleet, [(m, "m000", T0 - 5), (m, "m001", T0 + 99), (m, "m001", T0 + 7)])  # older, newer, between
    async with fleet.engine.connect() as conn:
        found = await readings.newest_of_series(conn, series=[(m, metric) for metric in [*metrics, "silent"]])
        one = await readings.newest_of_series(conn, series=[(m, "m002")])
        none = await readings.newest_of_series(conn, series=[])
    assert found == {(m, "m000"): T0, (m, "m001"): T0 + 99} | {
        (m, metric): T0 + i for i, metric in list(enumerate(metrics))[2:]
    }
    assert one == {(m, "m002"): T0 + 2} and none == {}


async def test_start_up_looks_up_each_watched_series_once(fleet: Fleet) -> None:
    async with fleet.engine.begin() as conn:
        other = (await machines.create(conn, tenant_id=fleet.tenant_id, name="Lathe", location=None, tags=[], now=1)).id
        # Two tenant-wide rules on one metric and one bound to the other machine: three series, not four pairs.
        for rule in (
            _rule(fleet, "a", "temperature", None),
            _rule(fleet, "b", "temperature", None),
            _rule(fleet, "c", "vibration", other),
        ):
            await alert_store.insert_rule(conn, rule, 1)
    m = fleet.machine_id
    await _store(fleet, [(m, "temperature", T0), (other, "temperature", T0 + 1), (other, "vibration", T0 + 2)])
    await _store(fleet, [(m, "vibration", T0 + 3), (m, "speed", T0 + 4)])  # series no rule watches
    async with fleet.engine.connect() as conn:
        found = await alert_store.newest_per_series(conn)
    assert found == {(m, "temperature"): T0, (other, "temperature"): T0 + 1, (other, "vibration"): T0 + 2}


async def test_another_process_knows_a_reading_is_late(fleet: Fleet) -> None:
    """Process A stores a reading at 10:00:10; process B, which has never seen the series, then gets a breach
    measured at 10:00:05. It is late (A's newer reading is stored), so it opens nothing; one at 10:00:11 does."""
    if fleet.engine.dialect.name != "postgresql":
        pytest.skip("shared mode runs on PostgreSQL only (server/app.py)")
    settings = Settings(bus_url="memory://")
    processes = [Changes(fleet.engine, MemoryBus(10), ManualClock(1), offline_after=60, shared=True) for _ in range(2)]
    a, b = (IngestPipeline(settings, changes) for changes in processes)
    async with fleet.engine.begin() as conn:
        await alert_store.insert_rule(conn, _rule(fleet, "hot", "temperature", None), 1)
        await alert_store.raise_rules_revision(conn, fleet.tenant_id)

    def reading(value: float, second: int) -> dict[str, object]:
        stamp = f"2026-01-05T10:00:{second:02}Z"
        return {
            "machine_id": fleet.machine_id,
            "metric_name": "temperature",
            "value": value,
            "unit": "celsius",
            "timestamp": stamp,
        }

    now = T0 + 60 * SECOND
    assert (await a.ingest(fleet.tenant_id, [reading(20.0, 10)], now)).accepted == 1
    assert (await b.ingest(fleet.tenant_id, [reading(99.0, 5)], now)).accepted == 1
    assert processes[1].fleet(fleet.tenant_id).open_alerts == {}
    assert (await b.ingest(fleet.tenant_id, [reading(99.0, 11)], now)).accepted == 1
    [alert] = processes[1].fleet(fleet.tenant_id).open_alerts.values()
    assert alert.created_at == T0 + 11 * SECOND


async def test_only_rules_with_something_to_remember_keep_a_state(fleet: Fleet) -> None:
    """A state that ends idle deletes its row; a row of an idle threshold rule that holds only a `last_ts` (one per
    pair, as versions before the series clock wrote them) is not kept in memory at start-up."""
    m = fleet.machine_id
    async with fleet.engine.begin() as conn:
        for rule in (_rule(fleet, "pending", "temperature", None), _rule(fleet, "legacy", "temperature", None)):
            await alert_store.insert_rule(conn, rule, 1)
        await alert_store.save_rule_states(
            conn, {("pending", m): RuleState(breach_since=T0, last_ts=T0), ("legacy", m): RuleState(last_ts=T0)}
        )
    async with fleet.engine.connect() as conn:
        assert set(await alert_store.load_rule_states(conn)) == {("pending", m), ("legacy", m)}
    process = Changes(fleet.engine, MemoryBus(10), ManualClock(1), offline_after=60, shared=False)
    await process.load()
    assert dict(process.fleet(fleet.tenant_id).states.items()) == {
        ("pending", m): RuleState(breach_since=T0, last_ts=T0)
    }
    async with fleet.engine.begin() as conn:
        await alert_store.save_rule_states(conn, {("pending", m): IDLE})
    async with fleet.engine.connect() as conn:
        assert set(await alert_store.load_rule_states(conn)) == {("legacy", m)}
