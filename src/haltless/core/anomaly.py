"""Online anomaly detection for one (machine, metric) series: novel transitions on adaptive value grids.

How it works (chosen by measurement on the Numenta Anomaly Benchmark, see docs/anomaly-detection.md):

- Warm-up: the first `WARMUP_READINGS` readings only teach. Their range sets a value grid of about
  `GRID_CELLS` cells whose width is a power of two, so that the grid can later be coarsened exactly by halving
  cell indices.
- The series is watched at several time resolutions (`RESOLUTIONS`): the readings themselves, and the means of
  blocks of 4 and of 16 readings, each on a grid of its own. A slow bump or a change of rhythm that hides in the
  noise of single readings shows in the block means.
- On each grid every value moves the series from one cell to another. Each grid remembers which moves (cell
  pairs) and which three-cell paths it has seen, and for how many steps at most the series stayed in a cell
  before leaving it. A value brings *evidence* of novelty when
  - it lands beyond every cell ever visited (a new level): `NEW_LEVEL_EVIDENCE` = 2 one cell out, one more for
    each doubling of the distance;
  - its move was never seen: 1; or only its three-cell path is new: `PATH_EVIDENCE` = 0.25;
  - the series has stayed in a cell more than `DWELL_FACTOR` times as long as it ever did before leaving it (a
    missing beat, a stuck sensor): `DWELL_EVIDENCE` = 3, one more for each further doubling of the stay.
- The score of a reading is the evidence brought by the last `EVIDENCE_READINGS` readings (on all grids) divided
  by `FULL_EVIDENCE` plus the series' *background*, capped at 1; a reading that brings no evidence scores 0.
  The background is the evidence per reading this series brought lately (an exponential average over about
  1/`BACKGROUND_RATE` readings, started from the second half of the warm-up), times `EVIDENCE_READINGS` and
  `BACKGROUND_WEIGHT`: a series that keeps finding novelty needs more of it to alarm. On a quiet series one new
  move scores 0.25, two within twelve readings (or a new level) 0.5.
- A reading is *anomalous* when its score reaches the sensitivity's threshold, the warm-up is over and no
  anomaly fired in the previous `REST_READINGS` readings (one event, one alert).
- A grid that keeps contributing to alarms is finer than the series' noise: when a grid contributes to two
  alarms within `COARSEN_WITHIN_READINGS` readings, its cells double in width (the remembered moves merge).

The expected value and band drawn by a dashboard come from the readings' own grid: the band spans the cells the
series has moved to from the previous reading's cell, the expected value is their count-weighted centre.

Everything counts readings, not seconds: gaps and irregular sampling do not change what is novel.
The state is a small JSON-able dict (`state()` / `from_state()`); it round-trips exactly.

This module is compiled with mypyc (`make install`, release wheels) and runs unchanged as pure Python where it is
not (docs/anomaly-detection.md, "The compiled detector"): keep it typed, keep its constants `Final`, and call
functions by their module (`math.floor`), since an alias in a local is a generic call once compiled.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from enum import StrEnum
from itertools import pairwise
from typing import Any, Final, NamedTuple

WARMUP_READINGS: Final = 300
GRID_CELLS: Final = 16
STEP_CELLS: Final = 1.0  # and no finer than the median step between consecutive warm-up values
# Readings per value of each grid: each resolution divides the next, the first is the readings themselves.
RESOLUTIONS = (1, 4, 16)
PATH_EVIDENCE: Final = 0.25
# A value one cell past every cell visited; one more for each doubling of that distance.
NEW_LEVEL_EVIDENCE: Final = 2.0
DWELL_EVIDENCE: Final = 3.0
DWELL_FACTOR: Final = 2
# A stay must also be this many steps of its grid (32 readings on the readings' own grid) to count as too long.
DWELL_MIN_STEPS: Final = 32
EVIDENCE_READINGS: Final = 12
FULL_EVIDENCE: Final = 4.0
# Background: exponential average of the evidence per reading, new readings weighing BACKGROUND_RATE.
BACKGROUND_RATE: Final = 0.001
# How much each unit of background evidence in a window raises the evidence that scores 1.
BACKGROUND_WEIGHT: Final = 10.0
REST_READINGS: Final = 80
COARSEN_WITHIN_READINGS: Final = 250
# Memory bounds per grid: past these many remembered moves or paths the grid coarsens, which merges them.
MAX_MOVES: Final = 128
MAX_PATHS: Final = 512
# Cell indices are clamped so that absurd values (1e300) stay ordinary integers.
MAX_CELL: Final = 2**62
STATE_VERSION: Final = 2
# Rebuilding after a restart without stored state: replay at most this many most recent readings.
REBUILD_READINGS: Final = 2000
NEVER: Final = -(10**12)

if RESOLUTIONS[0] != 1 or any(b % a for a, b in pairwise(RESOLUTIONS)):
    raise AssertionError("each resolution must divide the next, starting from 1")


def compiled() -> bool:
    """True when this module runs compiled with mypyc (as `make install` and release wheels build it), False when it
    runs as pure Python (docs/anomaly-detection.md, "The compiled detector")."""
    return not __file__.endswith(".py")


class Sensitivity(StrEnum):
    """How much novelty a reading needs to count as anomalous (the score threshold it must reach)."""

    LOW = "low"  # 0.75: a new level, or three new moves within twelve readings; only clear breaks in behaviour
    MEDIUM = "medium"  # 0.5: two new moves within twelve readings (a spike, a step, a new pattern); NAB-tuned
    HIGH = "high"  # 0.25: any single new move; earliest warning, more false alarms

    @property
    def threshold(self) -> float:
        """The score a reading must reach."""
        return SENSITIVITY_THRESHOLDS[self]


SENSITIVITY_THRESHOLDS: dict[Sensitivity, float] = {
    Sensitivity.LOW: 0.75,
    Sensitivity.MEDIUM: 0.5,
    Sensitivity.HIGH: 0.25,
}


class DetectorStateError(ValueError):
    """A stored detector state that cannot be restored (wrong version, missing or malformed field)."""


class Scored(NamedTuple):
    """What the detector says about one reading (a named tuple: cheap to make on the hot path)."""

    timestamp_us: int
    value: float
    score: float  # 0 (familiar) .. 1 (very unusual)
    expected: float
    low: float  # the expected band: where the series has gone from here before
    high: float
    warming_up: bool
    anomalous: bool  # score reached the sensitivity's threshold outside warm-up and the rest period


class Scan(NamedTuple):
    """What `AnomalyDetector.scan_batch` says about a batch of readings."""

    # (index in the batch, score) of each reading before the first anomalous one that scored above 0.
    loud: list[tuple[int, float]]
    # The first anomalous reading and every reading after it (empty when none was anomalous).
    anomalous_on: list[Scored]


def _cell(value: float, origin: float, width: float) -> int:
    position = (value - origin) / width
    if -MAX_CELL < position < MAX_CELL:
        return math.floor(position)
    return MAX_CELL if position > 0 else -MAX_CELL


def _initial_exponent(values: Sequence[float]) -> int:
    """Cell width 2**e: the warm-up range over GRID_CELLS cells, but not finer than the typical step (noise)."""
    low, high = min(values), max(values)
    span = high - low
    if not math.isfinite(span):
        span = 1.7976931348623157e308
    if span <= 0.0:
        # A constant warm-up: treat 1% of its magnitude (or 1) as its range.
        span = abs(high) * 0.01 or 1.0
    width = span / GRID_CELLS
    steps = sorted(abs(b - a) for a, b in pairwise(values))
    typical_step = steps[len(steps) // 2] * STEP_CELLS if steps else 0.0
    if math.isfinite(typical_step) and typical_step > width:
        width = typical_step
    return max(-1000, min(1000, math.ceil(math.log2(width))))


def _new_level(beyond: int) -> float:
    """Evidence of a value `beyond` (>= 1) cells past every cell visited: one more for each doubling of the
    distance, so that a reading thousands of cells out scores 1 even on a series that is often novel."""
    return NEW_LEVEL_EVIDENCE + math.log2(beyond)


def _block_means(values: Sequence[float], size: int) -> tuple[list[float], float, int]:
    """Means of consecutive blocks of `size` values, and the partial sum (of value/size) and count left over.

    Summing value/size rather than value keeps block sums of huge readings finite.
    """
    means: list[float] = []
    total, count = 0.0, 0
    for value in values:
        total += value / size
        count += 1
        if count == size:
            means.append(total)
            total, count = 0.0, 0
    return means, total, count


def _band(origin: float, width: float, low_cell: int, high_cell: int) -> tuple[float, float]:
    """The values from the lowest cell's bottom to the highest cell's top."""
    return origin + low_cell * width, origin + (high_cell + 1) * width


def _successors(outs: dict[int, _Move], source: int, less: int | None = None) -> tuple[int, int, int, int]:
    """The moves out of `source` (`outs`, with one move to `less` taken away): how many, the sum of the cells they
    went to, and the lowest and highest of those cells (`source` when there is none)."""
    seen = total = 0
    lowest = highest = source
    for end, move in outs.items():
        count = move.count - 1 if end == less else move.count
        if count:
            if not seen:
                lowest = highest = end
            elif end < lowest:
                lowest = end
            elif end > highest:
                highest = end
            seen += count
            total += count * end
    return seen, total, lowest, highest


def _band_before(raw: _Grid, source: int, target: int, previous: float) -> tuple[float, float, float]:
    """The expected value and band of a reading that moved from `source` to `target`, as they stood before it:
    from the moves out of `source` without this one. The same numbers as the kept successors give (`_score_warm`),
    for a reading a scan did not keep them for."""
    seen, total, lowest, highest = _successors(raw.moves.get(source, {}), source, target)
    origin, width = raw.origin, raw.width
    if not seen:
        return previous, origin + (source - 1) * width, origin + (source + 2) * width
    return (origin + (total / seen + 0.5) * width, *_band(origin, width, lowest, highest))


class _Move:
    """A move of a grid from one cell to another: how often it was made, and the cells the series came from
    into its first cell before it (each makes a three-cell path seen)."""

    __slots__ = ("count", "olders")

    def __init__(self, count: int, olders: set[int]) -> None:
        self.count = count
        self.olders = olders


class _Grid:
    """Novelty memory of one view of the series (the readings, or the means of blocks of them).

    Moves and paths are kept as `moves[source][target]`, a `_Move` whose `olders` are the paths' first cells, not
    as tuples of cells: the usual reading (a move seen before, along a path seen before) is then two lookups of
    one integer each and makes no object (bench M4 with an anomaly rule on every series, issue 18). `move_count`
    and `path_count` count them for the memory bounds.
    """

    __slots__ = (
        "dwell_due",
        "exponent",
        "factor",
        "high_cell",
        "last_fire",
        "longest",
        "low_cell",
        "move_count",
        "moves",
        "older",
        "origin",
        "path_count",
        "pending",
        "pending_count",
        "resolution",
        "run",
        "source",
        "width",
    )

    def __init__(self, resolution: int, factor: int) -> None:
        self.resolution = resolution
        # How many values of the previous (finer) view make one value of this one.
        self.factor = factor
        self.origin = 0.0
        self.exponent = 0
        self.width = 1.0
        # The cells of the two previous values (older first).
        self.older = 0
        self.source = 0
        # The lowest and highest cells ever visited: leaving them is a new level.
        self.low_cell = 0
        self.high_cell = 0
        self.moves: dict[int, dict[int, _Move]] = {}
        self.move_count = 0
        self.path_count = 0
        # Steps spent so far in the current cell, and the longest stay the series made in each cell before leaving.
        self.run = 1
        self.longest: dict[int, int] = {}
        # Past this many steps the current stay is looked at again (see `dwell`).
        self.dwell_due = DWELL_MIN_STEPS
        # The last alarm this grid contributed to.
        self.last_fire = NEVER
        # The block of finer values being averaged into this grid's next value: sum of value/factor, and count.
        self.pending = 0.0
        self.pending_count = 0

    def set_exponent(self, exponent: int) -> None:
        self.exponent = exponent
        self.width = math.ldexp(1.0, exponent)

    def start(self, values: Sequence[float]) -> list[float]:
        """Lay the grid over warm-up values: learn the first half silently, then step through the second half as
        if live. Returns the evidence of each value of the second half (for the background)."""
        self.origin = values[0]
        self.set_exponent(_initial_exponent(values))
        cells = [_cell(v, self.origin, self.width) for v in values]
        half = max(len(cells) // 2, 1)
        first = cells[:half]
        for index in range(1, half):
            self.remember(first[index - 2] if index >= 2 else first[0], first[index - 1], first[index])
        run = 1
        for before, after in pairwise(first):
            if after == before:
                run += 1
            else:
                if run > self.longest.get(before, 0):
                    self.longest[before] = run
                run = 1
        self.run = run
        self.older, self.source = (first[-2], first[-1]) if half >= 2 else (first[-1], first[-1])
        self.low_cell, self.high_cell = min(first), max(first)
        found = [self.step(value) for value in values[half:]]
        self.enforce_bounds()
        return found

    def remember(self, older: int, source: int, target: int, count: int = 1) -> tuple[int, bool]:
        """Count `count` more of the move from `source` to `target`, along the path from `older`; returns how often
        the move was made before, and whether the path is new."""
        outs = self.moves.get(source)
        if outs is None:
            outs = self.moves[source] = {}
        move = outs.get(target)
        if move is None:
            outs[target] = _Move(count, {older})
            self.move_count += 1
            self.path_count += 1
            return 0, True
        before = move.count
        move.count = before + count
        if older in move.olders:
            return before, False
        move.olders.add(older)
        self.path_count += 1
        return before, True

    def paths(self) -> list[tuple[int, int, int]]:
        """Every three-cell path seen, sorted."""
        return sorted(
            (older, source, target)
            for source, outs in self.moves.items()
            for target, move in outs.items()
            for older in move.olders
        )

    def step(self, value: float) -> float:
        """Take the next value of this view; return its evidence of novelty."""
        position = (value - self.origin) / self.width
        target = math.floor(position) if -MAX_CELL < position < MAX_CELL else (MAX_CELL if position > 0 else -MAX_CELL)
        source = self.source
        count, new_path = self.remember(self.older, source, target)
        evidence = 0.0
        if new_path:
            if target > self.high_cell:
                evidence, self.high_cell = _new_level(target - self.high_cell), target
            elif target < self.low_cell:
                evidence, self.low_cell = _new_level(self.low_cell - target), target
            else:
                evidence = 1.0 if count == 0 else PATH_EVIDENCE
        if target == source:
            self.run += 1
            if self.run > self.dwell_due:
                evidence += self.dwell(target)
        else:
            if self.run > self.longest.get(source, 0):
                self.longest[source] = self.run
            self.run = 1
            self.dwell_due = DWELL_MIN_STEPS
        self.older, self.source = source, target
        if new_path and self.over_bounds():
            self.enforce_bounds()
        return evidence

    def dwell(self, cell: int) -> float:
        """The stay in `cell` passed `dwell_due` steps: its evidence, and when the next is due.

        A stay more than DWELL_FACTOR times as long as the longest the series ever made in this cell before
        leaving it (and longer than DWELL_MIN_STEPS) brings DWELL_EVIDENCE, one more for each doubling beyond; the
        next is due when the stay has doubled again. A cell the series never left (a series constant from the
        start) brings nothing.
        """
        longest = self.longest.get(cell)
        if longest is None:
            self.dwell_due = MAX_CELL
            return 0.0
        usual = DWELL_FACTOR * longest
        if usual < DWELL_MIN_STEPS:
            usual = DWELL_MIN_STEPS
        if self.run <= usual:
            self.dwell_due = usual
            return 0.0
        self.dwell_due = 2 * self.run
        return DWELL_EVIDENCE + math.log2(self.run / usual)

    def coarsen(self) -> None:
        """Double the cell width; remembered moves, paths and stays merge into the coarser cells.

        The origin stays put: halving cell indices (floor division) is exact only around a fixed origin.
        """
        self.set_exponent(self.exponent + 1)
        moves = self.moves
        self.moves, self.move_count, self.path_count = {}, 0, 0
        for source, outs in moves.items():
            for target, move in outs.items():
                olders = iter(move.olders)
                self.remember(next(olders) >> 1, source >> 1, target >> 1, move.count)
                for older in olders:
                    self.remember(older >> 1, source >> 1, target >> 1, 0)
        longest: dict[int, int] = {}
        for cell, run in self.longest.items():
            if run > longest.get(cell >> 1, 0):
                longest[cell >> 1] = run
        self.longest = longest
        self.older >>= 1
        self.source >>= 1
        self.low_cell >>= 1
        self.high_cell >>= 1
        # A stay in the new, wider cell starts afresh (not knowing how long the finer stays merge into).
        self.run = 1
        self.dwell_due = DWELL_MIN_STEPS

    def over_bounds(self) -> bool:
        return self.move_count > MAX_MOVES or self.path_count > MAX_PATHS

    def enforce_bounds(self) -> bool:
        """Coarsen until the memory fits; say whether anything changed."""
        changed = False
        while self.over_bounds():
            self.coarsen()
            changed = True
        return changed

    def state(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "origin": self.origin,
            "exponent": self.exponent,
            "cells": [self.older, self.source],
            "cell_range": [self.low_cell, self.high_cell],
            "moves": sorted(
                [source, target, move.count] for source, outs in self.moves.items() for target, move in outs.items()
            ),
            "paths": [list(path) for path in self.paths()],
            "run": self.run,
            "longest": [[cell, run] for cell, run in sorted(self.longest.items())],
            "dwell_due": self.dwell_due,
            "last_fire": self.last_fire,
            "pending": [self.pending, self.pending_count],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        if int(state["resolution"]) != self.resolution:
            raise ValueError(f"grid resolution {state['resolution']!r}, expected {self.resolution}")
        self.origin = float(state["origin"])
        self.set_exponent(int(state["exponent"]))
        self.older, self.source = (int(c) for c in state["cells"])
        self.low_cell, self.high_cell = (int(c) for c in state["cell_range"])
        self.moves, self.move_count, self.path_count = {}, 0, 0
        counts = {(int(s), int(t)): int(c) for s, t, c in state["moves"]}
        for a, b, c in state["paths"]:
            older, source, target = int(a), int(b), int(c)
            count = counts.pop((source, target), None)
            if count is None and target not in self.moves.get(source, {}):
                raise ValueError(f"path {[older, source, target]} along a move never made")
            self.remember(older, source, target, count or 0)
        if counts:
            raise ValueError(f"moves {sorted(counts)} along no path")
        self.run = int(state["run"])
        self.longest = {int(cell): int(run) for cell, run in state["longest"]}
        self.dwell_due = int(state["dwell_due"])
        self.last_fire = int(state["last_fire"])
        pending, pending_count = state["pending"]
        self.pending, self.pending_count = float(pending), int(pending_count)


class AnomalyDetector:
    """The detector for one series. Feed readings in time order with `score_batch`."""

    __slots__ = (
        "_background",
        "_evidence",
        "_grids",
        "_last_fire",
        "_previous",
        "_readings",
        "_successors",
        "_warm_range",
        "_warmup",
        "sensitivity",
    )

    def __init__(self, sensitivity: Sensitivity = Sensitivity.MEDIUM) -> None:
        self.sensitivity = Sensitivity(sensitivity)
        self._readings = 0
        self._warmup: list[float] = []
        # The lowest and highest warm-up reading so far (once there is one).
        self._warm_range = (0.0, 0.0)
        self._grids = [
            _Grid(resolution, resolution // previous)
            for previous, resolution in zip((1, *RESOLUTIONS), RESOLUTIONS, strict=False)
        ]
        self._previous = 0.0
        # Per source cell of the readings' own grid: count, sum of destination cells, lowest and highest destination,
        # and the band those two span (kept rather than computed per reading: the hot loop's time). None while
        # stale: `scan_batch` does not keep it, and the next `score_batch` rebuilds it from the moves.
        self._successors: dict[int, list[Any]] | None = {}
        # (reading number, evidence, grid index) of the evidence brought by the last EVIDENCE_READINGS readings.
        self._evidence: list[tuple[int, float, int]] = []
        # Evidence per reading, exponentially averaged: what is ordinary for this series.
        self._background = 0.0
        self._last_fire = NEVER

    @property
    def warming_up(self) -> bool:
        """True until WARMUP_READINGS readings have been seen."""
        return self._readings < WARMUP_READINGS

    @property
    def readings(self) -> int:
        """How many readings this detector has seen."""
        return self._readings

    def score_batch(self, timestamps_us: Sequence[int], values: Sequence[float]) -> list[Scored]:
        """Score readings of this series in time order; each from the readings before it only."""
        if len(timestamps_us) != len(values):
            raise ValueError(f"{len(timestamps_us)} timestamps for {len(values)} values")
        out: list[Scored] = []
        start = 0
        while start < len(values) and self._readings < WARMUP_READINGS:
            out.append(self._learn_warmup(timestamps_us[start], float(values[start])))
            start += 1
        if start < len(values):
            if start:  # (past the warm-up, the usual call: no copies)
                timestamps_us, values = timestamps_us[start:], values[start:]
            self._score_warm(timestamps_us, values, out, None)
        return out

    def scan_batch(self, timestamps_us: Sequence[int], values: Sequence[float]) -> Scan:
        """Score readings as `score_batch` does (the detector ends in the same state), but keep only what a rule
        with nothing going on needs: the scores of the readings before the first anomalous one, and the `Scored`
        of that one and of every reading after it.

        Hot path (bench M4 with an anomaly rule on every series, issue 18): most readings score 0 and nothing is
        made for them, nor is their expected value and band worked out (about a quarter of the detector's time).
        """
        if len(timestamps_us) != len(values):
            raise ValueError(f"{len(timestamps_us)} timestamps for {len(values)} values")
        start = 0
        while start < len(values) and self._readings < WARMUP_READINGS:
            self._learn_warmup(timestamps_us[start], float(values[start]))  # scores 0, never anomalous
            start += 1
        scan = Scan([], [])
        if start < len(values):
            if start:  # (past the warm-up, the usual call: no copies)
                timestamps_us, values = timestamps_us[start:], values[start:]
            self._score_warm(timestamps_us, values, scan.anomalous_on, scan.loud)
            if start:
                scan.loud[:] = [(index + start, score) for index, score in scan.loud]
        return scan

    def score(self, timestamp_us: int, value: float) -> Scored:
        """Score one reading."""
        return self.score_batch((timestamp_us,), (value,))[0]

    # -- warm-up --------------------------------------------------------------------------------------------

    def _learn_warmup(self, stamp: int, value: float) -> Scored:
        warmup = self._warmup
        warmup.append(value)
        self._readings += 1
        # The range kept as it grows, as min() and max() would find it (each keeps the first of equal values).
        if len(warmup) == 1:
            low = high = value
        else:
            low, high = self._warm_range
            if value < low:
                low = value
            elif value > high:
                high = value
        self._warm_range = (low, high)
        count = len(warmup)
        # Each term at most the largest float over `count`, so only rounding can take the sum past it (three
        # readings of 1.8e308), and fsum then raises: the mean is that largest float.
        try:
            mean = math.fsum(v / count for v in warmup)
        except OverflowError:
            mean = math.copysign(sys.float_info.max, math.fsum(v / (2 * count) for v in warmup))
        scored = Scored(stamp, value, 0.0, mean, low, high, True, False)
        if self._readings == WARMUP_READINGS:
            self._start_grids()
        return scored

    def _start_grids(self) -> None:
        """Lay each grid over the warm-up (readings, then block means of block means) and learn its moves.

        The background starts where its average would stand had it run through the second half of the warm-up:
        a series whose warm-up kept finding novelty starts with a higher bar.
        """
        readings = self._warmup
        found = [0.0] * len(readings)
        values: Sequence[float] = readings
        for grid in self._grids:
            if grid.factor > 1:
                values, grid.pending, grid.pending_count = _block_means(values, grid.factor)
            evidence = grid.start(values)
            # The value at index i of this view is complete at reading (i + 1) * resolution - 1.
            for index, gained in enumerate(evidence, start=len(values) - len(evidence)):
                found[(index + 1) * grid.resolution - 1] += gained
        background = 0.0
        for gained in found[len(found) // 2 :]:
            background += (gained - background) * BACKGROUND_RATE
        self._background = background
        self._previous = readings[-1]
        self._warmup = []
        self._rebuild_successors()

    # -- scoring --------------------------------------------------------------------------------------------

    def _score_warm(
        self, stamps: Sequence[int], values: Sequence[float], out: list[Scored], loud: list[tuple[int, float]] | None
    ) -> None:
        """The hot loop: the readings' own grid is stepped inline with its state held in locals; the slower
        grids are stepped through `_feed` once per block.

        With `loud` (`scan_batch`), each reading is *lean* until the first anomalous one: the expected value and
        band are not kept up to date (`_successors` goes stale), a reading that scored above 0 leaves only its
        index and score in `loud`, one that scored 0 leaves nothing. The first anomalous reading's band is
        worked out from the moves (`_band_before`); from there on every reading is scored in full into `out`.

        Hot path (bench M4 with an anomaly rule on every series, issue 18): the usual reading makes a move seen
        before along a path seen before and brings no evidence. That case is handled first with as little work as
        possible; tests/core/test_anomaly_fast.py checks the results against the plain per-grid `_Grid.step`."""
        lean = loud is not None
        if lean:
            self._successors = None
        elif self._successors is None:
            self._rebuild_successors()
        first = self._readings
        threshold = SENSITIVITY_THRESHOLDS[self.sensitivity]
        grids = self._grids
        raw = grids[0]
        slow = grids[1] if len(grids) > 1 else None
        block = slow.factor if slow is not None else 0
        pending, pending_count = (slow.pending, slow.pending_count) if slow is not None else (0.0, 0)
        origin, width = raw.origin, raw.width
        moves, longest = raw.moves, raw.longest
        successors = self._successors if self._successors is not None else {}  # (unused while lean)
        older, source, run, dwell_due = raw.older, raw.source, raw.run, raw.dwell_due
        outs = moves.get(source)  # the moves out of the current cell (None: none yet)
        low_cell, high_cell = raw.low_cell, raw.high_cell
        expected = low = high = 0.0  # (worked out per reading unless lean)
        evidence = self._evidence
        number, last_fire, previous, background = self._readings, self._last_fire, self._previous, self._background
        # Module constants as locals: a local is cheaper than a global on every reading (uncompiled).
        top, bottom = MAX_CELL, -MAX_CELL
        rate, min_steps = BACKGROUND_RATE, DWELL_MIN_STEPS
        successors_get = successors.get
        new_scored = tuple.__new__
        append = out.append
        for stamp, item in zip(stamps, values, strict=True):
            value = float(item)
            position = (value - origin) / width
            target = math.floor(position) if bottom < position < top else (top if position > 0 else bottom)
            move = outs.get(target) if outs is not None else None
            if move is not None:
                count = move.count
                move.count = count + 1
                if not lean:
                    # A move seen before: its source has successors, and `target` is already within their range
                    # (they are kept from `moves`), so only the count and the sum change.
                    stats = successors_get(source)
                    seen, total, _, _, low, high = stats  # type: ignore[misc]
                    expected = origin + (total / seen + 0.5) * width
                    stats[0], stats[1] = seen + 1, total + target  # type: ignore[index]
                if older in move.olders:
                    gained = 0.0
                else:
                    move.olders.add(older)
                    raw.path_count += 1
                    if target > high_cell:
                        gained, high_cell = _new_level(target - high_cell), target
                    elif target < low_cell:
                        gained, low_cell = _new_level(low_cell - target), target
                    else:
                        gained = PATH_EVIDENCE
                    evidence.append((number, gained, 0))
            else:
                count = 0
                if not lean:
                    stats = successors_get(source)
                    if stats is None:
                        expected, low, high = previous, origin + (source - 1) * width, origin + (source + 2) * width
                        successors[source] = [1, target, target, target, *_band(origin, width, target, target)]
                    else:
                        expected = origin + (stats[1] / stats[0] + 0.5) * width
                        low, high = stats[4], stats[5]
                        stats[0] += 1
                        stats[1] += target
                        if target < stats[2]:
                            stats[2] = target
                            stats[4] = origin + target * width
                        elif target > stats[3]:
                            stats[3] = target
                            stats[5] = origin + (target + 1) * width
                if outs is None:
                    outs = moves[source] = {}
                outs[target] = _Move(1, {older})
                raw.move_count += 1
                raw.path_count += 1
                # (A reading in a cell never visited always makes a new move, so the range is kept here.)
                if target > high_cell:
                    gained, high_cell = _new_level(target - high_cell), target
                elif target < low_cell:
                    gained, low_cell = _new_level(low_cell - target), target
                else:
                    gained = 1.0
                evidence.append((number, gained, 0))
            if target == source:
                run += 1
                if run > dwell_due:
                    raw.run = run
                    dwelling = raw.dwell(target)
                    dwell_due = raw.dwell_due
                    if dwelling:
                        gained += dwelling
                        evidence.append((number, dwelling, 0))
            else:
                if run > longest.get(source, 0):
                    longest[source] = run
                run, dwell_due = 1, min_steps
                outs = moves.get(target)
            older, source = source, target
            if slow is not None:
                pending += value / block
                pending_count += 1
                if pending_count == block:
                    gained += self._feed(pending, number)
                    pending, pending_count = 0.0, 0
            if not gained:
                # No evidence: score 0, below every sensitivity's threshold, and no memory grew (a new move always
                # brings evidence), so nothing else is due.
                background -= background * rate
                if not lean:
                    # tuple.__new__ straight away: a NamedTuple's own __new__ is a Python-level call (~0.15 µs).
                    append(new_scored(Scored, (stamp, value, 0.0, expected, low, high, False, False)))
                previous = value
                number += 1
                continue
            while evidence[0][0] <= number - EVIDENCE_READINGS:
                del evidence[0]
            total_evidence = 0.0
            for entry in evidence:
                total_evidence += entry[1]
            score = total_evidence / (FULL_EVIDENCE + BACKGROUND_WEIGHT * EVIDENCE_READINGS * background)
            if score > 1.0:
                score = 1.0
            background += (gained - background) * rate
            anomalous = score >= threshold and number - last_fire > REST_READINGS
            if lean and not anomalous:
                loud.append((number - first, score))  # type: ignore[union-attr]
            else:
                if lean:
                    # The first anomalous reading of a scan: its band as the kept successors would have had it
                    # (`older` and `source` are already this reading's source and target cells).
                    expected, low, high = _band_before(raw, older, source, previous)
                append(new_scored(Scored, (stamp, value, score, expected, low, high, False, anomalous)))
            previous = value
            if anomalous or (count == 0 and (raw.move_count > MAX_MOVES or raw.path_count > MAX_PATHS)):
                raw.older, raw.source, raw.run, raw.dwell_due = older, source, run, dwell_due
                raw.low_cell, raw.high_cell = low_cell, high_cell
                if anomalous:
                    last_fire = number
                    self._coarsen_contributors(number)
                if raw.enforce_bounds() and not lean:
                    self._rebuild_successors()
                if lean and anomalous:
                    lean = False  # every reading from here on is scored in full
                    self._rebuild_successors()
                origin, width = raw.origin, raw.width
                moves, longest = raw.moves, raw.longest
                successors = self._successors if self._successors is not None else {}
                successors_get = successors.get
                older, source, run, dwell_due = raw.older, raw.source, raw.run, raw.dwell_due
                outs = moves.get(source)
                low_cell, high_cell = raw.low_cell, raw.high_cell
            number += 1
        raw.older, raw.source, raw.run, raw.dwell_due = older, source, run, dwell_due
        raw.low_cell, raw.high_cell = low_cell, high_cell
        if slow is not None:
            slow.pending, slow.pending_count = pending, pending_count
        self._readings, self._last_fire, self._previous, self._background = number, last_fire, previous, background

    def _feed(self, value: float, number: int) -> float:
        """A block of readings is complete: step the slower grids with its mean (and each slower grid whose block
        completes with it). Their evidence is recorded for reading `number`; returns its sum."""
        grids = self._grids
        gained = 0.0
        index = 1
        while True:
            found = grids[index].step(value)
            if found:
                self._evidence.append((number, found, index))
                gained += found
            index += 1
            if index == len(grids):
                return gained
            slower = grids[index]
            slower.pending += value / slower.factor
            slower.pending_count += 1
            if slower.pending_count < slower.factor:
                return gained
            value = slower.pending
            slower.pending, slower.pending_count = 0.0, 0

    def _coarsen_contributors(self, number: int) -> None:
        """An alarm at reading `number`: each grid that contributed to it and to another alarm shortly before
        is finer than the series' noise, and coarsens."""
        for index in {entry[2] for entry in self._evidence if entry[0] > number - EVIDENCE_READINGS}:
            grid = self._grids[index]
            if number - grid.last_fire < COARSEN_WITHIN_READINGS:
                grid.coarsen()
                grid.enforce_bounds()
                if index == 0:
                    self._rebuild_successors()
            grid.last_fire = number

    def _rebuild_successors(self) -> None:
        raw = self._grids[0]
        successors: dict[int, list[Any]] = {}
        for source, outs in raw.moves.items():
            seen, total, lowest, highest = _successors(outs, source)
            if seen:
                successors[source] = [seen, total, lowest, highest, *_band(raw.origin, raw.width, lowest, highest)]
        self._successors = successors

    # -- persistence ----------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot from which `from_state` restores this detector exactly."""
        return {
            "version": STATE_VERSION,
            "sensitivity": self.sensitivity.value,
            "readings": self._readings,
            "warmup": list(self._warmup),
            "previous": self._previous,
            "evidence": [[n, e, g] for n, e, g in self._evidence],
            "background": self._background,
            "last_fire": self._last_fire,
            "grids": [grid.state() for grid in self._grids] if not self.warming_up else [],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> AnomalyDetector:
        """Restore a detector saved by `state()`."""
        if state.get("version") != STATE_VERSION:
            raise DetectorStateError(
                f"anomaly detector state version {state.get('version')!r}, expected {STATE_VERSION}"
            )
        try:
            detector = cls(Sensitivity(state["sensitivity"]))
            detector._readings = int(state["readings"])
            detector._warmup = [float(v) for v in state["warmup"]]
            if detector._warmup:
                detector._warm_range = (min(detector._warmup), max(detector._warmup))
            detector._previous = float(state["previous"])
            detector._evidence = [(int(n), float(e), int(g)) for n, e, g in state["evidence"]]
            detector._background = float(state["background"])
            detector._last_fire = int(state["last_fire"])
            grids = state["grids"]
            if not detector.warming_up:
                if len(grids) != len(detector._grids):
                    raise ValueError(f"{len(grids)} grids, expected {len(detector._grids)}")
                for grid, saved in zip(detector._grids, grids, strict=True):
                    grid.restore(saved)
            if any(not 0 <= g < len(detector._grids) for _, _, g in detector._evidence):
                raise ValueError("evidence names a grid that does not exist")
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorStateError(f"malformed anomaly detector state: {exc!r}") from None
        detector._rebuild_successors()
        return detector

    @classmethod
    def rebuild(
        cls, timestamps_us: Sequence[int], values: Sequence[float], sensitivity: Sensitivity = Sensitivity.MEDIUM
    ) -> AnomalyDetector:
        """A detector that has seen the last REBUILD_READINGS of these stored readings (oldest first)."""
        if len(timestamps_us) != len(values):
            raise ValueError(f"{len(timestamps_us)} timestamps for {len(values)} values")
        detector = cls(sensitivity)
        start = max(0, len(values) - REBUILD_READINGS)
        # The warm-up readings are learnt without scoring them (what a replay scores is thrown away, and the
        # warm-up's running mean costs a sum over the warm-up so far per reading): the same state as score_batch.
        warm = start + min(len(values) - start, WARMUP_READINGS)
        detector._warmup = [float(v) for v in values[start:warm]]
        detector._readings = len(detector._warmup)
        if detector._readings == WARMUP_READINGS:
            detector._start_grids()
        elif detector._warmup:
            detector._warm_range = (min(detector._warmup), max(detector._warmup))
        detector.score_batch(timestamps_us[warm:], values[warm:])
        # The replay's own alarms are history: the rebuilt detector may fire on the very next reading.
        detector._last_fire = NEVER
        return detector
