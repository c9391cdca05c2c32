"""Anomaly and forecast rules decided reading by reading (core/predictive.py), on known series."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any

from bench import series

from haltless.core import predictive
from haltless.core.anomaly import WARMUP_READINGS
from haltless.core.predictive import PredictiveOpened, PredictiveUpdated, SeriesDetector
from haltless.core.rules import AlertCleared, Condition, Rule, RuleKind, RuleState, resolved_by_user

PERIOD_US = 10_000_000  # a reading every 10 s
STEP_AT = 1200


def _rule(kind: RuleKind, **overrides: Any) -> Rule:
    return series.rule(kind, **overrides)


def _noise(count: int = 1500, seed: int = 2) -> list[float]:
    return series.noise(count, seed)


def _ids() -> Iterator[str]:
    return (f"alert-{n}" for n in itertools.count(1))


class Run:
    """Feeds a series to one rule in batches of 12 readings; records every transition by reading index."""

    def __init__(self, rule: Rule, detector: SeriesDetector | None = None) -> None:
        self.rule = rule
        self.detector = detector or predictive.new_detector(rule)
        self.state = RuleState()
        self.ids = _ids()
        self.transitions: list[tuple[int, predictive.PredictiveTransition]] = []

    def feed(self, values: Sequence[float], start: int = 0, batch: int = 12, settle: bool = True) -> Run:
        """As the server does: each batch is settled at once when it changes nothing, else seen reading by reading
        (`settle=False`: always reading by reading)."""
        for first in range(0, len(values), batch):
            chunk = values[first : first + batch]
            stamps = [(start + first + i) * PERIOD_US for i in range(len(chunk))]
            settled = predictive.settle(self.rule, self.detector, self.state, stamps, chunk) if settle else None
            if settled is not None:
                self.state = settled
            else:
                self._one_by_one(chunk, start + first)
        return self

    def _one_by_one(self, values: Sequence[float], start: int) -> None:
        for offset, value in enumerate(values):
            index = start + offset
            newest = offset == len(values) - 1
            self.state, transition = predictive.evaluate(
                self.rule,
                self.detector,
                self.state,
                value,
                index * PERIOD_US,
                lambda: next(self.ids),
                unit="celsius",
                newest_of_batch=newest,
            )
            if transition is not None:
                self.transitions.append((index, transition))

    def opened(self) -> list[int]:
        return [index for index, t in self.transitions if isinstance(t, PredictiveOpened)]

    def cleared(self) -> list[int]:
        return [index for index, t in self.transitions if isinstance(t, AlertCleared)]


# ---- anomaly --------------------------------------------------------------------------------------------------


def test_pure_noise_raises_no_anomaly_alert_at_low_or_medium() -> None:
    for sensitivity in ("low", "medium"):
        assert Run(_rule(RuleKind.ANOMALY, sensitivity=sensitivity)).feed(_noise()).transitions == []


def test_high_sensitivity_is_the_chattiest_on_noise_but_still_rare() -> None:
    opened = Run(_rule(RuleKind.ANOMALY, sensitivity="high")).feed(_noise()).opened()
    assert 0 < len(opened) <= 3
    assert all(index >= WARMUP_READINGS for index in opened)


def test_a_step_fires_on_its_first_reading_and_clears_once_the_new_level_is_familiar() -> None:
    values = [v + (5.0 if i >= STEP_AT else 0.0) for i, v in enumerate(_noise())]
    run = Run(_rule(RuleKind.ANOMALY)).feed(values)
    assert run.opened() == [STEP_AT]
    assert len(run.cleared()) == 1 and STEP_AT + 12 <= run.cleared()[0] <= STEP_AT + 80
    opened = run.transitions[0][1]
    assert isinstance(opened, PredictiveOpened)
    assert opened.message.startswith("Bearing temperature is unusual: ")
    assert " °C where about " in opened.message and "was expected (anomaly score" in opened.message
    assert 59.0 < opened.threshold_value < 61.0  # the expected value
    # A low sensitivity fires too, within two readings.
    low = Run(_rule(RuleKind.ANOMALY, sensitivity="low")).feed(values).opened()
    assert low and STEP_AT <= low[0] <= STEP_AT + 2


def test_a_spike_fires_on_the_spike_and_the_episode_ends_after_quiet_readings() -> None:
    values = [v + (10.0 if i == STEP_AT else 0.0) for i, v in enumerate(_noise())]
    run = Run(_rule(RuleKind.ANOMALY)).feed(values)
    assert run.opened() == [STEP_AT]
    assert run.cleared() and run.cleared()[0] >= STEP_AT + predictive.QUIET_READINGS


def test_a_slow_drift_fires_once_it_leaves_the_learned_range() -> None:
    # 0.01 per reading (1/50 of the noise's sigma): the drift has moved about one sigma when it fires.
    values = [v + max(0, i - 1000) * 0.01 for i, v in enumerate(_noise())]
    opened = Run(_rule(RuleKind.ANOMALY)).feed(values).opened()
    assert opened and 1000 < opened[0] < 1120


def test_nothing_fires_during_the_warm_up() -> None:
    values = [v + (40.0 if i == 100 else 0.0) for i, v in enumerate(_noise(WARMUP_READINGS))]
    assert Run(_rule(RuleKind.ANOMALY, sensitivity="high")).feed(values).transitions == []


def test_for_seconds_asks_for_an_episode_that_goes_on() -> None:
    values = [v + (10.0 if i == STEP_AT else 0.0) for i, v in enumerate(_noise())]
    # 30 s = 3 readings: the spike's episode lasts longer, so the alert opens 3 readings after the spike.
    assert Run(_rule(RuleKind.ANOMALY, for_seconds=30.0)).feed(values).opened() == [STEP_AT + 3]
    # 10 min = 60 readings: one spike is over long before.
    assert Run(_rule(RuleKind.ANOMALY, for_seconds=600.0)).feed(values).transitions == []


def test_a_manual_resolve_disarms_until_the_episode_has_ended() -> None:
    values = [v + (10.0 if i in (STEP_AT, STEP_AT + 2) else 0.0) for i, v in enumerate(_noise())]
    run = Run(_rule(RuleKind.ANOMALY)).feed(values[: STEP_AT + 1])
    assert run.opened() == [STEP_AT]
    run.state = resolved_by_user(run.state)
    run.feed(values[STEP_AT + 1 :], start=STEP_AT + 1)
    assert run.opened() == [STEP_AT]  # the second spike belongs to the resolved episode


def test_a_detector_rebuilt_from_history_decides_like_the_one_that_saw_it_all() -> None:
    rule = _rule(RuleKind.ANOMALY)
    values = [v + (5.0 if i >= STEP_AT else 0.0) for i, v in enumerate(_noise())]
    stamps = [i * PERIOD_US for i in range(STEP_AT)]
    rebuilt = predictive.rebuild(rule, stamps, values[:STEP_AT], synced_to=stamps[-1])
    assert predictive.in_sync(rebuilt, RuleState(last_ts=stamps[-1]))
    assert not predictive.in_sync(rebuilt, RuleState(last_ts=stamps[-2]))
    assert not predictive.in_sync(None, RuleState())
    run = Run(rule, rebuilt)
    run.state = RuleState(last_ts=stamps[-1])
    run.feed(values[STEP_AT:], start=STEP_AT)
    assert run.opened() == [STEP_AT]


def test_derived_anomaly_series_scores_without_look_ahead() -> None:
    rule = _rule(RuleKind.ANOMALY)
    values = [v + (5.0 if i >= STEP_AT else 0.0) for i, v in enumerate(_noise())]
    stamps = [i * PERIOD_US for i in range(len(values))]
    whole = predictive.derive_anomaly(rule, stamps, values, 1000)
    # Cutting the future off changes nothing about the past.
    cut = predictive.derive_anomaly(rule, stamps[:1250], values[:1250], 1000)
    assert [s.score for s in whole[:250]] == [s.score for s in cut]
    assert whole[STEP_AT - 1000].anomalous and whole[STEP_AT - 1000].score >= 0.5
    assert whole[STEP_AT - 1000].low <= whole[STEP_AT - 1000].expected <= whole[STEP_AT - 1000].high


def test_settling_batches_decides_exactly_like_reading_by_reading() -> None:
    noise = _noise()
    series = [
        [v + (5.0 if i >= STEP_AT else 0.0) for i, v in enumerate(noise)],
        [v + (10.0 if i in (STEP_AT, STEP_AT + 2) else 0.0) for i, v in enumerate(noise)],
        [v + max(0, i - 1000) * 0.01 for i, v in enumerate(noise)],
    ]
    for values in series:
        for sensitivity in ("low", "medium", "high"):
            rule = _rule(RuleKind.ANOMALY, sensitivity=sensitivity, for_seconds=20.0)
            one = Run(rule).feed(values, settle=False).transitions
            assert Run(rule).feed(values).transitions == one
    drift = _drift()
    rule = _rule(RuleKind.FORECAST)
    assert Run(rule).feed(drift).transitions == Run(rule).feed(drift, settle=False).transitions


def test_settling_random_batches_decides_like_reading_by_reading_also_mid_batch() -> None:
    """Anomalies in the middle of a batch: `settle` applies the readings before it and `evaluate` takes the rest;
    transitions, the rule state and the quiet count must be those of reading by reading."""
    rng = random.Random(9)
    mid_batch = 0
    for run in range(24):
        values = _noise(1600, seed=run)
        for _ in range(rng.randrange(1, 12)):
            at = rng.randrange(WARMUP_READINGS, len(values))
            values[at] += rng.choice((4.0, -6.0, 30.0))
        rule = _rule(
            RuleKind.ANOMALY,
            sensitivity=rng.choice(("low", "medium", "high")),
            for_seconds=rng.choice((0.0, 20.0)),
            hysteresis=rng.choice((0.0, 0.2)),
        )
        one, batched = Run(rule), Run(rule)
        first = 0
        while first < len(values):
            size = rng.randrange(1, 60)
            one.feed(values[first : first + size], start=first, batch=size, settle=False)
            chunk = values[first : first + size]
            stamps = [(first + i) * PERIOD_US for i in range(len(chunk))]
            settled = predictive.settle(rule, batched.detector, batched.state, stamps, chunk)
            if settled is not None:
                batched.state = settled
            else:
                mid_batch += batched.detector.presettled > 0
                batched._one_by_one(chunk, first)
            assert batched.detector.presettled == 0
            assert (batched.transitions, batched.state) == (one.transitions, one.state)
            assert batched.detector.quiet == one.detector.quiet
            first += size
    assert mid_batch > 10


# ---- forecast -------------------------------------------------------------------------------------------------


def _drift(count: int = 800, per_hour: float = 18.0, seed: int = 3) -> list[float]:
    return series.drift(count, per_hour=per_hour, period_us=PERIOD_US, seed=seed)


def test_a_drift_is_announced_within_the_horizon_before_it_crosses() -> None:
    values = _drift()
    crossing = next(i for i, v in enumerate(values) if v > 90.0)
    run = Run(_rule(RuleKind.FORECAST)).feed(values)
    opened = [t for _, t in run.transitions if isinstance(t, PredictiveOpened)]
    assert len(opened) == 1 and not run.cleared()
    alert = opened[0]
    lead_s = (crossing * PERIOD_US - alert.ts) / 1e6
    assert 45 * 60 <= lead_s <= 3600  # within the 1 h horizon, well before the crossing
    assert alert.predicted_crossing_us is not None
    predicted_s = (alert.predicted_crossing_us - alert.ts) / 1e6
    assert abs(predicted_s - lead_s) <= 0.15 * lead_s
    assert alert.message.startswith("Bearing temperature will pass 90 °C in about ")
    assert alert.threshold_value == 90.0
    # The prediction is kept up to date as the crossing comes closer.
    updates = [t for _, t in run.transitions if isinstance(t, PredictiveUpdated)]
    assert updates and all(u.alert_id == alert.alert_id for u in updates)


def test_noise_a_step_and_a_spike_announce_nothing() -> None:
    noise = _noise(1000)
    step = [v + (20.0 if i >= 500 else 0.0) for i, v in enumerate(noise)]
    spike = [v + (40.0 if i == 500 else 0.0) for i, v in enumerate(noise)]
    for values in (noise, step, spike):
        assert Run(_rule(RuleKind.FORECAST)).feed(values).transitions == []


def test_a_forecast_alert_resolves_when_the_trend_turns_back() -> None:
    values = _drift(400)
    rng = random.Random(5)
    values += [values[-1] - 0.05 * i + rng.gauss(0.0, 0.5) for i in range(400)]
    run = Run(_rule(RuleKind.FORECAST)).feed(values)
    assert len(run.opened()) == 1
    assert len(run.cleared()) == 1 and run.cleared()[0] > 400


def test_a_falling_series_is_forecast_against_a_lower_threshold() -> None:
    values = [120.0 - (v - 60.0) for v in _drift()]  # from 60 below 120 falling: 90 from above
    run = Run(_rule(RuleKind.FORECAST, condition=Condition.LT, threshold=90.0)).feed(values)
    assert len(run.opened()) == 1
    opened = run.transitions[0][1]
    assert isinstance(opened, PredictiveOpened) and "will fall below 90 °C" in opened.message


def test_durations_read_like_people_say_them() -> None:
    assert [predictive.format_duration(s) for s in (12, 89.6, 2400, 5400, 3 * 86400)] == [
        "12 s",
        "90 s",
        "40 min",
        "1.5 h",
        "3 d",
    ]


# ---- parameters per kind --------------------------------------------------------------------------------------


def test_each_kind_names_what_is_missing_or_foreign() -> None:
    def error(kind: RuleKind, creating: bool = True, hysteresis: float = 0.0, **fields: Any) -> str | None:
        return predictive.kind_error(kind, fields, creating=creating, hysteresis=hysteresis)

    assert error(RuleKind.THRESHOLD, condition=">", threshold=1.0) is None
    assert error(RuleKind.THRESHOLD, condition=">") == "threshold: required for threshold rules"
    assert (error(RuleKind.THRESHOLD, condition=">", threshold=1.0, sensitivity="low") or "").startswith(
        "sensitivity: not a parameter of threshold rules"
    )
    assert error(RuleKind.ANOMALY) is None
    assert (error(RuleKind.ANOMALY, threshold=5.0) or "").startswith("threshold: not a parameter of anomaly rules")
    assert (error(RuleKind.ANOMALY, hysteresis=0.5) or "").startswith("hysteresis: for anomaly rules")
    assert error(RuleKind.FORECAST, condition=">", threshold=1.0) == "horizon_seconds: required for forecast rules"
    assert error(RuleKind.FORECAST, creating=False, horizon_seconds=None) == "horizon_seconds: may not be null"
    assert error(RuleKind.FORECAST, creating=False, window_readings=64) is None
