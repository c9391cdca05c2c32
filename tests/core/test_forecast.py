"""Time-to-threshold forecasts on known series, and the forecaster's state round trip."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haltless.core.forecast import WINDOW_READINGS, Direction, Forecast, TrendForecaster

STEP_US = 10_000_000  # a reading every 10 s
HOUR_S = 3600.0


def feed(forecaster: TrendForecaster, values: list[float]) -> list[Forecast]:
    """One update per reading, as a rule sees them."""
    return [forecaster.update([i * STEP_US], [v]) for i, v in enumerate(values)]


def noise(count: int, seed: int, mean: float = 50.0, sigma: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [mean + rng.gauss(0.0, sigma) for _ in range(count)]


def drift(count: int, seed: int, start: float = 50.0, per_s: float = 0.005, sigma: float = 0.5) -> list[float]:
    rng = random.Random(seed)
    return [start + per_s * (i * 10) + rng.gauss(0.0, sigma) for i in range(count)]


def test_slow_drift_fires_ahead_and_forecasts_the_crossing_within_fifteen_percent() -> None:
    """50 rising 0.005/s (18 per hour) under σ=0.5 noise, threshold 90: the true crossing is at t=8000 s.

    With the default 128-reading window (1280 s) a crossing is announced at most 3 windows (3840 s) ahead, so the
    forecast fires from t≈4160 s, over an hour before the crossing, and keeps firing until it. Every forecast puts
    the crossing within 15% of the time that really remains (or a minute, in the last minutes).
    """
    forecasts = feed(TrendForecaster(90.0, Direction.ABOVE, horizon_s=2 * HOUR_S), drift(800, seed=21))
    true_crossing_us = 8000 * 1_000_000
    firing = [i for i, f in enumerate(forecasts) if f.will_cross]
    assert firing == list(range(firing[0], 800))
    assert 400 <= firing[0] <= 440
    for f in forecasts[WINDOW_READINGS:]:
        assert f.trending and f.crossing_us is not None
        remaining = true_crossing_us - f.as_of_us
        assert abs(f.crossing_us - true_crossing_us) <= max(0.15 * remaining, 60_000_000)


def test_drift_beyond_the_horizon_is_trending_but_does_not_fire() -> None:
    last = feed(TrendForecaster(90.0, Direction.ABOVE, horizon_s=600.0), drift(600, seed=22))[-1]
    assert last.trending and not last.will_cross and last.crossing_us is not None


def test_falling_drift_crosses_below() -> None:
    values = [50.0 - 0.01 * (i * 10) for i in range(100)]
    last = feed(TrendForecaster(30.0, Direction.BELOW, horizon_s=HOUR_S), values)[-1]
    assert last.will_cross and last.crossing_us == pytest.approx(2000 * 1_000_000, rel=1e-6)


@pytest.mark.parametrize("seed", range(30, 35))
@pytest.mark.parametrize("direction", list(Direction))
def test_pure_noise_never_fires(seed: int, direction: Direction) -> None:
    threshold = 60.0 if direction is Direction.ABOVE else 40.0
    forecasts = feed(TrendForecaster(threshold, direction, horizon_s=24 * HOUR_S), noise(2000, seed))
    assert not any(f.will_cross for f in forecasts)


def test_a_step_is_not_a_trend() -> None:
    """Flat at 50, then flat at 70: no forecast of crossing 90 while the window straddles the step, or after."""
    values = noise(200, seed=40, sigma=0.3) + noise(300, seed=41, mean=70.0, sigma=0.3)
    forecasts = feed(TrendForecaster(90.0, Direction.ABOVE, horizon_s=HOUR_S), values)
    assert not any(f.will_cross for f in forecasts)


def test_one_spike_neither_fires_nor_moves_a_forecast() -> None:
    flat = noise(300, seed=42)
    flat[250] += 100.0
    assert not any(f.will_cross for f in feed(TrendForecaster(70.0, Direction.ABOVE, horizon_s=HOUR_S), flat))
    rising = drift(300, seed=43)
    spiked = list(rising)
    spiked[280] += 100.0
    clean = feed(TrendForecaster(90.0, Direction.ABOVE, horizon_s=12 * HOUR_S), rising)[-1]
    hit = feed(TrendForecaster(90.0, Direction.ABOVE, horizon_s=12 * HOUR_S), spiked)[-1]
    assert clean.crossing_us is not None and hit.crossing_us is not None
    assert abs(hit.crossing_us - clean.crossing_us) <= 0.02 * (clean.crossing_us - clean.as_of_us)


def test_already_past_the_threshold_says_crossed_not_will_cross() -> None:
    values = [95.0 + 0.01 * i for i in range(100)]
    last = feed(TrendForecaster(90.0, Direction.ABOVE, horizon_s=HOUR_S), values)[-1]
    assert last.crossed and not last.will_cross


def test_too_few_readings_is_not_ready() -> None:
    forecast = TrendForecaster(90.0, Direction.ABOVE, horizon_s=HOUR_S).update([0, STEP_US], [1.0, 2.0])
    assert not forecast.ready and not forecast.will_cross


def test_time_window_drops_old_readings_and_irregular_gaps_are_fine() -> None:
    forecaster = TrendForecaster(90.0, Direction.ABOVE, horizon_s=HOUR_S, window_s=300.0)
    times = [0, 5, 7, 200, 250, 251, 400, 401, 402, 403, *range(410, 700, 13)]
    forecaster.add([t * 1_000_000 for t in times], [50.0 + 0.05 * t for t in times])
    state = forecaster.state()
    assert min(state["times"]) >= (times[-1] - 300) * 1_000_000
    forecast = forecaster.forecast()
    assert forecast.will_cross and forecast.slope_per_s == pytest.approx(0.05)


def test_bad_arguments_and_state_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="horizon_s"):
        TrendForecaster(90.0, Direction.ABOVE, horizon_s=0.0)
    with pytest.raises(ValueError, match="threshold"):
        TrendForecaster(float("inf"), Direction.ABOVE, horizon_s=1.0)
    state = TrendForecaster(90.0, Direction.ABOVE, horizon_s=1.0).state()
    with pytest.raises(ValueError, match="version"):
        TrendForecaster.from_state({**state, "version": 0})


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=0, max_size=150),
    st.integers(min_value=0, max_value=150),
)
def test_state_round_trips_exactly_through_json(values: list[float], cut: int) -> None:
    cut = min(cut, len(values))
    whole = TrendForecaster(10.0, Direction.ABOVE, horizon_s=HOUR_S)
    whole.add([i * STEP_US for i in range(len(values))], values)
    first = TrendForecaster(10.0, Direction.ABOVE, horizon_s=HOUR_S)
    first.add([i * STEP_US for i in range(cut)], values[:cut])
    restored = TrendForecaster.from_state(json.loads(json.dumps(first.state())))
    restored.add([i * STEP_US for i in range(cut, len(values))], values[cut:])
    assert restored.state() == whole.state()
    assert restored.forecast() == whole.forecast() or restored.forecast().level != restored.forecast().level


@given(
    values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=200),
    threshold=st.floats(allow_nan=False, allow_infinity=False),
    step_us=st.integers(min_value=1, max_value=10**9),
)
def test_any_finite_values_forecast_without_an_error(values: list[float], threshold: float, step_us: int) -> None:
    """A reading may be any finite float (1e308 included): a forecast never raises, or ingest would answer 500."""
    forecaster = TrendForecaster(threshold, Direction.ABOVE, horizon_s=3600.0)
    forecaster.update([n * step_us for n in range(len(values))], values)
