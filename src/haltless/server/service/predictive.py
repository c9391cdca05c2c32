"""Detectors of predictive rules (core/predictive.py) kept in step with the database.

Each tenant's fleet (core/fleet.py) holds one `SeriesDetector` per (rule, machine) in memory. Before a batch is
planned, `prepare` makes sure each detector the batch will feed has seen exactly the readings its rule state
reflects: after a restart there is none yet, and with several server processes another process may have
evaluated the series' latest readings. Such a detector is rebuilt from stored history (a bounded replay:
`history_needed(rule)` readings), so a process never decides on stale detector state. Within one process this
costs nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core import predictive
from haltless.core.predictive import SeriesDetector
from haltless.core.readings import Reading
from haltless.core.rules import Rule, RuleState
from haltless.store import readings as reading_store
from haltless.store.tables import alerts

DetectorKey = tuple[str, str]  # (rule id, machine id)
_FRESH = RuleState()


def first_readings(batch: Sequence[Reading]) -> dict[tuple[str, str], int]:
    """The earliest measurement time of each (machine, metric) series in a batch."""
    first: dict[tuple[str, str], int] = {}
    for reading in batch:
        key = (reading.machine_id, reading.metric_name)
        known = first.get(key)
        if known is None or reading.ts < known:
            first[key] = reading.ts
    return first


async def prepare(
    conn: AsyncConnection,
    detectors: dict[DetectorKey, SeriesDetector],
    states: Mapping[DetectorKey, RuleState],
    due: Iterable[tuple[Rule, str]],
    batch: Sequence[Reading],
    before_reads: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Rebuild the detectors of `due` (rule, machine: series the batch feeds) that are out of step; `before_reads`
    is awaited before the first query (the change's write lock, server/service/changes.py). Hot path (every
    batch with predictive rules, bench M4's anomaly variant): the batch's earliest reading of each series is
    worked out only when a detector is to be rebuilt, which within one process is none."""
    first: dict[tuple[str, str], int] | None = None
    for rule, machine_id in due:
        key = (rule.id, machine_id)
        state = states.get(key, _FRESH)
        if not predictive.in_sync(detectors.get(key), state):
            if before_reads is not None:
                await before_reads()
            if first is None:
                first = first_readings(batch)
            detectors[key] = await rebuild(conn, rule, machine_id, state, first[(machine_id, rule.metric_name)])


async def rebuild(
    conn: AsyncConnection, rule: Rule, machine_id: str, state: RuleState, first_ts: int
) -> SeriesDetector:
    """A detector that has seen the stored readings `state` reflects (those before the batch, for a new rule)."""
    if state.last_ts is not None:
        before, up_to = None, state.last_ts
    else:
        before, up_to = first_ts, None
    stamps, values = await reading_store.series_before(
        conn,
        machine_id=machine_id,
        metric_name=rule.metric_name,
        before=before,
        up_to=up_to,
        limit=predictive.history_needed(rule),
    )
    detector = predictive.rebuild(rule, stamps, values, state.last_ts)
    if state.open_alert_id is not None or state.breach_since is not None:
        detector.quiet = 0  # an anomaly episode is going on: it ends only after quiet readings seen from here
    if state.open_alert_id is not None:
        detector.announced_us = (
            await conn.execute(select(alerts.c.predicted_crossing_at).where(alerts.c.id == state.open_alert_id))
        ).scalar()
    return detector
