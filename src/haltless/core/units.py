"""One unit per (machine, metric): the first unit a machine reports for a metric is the metric's unit.

Readings in another unit are refused item by item (charts and rules would otherwise mix "mm/s" with
"mm_per_s"). A reading with no unit (`""`) states none: it is stored in the metric's unit once one is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from haltless.core.names import shown
from haltless.core.readings import Reading, Rejection

UnitKey = tuple[str, str]  # (machine_id, metric_name)


@dataclass(slots=True)
class UnitCheck:
    """What a batch does to the units: the readings to keep, the ones refused, the units it registers."""

    kept: list[Reading]
    rejected: list[Rejection] = field(default_factory=list)
    new_units: dict[UnitKey, str] = field(default_factory=dict)


UnitTriple = tuple[str, str, str]  # (machine_id, metric_name, unit)


def triples_of(batch: Sequence[Reading]) -> set[UnitTriple]:
    """The distinct (machine, metric, unit) of a batch: one pass over it, then work per distinct value."""
    return {(r.machine_id, r.metric_name, r.unit) for r in batch}


def check_units(
    batch: Sequence[Reading], known: Mapping[UnitKey, str], triples: set[UnitTriple] | None = None
) -> UnitCheck:
    """Split `batch` by unit against the `known` units (every pair of the batch that has one); `triples` is
    `triples_of(batch)` when the caller has it already."""
    if triples is None:
        triples = triples_of(batch)
    # `known` may map a pair to "" (no unit known yet): a reading without unit then has nothing to check.
    if all(known.get((machine_id, metric), "") == unit for machine_id, metric, unit in triples):
        # The usual batch: every reading states the unit its metric already has (or none, and none is known).
        return UnitCheck(list(batch))
    check = UnitCheck([])
    for reading in batch:
        key = (reading.machine_id, reading.metric_name)
        unit = known.get(key) or check.new_units.get(key)
        if not reading.unit:
            check.kept.append(replace(reading, unit=unit) if unit else reading)
        elif unit is None:
            check.new_units[key] = reading.unit
            check.kept.append(reading)
        elif unit == reading.unit:
            check.kept.append(reading)
        else:
            check.rejected.append(
                Rejection(
                    reading.index,
                    f'unit "{shown(reading.unit)}" differs from "{shown(unit)}", the unit of '
                    f"{shown(reading.metric_name)} on this machine; convert the value or use another metric name",
                )
            )
    return check
