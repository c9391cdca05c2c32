"""Online anomaly detection for one (machine, metric) series: novel transitions on an adaptive value grid.

How it works (chosen by measurement on the Numenta Anomaly Benchmark, see docs/anomaly-detection.md):

- Warm-up: the first `WARMUP_READINGS` readings only teach. Their range sets a value grid of about
  `GRID_CELLS` cells whose width is a power of two, so that the grid can later be coarsened exactly by halving
  cell indices.
- Every reading moves the series from one cell to another. The detector remembers which moves (cell pairs)
  and which three-cell paths it has seen. A reading is *novel* when it lands beyond every cell ever visited (a new
  level, evidence `NEW_LEVEL_EVIDENCE` = 3), when its move was never seen (evidence 1) or, less strongly, when only
  its three-cell path is new (evidence `PATH_EVIDENCE` = 0.25).
- The score of a novel reading is the evidence of the last `EVIDENCE_READINGS` readings, divided by
  `FULL_EVIDENCE` and capped at 1: one new move scores 0.25, two within twelve readings 0.5, a new level 0.75. A
  reading whose move is familiar scores 0. A spike makes two new moves (up and back), a level shift or a new
  pattern several, while ordinary noise at most an occasional one.
- A reading is *anomalous* when its score reaches the sensitivity's threshold, the warm-up is over and no
  anomaly fired in the previous `REST_READINGS` readings (one event, one alert).
- A series that keeps firing is noisier than its warm-up suggested: when two anomalies fire within
  `COARSEN_WITHIN_READINGS` readings, the grid's cells double in width (the remembered moves merge).

The expected value and band drawn by a dashboard come from the same memory: the band spans the cells the
series has moved to from the previous reading's cell, the expected value is their count-weighted centre.

Everything counts readings, not seconds: gaps and irregular sampling do not change what is novel.
The state is a small JSON-able dict (`state()` / `from_state()`); it round-trips exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from itertools import pairwise
from typing import Any, NamedTuple

WARMUP_READINGS = 300
GRID_CELLS = 16
STEP_CELLS = 1.0  # and no finer than the median step between consecutive warm-up readings
PATH_EVIDENCE = 0.25
NEW_LEVEL_EVIDENCE = 3.0
# How many cells past the visited ones a new level must land (1 measured worse on NAB, and no quieter on noise).
NEW_LEVEL_MARGIN = 0
EVIDENCE_READINGS = 12
FULL_EVIDENCE = 4.0
REST_READINGS = 60
COARSEN_WITHIN_READINGS = 250
# Memory bounds: past these many remembered moves or paths the grid coarsens, which merges them.
MAX_MOVES = 512
MAX_PATHS = 2048
# Cell indices are clamped so that absurd values (1e300) stay ordinary integers.
MAX_CELL = 2**62
STATE_VERSION = 1
# Rebuilding after a restart without stored state: replay at most this many most recent readings.
REBUILD_READINGS = 2000


class Sensitivity(StrEnum):
    """How much novelty a reading needs to count as anomalous (the score threshold it must reach)."""

    LOW = "low"  # 0.75: three new moves within twelve readings; only clear breaks in behaviour
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


def _cell(value: float, origin: float, width: float) -> int:
    position = (value - origin) / width
    if position >= MAX_CELL:
        return MAX_CELL
    if position <= -MAX_CELL:
        return -MAX_CELL
    return math.floor(position)


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


class AnomalyDetector:
    """The detector for one series. Feed readings in time order with `score_batch`."""

    __slots__ = (
        "_cells",
        "_evidence",
        "_exponent",
        "_high_cell",
        "_last_fire",
        "_low_cell",
        "_moves",
        "_origin",
        "_paths",
        "_previous",
        "_readings",
        "_successors",
        "_warmup",
        "_width",
        "sensitivity",
    )

    def __init__(self, sensitivity: Sensitivity = Sensitivity.MEDIUM) -> None:
        self.sensitivity = Sensitivity(sensitivity)
        self._readings = 0
        self._warmup: list[float] = []
        self._origin = 0.0
        self._exponent = 0
        self._width = 1.0
        # The cells of the two previous readings (older first) once warm.
        self._cells: tuple[int, int] = (0, 0)
        # The lowest and highest cells ever visited: leaving them is a new level.
        self._low_cell = 0
        self._high_cell = 0
        self._previous = 0.0
        self._moves: dict[tuple[int, int], int] = {}
        self._paths: set[tuple[int, int, int]] = set()
        # Per source cell: (count, sum of destination cells, lowest, highest destination).
        self._successors: dict[int, list[int]] = {}
        # (reading number, evidence) of the novel readings among the last EVIDENCE_READINGS.
        self._evidence: list[tuple[int, float]] = []
        self._last_fire = -(10**12)

    @property
    def warming_up(self) -> bool:
        """True until WARMUP_READINGS readings have been seen."""
        return self._readings < WARMUP_READINGS

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
            self._score_warm(timestamps_us[start:], values[start:], out)
        return out

    def score(self, timestamp_us: int, value: float) -> Scored:
        """Score one reading."""
        return self.score_batch((timestamp_us,), (value,))[0]

    # -- warm-up --------------------------------------------------------------------------------------------

    def _learn_warmup(self, stamp: int, value: float) -> Scored:
        self._warmup.append(value)
        self._readings += 1
        low, high = min(self._warmup), max(self._warmup)
        mean = math.fsum(self._warmup) / len(self._warmup)
        scored = Scored(stamp, value, 0.0, mean, low, high, True, False)
        if self._readings == WARMUP_READINGS:
            self._start_grid()
        return scored

    def _start_grid(self) -> None:
        """Lay the grid over the warm-up readings and learn their moves."""
        history = self._warmup
        self._origin = history[0]
        self._set_exponent(_initial_exponent(history))
        cells = [_cell(v, self._origin, self._width) for v in history]
        for index in range(1, len(cells)):
            self._remember(cells[index - 2] if index >= 2 else cells[0], cells[index - 1], cells[index])
        self._cells = (cells[-2], cells[-1])
        self._low_cell, self._high_cell = min(cells), max(cells)
        self._previous = history[-1]
        self._warmup = []
        self._enforce_bounds()

    def _set_exponent(self, exponent: int) -> None:
        self._exponent = exponent
        self._width = math.ldexp(1.0, exponent)

    # -- scoring --------------------------------------------------------------------------------------------

    def _remember(self, older: int, source: int, target: int) -> tuple[bool, bool]:
        """Record a move and its path; say whether each was new."""
        move = (source, target)
        count = self._moves.get(move, 0)
        self._moves[move] = count + 1
        path = (older, source, target)
        new_path = path not in self._paths
        if new_path:
            self._paths.add(path)
        stats = self._successors.get(source)
        if stats is None:
            self._successors[source] = [1, target, target, target]
        else:
            stats[0] += 1
            stats[1] += target
            if target < stats[2]:
                stats[2] = target
            elif target > stats[3]:
                stats[3] = target
        return count == 0, new_path

    def _score_warm(self, stamps: Sequence[int], values: Sequence[float], out: list[Scored]) -> None:
        """The hot loop: every step of `_remember` and `_band` inlined, state held in locals."""
        origin, width, threshold = self._origin, self._width, SENSITIVITY_THRESHOLDS[self.sensitivity]
        moves, paths, successors, evidence = self._moves, self._paths, self._successors, self._evidence
        older, source = self._cells
        number, last_fire, previous = self._readings, self._last_fire, self._previous
        low_cell, high_cell = self._low_cell, self._high_cell
        floor = math.floor
        append = out.append
        for stamp, raw in zip(stamps, values, strict=True):
            value = float(raw)
            stats = successors.get(source)
            if stats is None:
                expected, low, high = previous, origin + (source - 1) * width, origin + (source + 2) * width
            else:
                expected = origin + (stats[1] / stats[0] + 0.5) * width
                low, high = origin + stats[2] * width, origin + (stats[3] + 1) * width
            position = (value - origin) / width
            target = floor(position) if -MAX_CELL < position < MAX_CELL else (MAX_CELL if position > 0 else -MAX_CELL)
            move = (source, target)
            count = moves.get(move, 0)
            moves[move] = count + 1
            if stats is None:
                successors[source] = [1, target, target, target]
            else:
                stats[0] += 1
                stats[1] += target
                if target < stats[2]:
                    stats[2] = target
                elif target > stats[3]:
                    stats[3] = target
            path = (older, source, target)
            new_path = path not in paths
            if new_path:
                paths.add(path)
            score = 0.0
            if count == 0 or new_path:
                while evidence and evidence[0][0] <= number - EVIDENCE_READINGS:
                    del evidence[0]
                # (A reading in a cell never visited always makes a new move, so the range is kept here.)
                if target > high_cell + NEW_LEVEL_MARGIN or target < low_cell - NEW_LEVEL_MARGIN:
                    weight = NEW_LEVEL_EVIDENCE
                else:
                    weight = 1.0 if count == 0 else PATH_EVIDENCE
                if target > high_cell:
                    high_cell = target
                elif target < low_cell:
                    low_cell = target
                evidence.append((number, weight))
                total = 0.0
                for _, weight in evidence:
                    total += weight
                score = min(1.0, total / FULL_EVIDENCE)
            anomalous = score >= threshold and number - last_fire > REST_READINGS
            older, source = source, target
            previous = value
            append(Scored(stamp, value, score, expected, low, high, False, anomalous))
            if anomalous:
                coarsen = number - last_fire < COARSEN_WITHIN_READINGS
                last_fire = number
                if coarsen or len(moves) > MAX_MOVES or len(paths) > MAX_PATHS:
                    self._cells, self._low_cell, self._high_cell = (older, source), low_cell, high_cell
                    self._coarsen()
                    self._enforce_bounds()
                    origin, width = self._origin, self._width
                    moves, paths, successors = self._moves, self._paths, self._successors
                    older, source = self._cells
                    low_cell, high_cell = self._low_cell, self._high_cell
            elif count == 0 and (len(moves) > MAX_MOVES or len(paths) > MAX_PATHS):
                self._cells, self._low_cell, self._high_cell = (older, source), low_cell, high_cell
                self._enforce_bounds()
                origin, width = self._origin, self._width
                moves, paths, successors = self._moves, self._paths, self._successors
                older, source = self._cells
                low_cell, high_cell = self._low_cell, self._high_cell
            number += 1
        self._cells = (older, source)
        self._readings, self._last_fire, self._previous = number, last_fire, previous
        self._low_cell, self._high_cell = low_cell, high_cell

    def _coarsen(self) -> None:
        """Double the cell width; remembered moves and paths merge into the coarser cells.

        The origin stays put: halving cell indices (floor division) is exact only around a fixed origin.
        """
        self._set_exponent(self._exponent + 1)
        moves: dict[tuple[int, int], int] = {}
        for (source, target), count in self._moves.items():
            key = (source >> 1, target >> 1)
            moves[key] = moves.get(key, 0) + count
        self._moves = moves
        self._paths = {(a >> 1, b >> 1, c >> 1) for a, b, c in self._paths}
        self._cells = (self._cells[0] >> 1, self._cells[1] >> 1)
        self._low_cell >>= 1
        self._high_cell >>= 1
        self._rebuild_successors()

    def _rebuild_successors(self) -> None:
        successors: dict[int, list[int]] = {}
        for (source, target), count in self._moves.items():
            stats = successors.get(source)
            if stats is None:
                successors[source] = [count, count * target, target, target]
            else:
                stats[0] += count
                stats[1] += count * target
                stats[2] = min(stats[2], target)
                stats[3] = max(stats[3], target)
        self._successors = successors

    def _enforce_bounds(self) -> None:
        while len(self._moves) > MAX_MOVES or len(self._paths) > MAX_PATHS:
            self._coarsen()

    # -- persistence ----------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot from which `from_state` restores this detector exactly."""
        return {
            "version": STATE_VERSION,
            "sensitivity": self.sensitivity.value,
            "readings": self._readings,
            "warmup": list(self._warmup),
            "origin": self._origin,
            "exponent": self._exponent,
            "cells": list(self._cells),
            "cell_range": [self._low_cell, self._high_cell],
            "previous": self._previous,
            "moves": [[s, t, c] for (s, t), c in self._moves.items()],
            "paths": [list(p) for p in sorted(self._paths)],
            "evidence": [[n, e] for n, e in self._evidence],
            "last_fire": self._last_fire,
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
            detector._origin = float(state["origin"])
            detector._set_exponent(int(state["exponent"]))
            older, source = (int(c) for c in state["cells"])
            detector._cells = (older, source)
            detector._low_cell, detector._high_cell = (int(c) for c in state["cell_range"])
            detector._previous = float(state["previous"])
            detector._moves = {(int(s), int(t)): int(c) for s, t, c in state["moves"]}
            detector._paths = {(int(a), int(b), int(c)) for a, b, c in state["paths"]}
            detector._evidence = [(int(n), float(e)) for n, e in state["evidence"]]
            detector._last_fire = int(state["last_fire"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorStateError(f"malformed anomaly detector state: {exc!r}") from None
        detector._rebuild_successors()
        return detector

    @classmethod
    def rebuild(
        cls, timestamps_us: Sequence[int], values: Sequence[float], sensitivity: Sensitivity = Sensitivity.MEDIUM
    ) -> AnomalyDetector:
        """A detector that has seen the last REBUILD_READINGS of these stored readings (oldest first)."""
        detector = cls(sensitivity)
        start = max(0, len(values) - REBUILD_READINGS)
        detector.score_batch(timestamps_us[start:], values[start:])
        # The replay's own alarms are history: the rebuilt detector may fire on the very next reading.
        detector._last_fire = -(10**12)
        return detector
