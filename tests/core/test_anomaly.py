"""The online anomaly detector on known series, its state round trip, and that it never looks ahead."""

from __future__ import annotations

import json
import math
import random
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from haltless.core.anomaly import (
    REBUILD_READINGS,
    REST_READINGS,
    WARMUP_READINGS,
    AnomalyDetector,
    DetectorStateError,
    Scored,
    Sensitivity,
)

STEP_US = 10_000_000  # a reading every 10 s


def stamps(count: int, start: int = 0) -> list[int]:
    return [(start + i) * STEP_US for i in range(count)]


def noise(count: int, seed: int, mean: float = 50.0, sigma: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [mean + rng.gauss(0.0, sigma) for _ in range(count)]


def fired(values: list[float], sensitivity: Sensitivity = Sensitivity.MEDIUM) -> list[int]:
    scored = AnomalyDetector(sensitivity).score_batch(stamps(len(values)), values)
    return [i for i, item in enumerate(scored) if item.anomalous]


def test_warm_up_readings_never_fire() -> None:
    values = [*noise(WARMUP_READINGS, seed=1), 1000000.0]
    scored = AnomalyDetector(Sensitivity.HIGH).score_batch(stamps(len(values)), values)
    assert all(s.warming_up and not s.anomalous for s in scored[:WARMUP_READINGS])
    assert not scored[-1].warming_up and scored[-1].anomalous


@pytest.mark.parametrize(("sensitivity", "most"), [(Sensitivity.LOW, 3), (Sensitivity.MEDIUM, 6)])
def test_pure_noise_rarely_fires(sensitivity: Sensitivity, most: int) -> None:
    """White Gaussian noise, 5000 readings, 13 seeds: at most 3 alarms at low, 6 at medium (about 1 in 1000)."""
    for seed in range(7, 20):
        assert len(fired(noise(5000, seed), sensitivity)) <= most, seed


def test_step_is_flagged_on_its_first_readings() -> None:
    """A 10σ step at reading 1000 after a quiet 1000: its first reading scores past medium's threshold, its second
    past low's. Medium fires on the first, low on the second; high had already fired on noise shortly before and
    is resting (one event, one alert)."""
    values = noise(1000, seed=3) + noise(300, seed=4, mean=60.0)
    scores = {s: AnomalyDetector(s).score_batch(stamps(len(values)), values) for s in Sensitivity}
    for scored in scores.values():
        assert scored[1000].score >= Sensitivity.MEDIUM.threshold
        assert scored[1001].score >= Sensitivity.LOW.threshold
    alarms = {s: [i for i, item in enumerate(scored) if item.anomalous] for s, scored in scores.items()}
    assert 1000 in alarms[Sensitivity.MEDIUM]
    assert [i for i in alarms[Sensitivity.LOW] if 600 <= i <= 1001] == [1001]
    assert [i for i in alarms[Sensitivity.HIGH] if 1000 - REST_READINGS <= i <= 1000]


def test_spike_fires_on_the_spike() -> None:
    """A single 20σ spike is a new level: it fires on the spike itself, and nothing fires for a while after."""
    values = noise(1500, seed=5)
    values[1000] += 20.0
    alarms = fired(values)
    assert 1000 in alarms
    assert [i for i in alarms if 1000 < i < 1060] == []


def test_huge_spike_fires_even_on_a_series_often_novel() -> None:
    """A reading far past everything seen brings evidence growing with its distance: on a series whose background
    of routine novelty raises the bar (uniform noise on a fine grid), a 1000σ spike still scores 1."""
    rng = random.Random(21)
    values = [rng.uniform(0.0, 1.0) for _ in range(3000)]
    values[2500] = 1000.0
    scored = AnomalyDetector().score_batch(stamps(len(values)), values)
    assert scored[2500].score == 1.0


def test_slow_bump_hidden_in_noise_fires() -> None:
    """A bump of 1.5σ for 100 readings: single readings stay inside the noise, the means of 16 readings do not."""
    for seed in range(60, 65):
        values = noise(2000, seed=seed)
        for i in range(1200, 1300):
            values[i] += 1.5
        alarms = [i for i in fired(values) if 1000 <= i < 2000]
        assert len(alarms) == 1, seed
        assert 1200 <= alarms[0] < 1230, seed


def test_stuck_sensor_fires() -> None:
    """A noisy signal that freezes at its last value for 300 readings: a stay far longer than any before."""
    for seed in range(20, 25):
        values = noise(1500, seed=seed)
        values += [values[-1]] * 300
        alarms = fired(values)
        assert [i for i in alarms if 1500 <= i < 1700], seed
        assert [i for i in alarms if 1000 <= i < 1500] == [], seed


def test_slow_drift_fires_only_once_it_leaves_the_learned_range() -> None:
    """A drift of 0.01σ per reading: first alarm only after the values pass everything seen in warm-up."""
    rng = random.Random(9)
    values = [50.0 + 0.01 * i + rng.gauss(0.0, 1.0) for i in range(3000)]
    alarms = [i for i in fired(values) if i >= 1000]
    warm_high = max(values[:WARMUP_READINGS])
    assert alarms
    assert values[alarms[0]] > warm_high


def test_constant_series_fires_only_when_it_changes() -> None:
    values = [5.0] * 1000 + [5.5] * 10 + [5.0] * 100
    assert fired(values) == [1000]


def test_expected_band_contains_typical_readings() -> None:
    """The band is where the series has gone from the previous cell: most noise readings fall inside it."""
    values = noise(2000, seed=11)
    scored = AnomalyDetector().score_batch(stamps(len(values)), values)
    live = scored[WARMUP_READINGS:]
    inside = sum(s.low <= s.value < s.high for s in live)
    assert inside / len(live) > 0.95
    assert all(s.low <= s.expected <= s.high for s in live)
    assert sorted(s.expected for s in live)[len(live) // 2] == pytest.approx(50.0, abs=1.0)


def test_huge_values_and_irregular_gaps_do_not_break_it() -> None:
    values = [*noise(400, seed=12), 1e300, -1e300, 1.7e308, 50.0, 0.0, *noise(100, seed=13)]
    irregular = sorted(random.Random(14).sample(range(10**12), len(values)))
    detector = AnomalyDetector()
    scored = detector.score_batch(irregular, values)
    assert all(0.0 <= s.score <= 1.0 for s in scored)
    assert scored[400].anomalous
    json.dumps(detector.state(), allow_nan=False)


def test_timestamps_do_not_change_the_scores() -> None:
    """Novelty counts readings, not seconds: gaps and irregular sampling give the same scores."""
    values = noise(800, seed=15)
    values[600] += 15.0
    regular = AnomalyDetector().score_batch(stamps(len(values)), values)
    gappy = [i * STEP_US + (10**11 if i > 500 else 0) for i in range(len(values))]
    irregular = AnomalyDetector().score_batch(gappy, values)
    assert [s.score for s in regular] == [s.score for s in irregular]


def test_bad_state_is_refused_with_a_reason() -> None:
    state = AnomalyDetector().state()
    with pytest.raises(DetectorStateError, match="version"):
        AnomalyDetector.from_state({**state, "version": 99})
    broken = dict(state)
    del broken["grids"]
    with pytest.raises(DetectorStateError, match="grids"):
        AnomalyDetector.from_state(broken)
    detector = AnomalyDetector()
    detector.score_batch(stamps(WARMUP_READINGS + 10), noise(WARMUP_READINGS + 10, seed=17))
    warm = json.loads(json.dumps(detector.state()))
    del warm["grids"][1]["moves"]
    with pytest.raises(DetectorStateError, match="moves"):
        AnomalyDetector.from_state(warm)
    with pytest.raises(DetectorStateError, match="2 grids"):
        AnomalyDetector.from_state({**warm, "grids": warm["grids"][:2]})
    # Paths and moves must agree: each path runs along a move, each move along some path.
    whole = json.loads(json.dumps(detector.state()))
    source, target, _ = whole["grids"][0]["moves"][0]
    orphan = json.loads(json.dumps(whole))
    orphan["grids"][0]["paths"] = [p for p in orphan["grids"][0]["paths"] if p[1:] != [source, target]]
    with pytest.raises(DetectorStateError, match="along no path"):
        AnomalyDetector.from_state(orphan)
    stray = json.loads(json.dumps(whole))
    stray["grids"][0]["paths"].append([source, 10**6, 10**6 + 1])
    with pytest.raises(DetectorStateError, match="along a move never made"):
        AnomalyDetector.from_state(stray)


def test_rebuild_replays_a_bounded_window_and_may_fire_at_once() -> None:
    values = noise(5000, seed=16)
    detector = AnomalyDetector.rebuild(stamps(len(values)), values)
    assert not detector.warming_up
    assert detector.state()["readings"] == REBUILD_READINGS
    assert detector.score(5000 * STEP_US, 1e4).anomalous


@st.composite
def series(draw: st.DrawFn) -> list[float]:
    """Seeded noise long enough to leave warm-up, with hypothesis-chosen steps, spikes and extreme values."""
    length = draw(st.integers(min_value=WARMUP_READINGS + 1, max_value=WARMUP_READINGS + 200))
    sigma = draw(st.sampled_from([0.0, 1e-6, 1.0, 1e3]))
    values = noise(length, draw(st.integers(min_value=0, max_value=2**32)), sigma=sigma)
    edits = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=length - 1),
                st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.sampled_from([0.0, 1e300, -1e300])),
                st.booleans(),
            ),
            max_size=12,
        )
    )
    for index, value, is_step in edits:
        for at in range(index, length if is_step else index + 1):
            values[at] = value
    return values


