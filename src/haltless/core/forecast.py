"""Time-to-threshold forecasts for one (machine, metric) series: a robust trend over a bounded window.

The trend is a Theil–Sen-style fit over the last `window_readings` readings (optionally also bounded in time): the
slope is the median of the slopes between each reading and the one half a window later, the level the median of
the readings after removing that slope. Medians make one spike (or a few) irrelevant.

A crossing is forecast only when the trend is real:
- it is significant: the slope is more than `SIGNIFICANCE` robust standard errors from zero (pure noise never
  qualifies), and
- it is steady: the slope over quarter-window steps agrees with the half-window one (at least
  `STEADINESS` of it, same sign). A step between two flat levels has a large half-window slope but a quarter-window
  slope near zero, so a step is not mistaken for a drift; once the window holds only the new level the slope is 0.

The answer gives the predicted crossing time and a range from the slope's uncertainty (± one standard error). A
crossing is announced (`will_cross`) only within the horizon and within `EXTRAPOLATION_WINDOWS` window spans.
The state is the window itself, a small JSON-able dict; it round-trips exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

WINDOW_READINGS = 128
MAX_WINDOW_READINGS = 1024
MIN_READINGS = 16
# A crossing is announced only within this many window spans ahead: a line fitted to ten minutes says little
# about tomorrow. Beyond it the forecast still carries crossing_us, but will_cross stays False.
EXTRAPOLATION_WINDOWS = 3.0
SIGNIFICANCE = 4.0
STEADINESS = 0.5
STATE_VERSION = 1
_MAD_TO_SIGMA = 1.4826


class Direction(StrEnum):
    """Which way the threshold is crossed."""

    ABOVE = "above"  # the value rises past the threshold
    BELOW = "below"  # the value falls past the threshold


@dataclass(frozen=True, slots=True)
class Forecast:
    """The forecast as of the newest reading in the window."""

    as_of_us: int
    ready: bool  # enough readings for a trend
    level: float  # the trend's value at as_of
    slope_per_s: float
    slope_stderr_per_s: float
    trending: bool  # significant and steady
    crossed: bool  # the trend's level is already past the threshold
    will_cross: bool  # predicted to cross within the horizon (and not crossed yet)
    crossing_us: int | None  # predicted crossing time, when trending towards the threshold
    earliest_us: int | None  # with the slope one standard error steeper
    latest_us: int | None  # with the slope one standard error flatter; None when that never crosses


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def _lag_slopes(times: Sequence[float], values: Sequence[float], lag: int) -> list[float]:
    return [
        (values[i + lag] - values[i]) / (times[i + lag] - times[i])
        for i in range(len(values) - lag)
        if times[i + lag] > times[i]
    ]


class TrendForecaster:
    """Forecasts when one series will cross `threshold` in `direction`, looking `horizon_s` ahead."""

    __slots__ = ("_times", "_values", "direction", "horizon_s", "threshold", "window_readings", "window_s")

    def __init__(
        self,
        threshold: float,
        direction: Direction,
        horizon_s: float,
        window_s: float | None = None,
        window_readings: int = WINDOW_READINGS,
    ) -> None:
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        if not horizon_s > 0:
            raise ValueError(f"horizon_s must be positive, got {horizon_s!r}")
        if window_s is not None and not window_s > 0:
            raise ValueError(f"window_s must be positive when given, got {window_s!r}")
        if not MIN_READINGS <= window_readings <= MAX_WINDOW_READINGS:
            raise ValueError(f"window_readings must be {MIN_READINGS}..{MAX_WINDOW_READINGS}, got {window_readings!r}")
        self.window_readings = int(window_readings)
        self.threshold = float(threshold)
        self.direction = Direction(direction)
        self.horizon_s = float(horizon_s)
        self.window_s = window_s
        self._times: list[int] = []
        self._values: list[float] = []

    def add(self, timestamps_us: Sequence[int], values: Sequence[float]) -> None:
        """Append readings in time order (older ones than the newest are ignored), keeping the window bounded."""
        if len(timestamps_us) != len(values):
            raise ValueError(f"{len(timestamps_us)} timestamps for {len(values)} values")
        for stamp, value in zip(timestamps_us, values, strict=True):
            if self._times and stamp < self._times[-1]:
                continue
            self._times.append(int(stamp))
            self._values.append(float(value))
        if len(self._times) > self.window_readings:
            del self._times[: len(self._times) - self.window_readings]
            del self._values[: len(self._values) - self.window_readings]
        if self.window_s is not None and self._times:
            oldest = self._times[-1] - int(self.window_s * 1_000_000)
            keep = next(i for i, stamp in enumerate(self._times) if stamp >= oldest)
            del self._times[:keep]
            del self._values[:keep]

    def update(self, timestamps_us: Sequence[int], values: Sequence[float]) -> Forecast:
        """`add` a batch and return the forecast as of its newest reading."""
        self.add(timestamps_us, values)
        return self.forecast()

    def forecast(self) -> Forecast:
        """The forecast from the readings in the window."""
        if not self._times:
            return Forecast(0, False, math.nan, 0.0, 0.0, False, False, False, None, None, None)
        now = self._times[-1]
        if len(self._times) < MIN_READINGS:
            last = self._values[-1]
            return Forecast(now, False, last, 0.0, 0.0, False, self._past(last), False, None, None, None)
        # Seconds relative to the newest reading keep the arithmetic well conditioned.
        times = [(t - now) / 1e6 for t in self._times]
        values = self._values
        half = len(values) // 2
        slopes = _lag_slopes(times, values, half)
        if len(slopes) < MIN_READINGS // 2:
            last = values[-1]
            return Forecast(now, False, last, 0.0, 0.0, False, self._past(last), False, None, None, None)
        slope = _median(slopes)
        spread = _MAD_TO_SIGMA * _median([abs(s - slope) for s in slopes])
        stderr = spread / math.sqrt(len(slopes))
        level = _median([v - slope * t for t, v in zip(times, values, strict=True)])
        quarter = _lag_slopes(times, values, max(1, half // 2))
        steady = bool(quarter) and (_median(quarter) / slope >= STEADINESS if slope != 0.0 else False)
        trending = abs(slope) > SIGNIFICANCE * stderr and steady
        crossed = self._past(level)
        towards = slope > 0 if self.direction is Direction.ABOVE else slope < 0
        if crossed or not trending or not towards:
            return Forecast(now, True, level, slope, stderr, trending, crossed, False, None, None, None)
        gap = self.threshold - level
        seconds = gap / slope
        steeper = slope + math.copysign(stderr, slope)
        flatter = slope - math.copysign(stderr, slope)
        earliest = now + round(gap / steeper * 1e6)
        latest = now + round(gap / flatter * 1e6) if flatter * slope > 0 else None
        crossing = now + round(seconds * 1e6)
        reach = min(self.horizon_s, EXTRAPOLATION_WINDOWS * -times[0])
        return Forecast(now, True, level, slope, stderr, True, False, seconds <= reach, crossing, earliest, latest)

    def _past(self, value: float) -> bool:
        return value >= self.threshold if self.direction is Direction.ABOVE else value <= self.threshold

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot from which `from_state` restores this forecaster exactly."""
        return {
            "version": STATE_VERSION,
            "threshold": self.threshold,
            "direction": self.direction.value,
            "horizon_s": self.horizon_s,
            "window_s": self.window_s,
            "window_readings": self.window_readings,
            "times": list(self._times),
            "values": list(self._values),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TrendForecaster:
        """Restore a forecaster saved by `state()`."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"forecast state version {state.get('version')!r}, expected {STATE_VERSION}")
        try:
            window = state["window_s"]
            forecaster = cls(
                float(state["threshold"]),
                Direction(state["direction"]),
                float(state["horizon_s"]),
                None if window is None else float(window),
                int(state["window_readings"]),
            )
            times = [int(t) for t in state["times"]]
            values = [float(v) for v in state["values"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed forecast state: {exc!r}") from None
        if len(times) != len(values):
            raise ValueError(f"malformed forecast state: {len(times)} times for {len(values)} values")
        forecaster._times, forecaster._values = times, values
        return forecaster
