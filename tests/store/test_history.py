"""store/history.py's buckets, on the test's backend: what each bucket holds, and (SQLite) how it is found."""

from __future__ import annotations

import pytest

from haltless.core.history import BucketPoint
from haltless.core.readings import Reading
from haltless.store import history, machines, readings
from tests.store.conftest import Fleet, statements_sent

SECOND = 1_000_000
MINUTE = 60 * SECOND
T0 = 1_800_000_000 * SECOND  # on a minute boundary


async def _store(fleet: Fleet, rows: list[tuple[str, str, float, int]]) -> None:
    """(machine_id, metric_name, value, ts) rows, inserted in the order given (ids rise in that order)."""
    batch = [Reading(n, machine, metric, value, "", ts, None) for n, (machine, metric, value, ts) in enumerate(rows)]
    async with fleet.engine.begin() as conn:
        await readings.insert_many(conn, tenant_id=fleet.tenant_id, batch=batch, received_at=1)


async def test_each_bucket_holds_its_readings_in_range_and_the_newest_ones_value(fleet: Fleet) -> None:
    async with fleet.engine.begin() as conn:
        other = await machines.create(conn, tenant_id=fleet.tenant_id, name="Other", location=None, tags=[], now=1)
    press = fleet.machine_id
    await _store(
        fleet,
        [
            (press, "temp", 1.0, T0 - SECOND),  # before the range
            (press, "temp", 2.0, T0 + 10 * SECOND),
            (press, "temp", 6.0, T0 + 50 * SECOND),  # two readings at the newest time of the first bucket: the
            (press, "temp", 4.0, T0 + 50 * SECOND),  # one stored later is the bucket's last
            (press, "temp", 9.0, T0 + 20 * SECOND),  # stored late, measured earlier: not the last
            (other.id, "temp", 100.0, T0 + 50 * SECOND),  # another machine, same time
            (press, "rpm", 200.0, T0 + 50 * SECOND),  # another metric, same time
            # nothing in the second minute: no bucket
            (press, "temp", 7.0, T0 + 2 * MINUTE + 5 * SECOND),
            (press, "temp", 8.0, T0 + 3 * MINUTE),  # at the range's end: outside
        ],
    )
    async with fleet.engine.connect() as conn:
        found = await history.buckets(
            conn,
            machine_id=press,
            metric_names=["temp"],
            start_us=T0,
            end_us=T0 + 3 * MINUTE,
            interval_us=MINUTE,
        )
    assert found == [
        BucketPoint("temp", T0, 5.25, 2.0, 9.0, 4, 4.0),
        BucketPoint("temp", T0 + 2 * MINUTE, 7.0, 7.0, 7.0, 1, 7.0),
    ]


async def test_a_range_starting_within_a_bucket_counts_only_its_own_readings(fleet: Fleet) -> None:
    press = fleet.machine_id
    await _store(fleet, [(press, "temp", 1.0, T0 + 5 * SECOND), (press, "temp", 3.0, T0 + 30 * SECOND)])
    async with fleet.engine.connect() as conn:
        found = await history.buckets(
            conn,
            machine_id=press,
            metric_names=["temp"],
            start_us=T0 + 10 * SECOND,
            end_us=T0 + MINUTE,
            interval_us=MINUTE,
        )
    assert found == [BucketPoint("temp", T0, 3.0, 3.0, 3.0, 1, 3.0)]


async def test_buckets_sort_a_ranges_readings_once_at_most(fleet: Fleet) -> None:
    """A long range's cost: grouping sorts the range's readings (SQLite's GROUP BY); nothing else may. A window
    ranking each bucket's readings for its last value sorted them all once more (1.07 s against 0.39 s for 1M
    readings of one series in 1-hour buckets). SQLite's plan says where its sorts are."""
    if fleet.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's EXPLAIN QUERY PLAN")
    await _store(fleet, [(fleet.machine_id, "temp", float(n), T0 + n * SECOND) for n in range(100)])
    async with fleet.engine.connect() as conn:
        with statements_sent(fleet.engine) as sent:
            found = await history.buckets(
                conn,
                machine_id=fleet.machine_id,
                metric_names=["temp"],
                start_us=T0,
                end_us=T0 + 2 * MINUTE,
                interval_us=MINUTE,
            )
        ((statement, parameters),) = sent
        plan = [tuple(row) for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    assert [(p.count, p.last) for p in found] == [(60, 59.0), (40, 99.0)]
    # The step that reads the range, and the steps of the same query level (its parent's children).
    (range_scan,) = [row for row in plan if "SEARCH readings" in row[-1] and "ts>? AND ts<?" in row[-1]]
    level = [row[-1] for row in plan if row[1] == range_scan[1]]
    assert [step for step in level if "TEMP B-TREE" in step] == ["USE TEMP B-TREE FOR GROUP BY"], plan
    # Each bucket's last value: an index seek at its newest time, not a scan.
    assert any("SEARCH" in row[-1] and "ts=?" in row[-1] for row in plan), plan