@settings(max_examples=40, deadline=None)
@given(series(), st.data())
def test_state_round_trips_exactly_through_json(values: list[float], data: st.DataObject) -> None:
    """Saving, JSON-encoding and restoring at any point changes nothing that follows."""
    cut = data.draw(st.integers(min_value=0, max_value=len(values)))
    times = stamps(len(values))
    whole = AnomalyDetector()
    expected = whole.score_batch(times, values)
    first = AnomalyDetector()
    before = first.score_batch(times[:cut], values[:cut])
    restored = AnomalyDetector.from_state(json.loads(json.dumps(first.state())))
    assert restored.state() == first.state()
    after = restored.score_batch(times[cut:], values[cut:])
    assert before + after == expected
    assert restored.state() == whole.state()


@settings(max_examples=40, deadline=None)
@given(series(), st.data())
def test_scores_never_look_ahead(values: list[float], data: st.DataObject) -> None:
    """Changing readings after i leaves the scores of readings up to i unchanged."""
    cut = data.draw(st.integers(min_value=1, max_value=len(values)))
    shift = data.draw(st.floats(min_value=-1e9, max_value=1e9))
    changed = values[:cut] + [v + shift for v in values[cut:]]
    original = AnomalyDetector().score_batch(stamps(len(values)), values)
    altered = AnomalyDetector().score_batch(stamps(len(changed)), changed)
    assert original[:cut] == altered[:cut]


@settings(max_examples=20, deadline=None)
@given(series(), st.lists(st.integers(min_value=1, max_value=50), min_size=1))
def test_batches_score_like_single_readings(values: list[float], sizes: list[int]) -> None:
    times = stamps(len(values))
    one_by_one = AnomalyDetector()
    singles: list[Scored] = [one_by_one.score(t, v) for t, v in zip(times, values, strict=True)]
    batched = AnomalyDetector()
    out: list[Scored] = []
    start, index = 0, 0
    while start < len(values):
        size = sizes[index % len(sizes)]
        out += batched.score_batch(times[start : start + size], values[start : start + size])
        start, index = start + size, index + 1
    assert out == singles


@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=400))
@example(values=[sys.float_info.max] * 3)  # the warm-up mean's sum rounds past the largest float (was a 500)
@example(values=[-sys.float_info.max] * 3 + [1.0])
def test_any_finite_values_are_scored_without_an_error(values: list[float]) -> None:
    """A reading may be any finite float (1e308 included): scoring never raises, or ingest would answer 500."""
    for scored in AnomalyDetector(Sensitivity.HIGH).score_batch(stamps(len(values)), values):
        assert 0.0 <= scored.score <= 1.0 or math.isnan(scored.score)
