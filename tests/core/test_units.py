"""One unit per (machine, metric): the pure check that splits a batch by unit."""

from __future__ import annotations

from haltless.core.readings import Reading
from haltless.core.units import check_units


def _reading(index: int, unit: str, machine: str = "m1", metric: str = "vibration") -> Reading:
    return Reading(index, machine, metric, float(index), unit, 1_000_000 + index, None)


def test_the_usual_batch_passes_untouched() -> None:
    batch = [_reading(0, "mm/s"), _reading(1, "mm/s")]
    check = check_units(batch, {("m1", "vibration"): "mm/s"})
    assert check.kept == batch
    assert (check.rejected, check.new_units) == ([], {})


def test_the_first_unit_of_a_batch_fixes_it_for_the_rest() -> None:
    check = check_units([_reading(0, "mm/s"), _reading(1, "mm_per_s"), _reading(2, "in/s", machine="m2")], {})
    assert [r.index for r in check.kept] == [0, 2]
    assert check.new_units == {("m1", "vibration"): "mm/s", ("m2", "vibration"): "in/s"}
    assert [(r.index, r.detail) for r in check.rejected] == [
        (
            1,
            'unit "mm_per_s" differs from "mm/s", the unit of vibration on this machine;'
            " convert the value or use another metric name",
        )
    ]


def test_a_reading_without_unit_takes_the_known_one_and_registers_none() -> None:
    check = check_units([_reading(0, ""), _reading(1, "", metric="current")], {("m1", "vibration"): "mm/s"})
    assert [(r.index, r.unit) for r in check.kept] == [(0, "mm/s"), (1, "")]
    assert (check.rejected, check.new_units) == ([], {})


def test_a_pair_known_to_have_no_unit_yet_passes_readings_without_one_and_registers_a_new_one() -> None:
    known = {("m1", "vibration"): ""}
    quiet = [_reading(0, ""), _reading(1, "")]
    assert check_units(quiet, known).kept == quiet
    check = check_units([_reading(0, ""), _reading(1, "mm/s"), _reading(2, "")], known)
    assert [(r.index, r.unit) for r in check.kept] == [(0, ""), (1, "mm/s"), (2, "mm/s")]
    assert check.new_units == {("m1", "vibration"): "mm/s"}
