"""Detectors of predictive rules brought in step with the database before a batch (server/service/predictive.py):
a detector that is missing or out of step is rebuilt from the readings measured before the batch; one in step is
left alone and costs no query."""

from __future__ import annotations

from haltless.core import predictive
from haltless.core.readings import Reading
from haltless.core.rules import Condition, Rule, RuleKind, RuleState, Severity
from haltless.server.service import predictive as detectors_service
from haltless.store import readings
from tests.store.conftest import Fleet


def _forecast_rule(fleet: Fleet) -> Rule:
    return Rule(
        id="rule-1",
        tenant_id=fleet.tenant_id,
        name="hot soon",
        metric_name="temp",
        machine_id=None,
        condition=Condition.GT,
        threshold=90.0,
        severity=Severity.WARNING,
        for_seconds=0.0,
        hysteresis=0.0,
        enabled=True,
        message=None,
        kind=RuleKind.FORECAST,
        horizon_seconds=3600.0,
    )


def _readings(fleet: Fleet, stamps: list[int], metric: str = "temp") -> list[Reading]:
    return [Reading(n, fleet.machine_id, metric, float(ts), "", ts, None) for n, ts in enumerate(stamps)]


async def test_a_new_rules_detector_learns_the_readings_measured_before_the_batch(fleet: Fleet) -> None:
    """Stored readings measured after the batch's first one of the series (a late batch, a backfill) are not the
    past the detector may know: it sees those before it only."""
    async with fleet.engine.begin() as conn:
        stored = [*range(1_000, 11_000, 1_000), *range(30_000, 40_000, 1_000)]
        await readings.insert_many(conn, tenant_id=fleet.tenant_id, batch=_readings(fleet, stored), received_at=1)
    rule = _forecast_rule(fleet)
    batch = [*_readings(fleet, [50_000, 25_000, 60_000]), *_readings(fleet, [5], metric="other")]
    kept: dict[tuple[str, str], predictive.SeriesDetector] = {}
    async with fleet.engine.connect() as conn:
        await detectors_service.prepare(conn, kept, {}, [(rule, fleet.machine_id)], batch)
    forecaster = kept[(rule.id, fleet.machine_id)].forecaster
    assert forecaster is not None
    assert list(forecaster._times) == list(range(1_000, 11_000, 1_000))


async def test_a_detector_in_step_is_left_as_it_is(fleet: Fleet) -> None:
    rule = _forecast_rule(fleet)
    in_step = predictive.rebuild(rule, [1_000, 2_000], [1.0, 2.0], 2_000)
    kept = {(rule.id, fleet.machine_id): in_step}
    locked: list[bool] = []

    async def before_reads() -> None:
        locked.append(True)

    async with fleet.engine.connect() as conn:
        await detectors_service.prepare(
            conn,
            kept,
            {(rule.id, fleet.machine_id): RuleState(last_ts=2_000)},
            [(rule, fleet.machine_id)],
            _readings(fleet, [3_000]),
            before_reads,
        )
    assert kept[(rule.id, fleet.machine_id)] is in_step
    assert locked == []  # no query, so no write lock taken for one
