"""Predictive rules: the `anomaly` and `forecast` rule kinds, decided reading by reading (docs/alerts.md).

One `SeriesDetector` per (rule, machine) holds the detector of the rule's kind (core/anomaly.py or
core/forecast.py) fed with that machine's readings of the rule's metric, in measurement order. `evaluate` takes
one reading, the detector and the rule's `RuleState` and returns the next state and what happened to the alert,
like `core.rules.evaluate` does for threshold rules; it mutates only the detector it is given.

- `anomaly`: an *episode* starts with a reading the detector calls anomalous (its score reached the
  sensitivity's threshold, outside the warm-up and the rest period after a previous anomaly) and lasts until
  `QUIET_READINGS` readings in a row score below threshold − hysteresis. A reading *breaches* while an episode
  lasts (so `for_seconds` asks for unusual behaviour that goes on, not one spike); the episode's end *clears*.
- `forecast`: the trend is refitted once per batch per series (at the series' newest reading of the batch; with
  nothing going on, once `REFIT_READINGS` readings have come). It
  *breaches* when a crossing is predicted within the horizon (and, once breaching, while the trend is past the
  threshold). It *clears* when no crossing is predicted within `CLEAR_HORIZON_FACTOR` × the horizon and the trend's
  level is back on the safe side of the threshold by the hysteresis. While the alert is open, a predicted crossing
  that moves by more than `UPDATE_FRACTION` of the time left (and at least `UPDATE_MIN_SECONDS`) updates it.

`for_seconds`, the one-open-alert rule and disarming after a manual resolve work as for threshold rules.

After a restart, or when another process evaluated the series' last readings, the detector is rebuilt from
stored history (`rebuild`): the last `history_needed(rule)` readings up to the rule state's newest evaluated one.
`in_sync` says whether a detector saw exactly the readings the rule state reflects.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from haltless.core.anomaly import EVIDENCE_READINGS, REBUILD_READINGS, AnomalyDetector, Scored, Sensitivity
from haltless.core.forecast import WINDOW_READINGS, Direction, Forecast, TrendForecaster
from haltless.core.rules import AlertCleared, Condition, Rule, RuleKind, RuleState

# An anomaly episode ends after this many readings in a row below threshold − hysteresis (the evidence window).
QUIET_READINGS = EVIDENCE_READINGS
# With no forecast alert going on, the trend is refitted once this many readings have come (a crossing is announced
# at most this many readings late; while an alert is open or a crossing is predicted, every batch is refitted).
REFIT_READINGS = 8
# A forecast alert clears only when no crossing is predicted within this many horizons (hysteresis in time).
CLEAR_HORIZON_FACTOR = 1.5
# An open forecast alert is updated when its predicted crossing moves by more than this share of the time left…
UPDATE_FRACTION = 0.2
# … and by at least this many seconds.
UPDATE_MIN_SECONDS = 5.0
_SCORE_THRESHOLDS: dict[str, float] = {s.value: s.threshold for s in Sensitivity}
# Units shown with their symbol in alert messages.
_UNIT_SYMBOLS = {"celsius": " °C", "fahrenheit": " °F", "kelvin": " K", "percent": " %"}


@dataclass(slots=True)
class SeriesDetector:
    """The detector state of one (rule, machine)."""

    anomaly: AnomalyDetector | None
    forecaster: TrendForecaster | None
    # The rule state's `last_ts` this detector is in step with: it has seen the readings up to there.
    synced_to: int | None = None
    # Anomaly: readings in a row since the score was last at or above threshold − hysteresis.
    quiet: int = QUIET_READINGS
    # What the open forecast alert announced (predicted crossing time), to decide whether to update it.
    announced_us: int | None = None
    # Anomaly: readings of the current batch scored at once by `settle`, taken in order by `evaluate`, after the
    # `presettled` readings before them, which `settle` already applied (evaluate only passes over them).
    prescored: deque[Scored] = field(default_factory=deque)
    presettled: int = 0
    # Forecast: the newest reading `settle` already put in the window (`evaluate` does not add it again), and how
    # many readings it added since the trend was last fitted.
    fed_until: int | None = None
    unfitted: int = 0


@dataclass(frozen=True, slots=True)
class PredictiveOpened:
    """A predictive alert opens."""

    alert_id: str
    value: float
    ts: int
    message: str
    threshold_value: float  # anomaly: the expected value; forecast: the rule's threshold
    predicted_crossing_us: int | None  # forecast: when the trend crosses the threshold


@dataclass(frozen=True, slots=True)
class PredictiveUpdated:
    """An open forecast alert's prediction moved."""

    alert_id: str
    ts: int
    message: str
    predicted_crossing_us: int | None


PredictiveTransition = PredictiveOpened | PredictiveUpdated | AlertCleared


class Outcome(NamedTuple):
    state: RuleState
    transition: PredictiveTransition | None


# The fields that depend on a rule's kind: which it must have, and which it may have.
KIND_FIELDS = ("condition", "threshold", "sensitivity", "horizon_seconds", "window_readings")
_REQUIRED: dict[RuleKind, tuple[str, ...]] = {
    RuleKind.THRESHOLD: ("condition", "threshold"),
    RuleKind.ANOMALY: (),
    RuleKind.FORECAST: ("condition", "threshold", "horizon_seconds"),
}
_ALLOWED: dict[RuleKind, frozenset[str]] = {
    RuleKind.THRESHOLD: frozenset({"condition", "threshold"}),
    RuleKind.ANOMALY: frozenset({"sensitivity"}),
    RuleKind.FORECAST: frozenset({"condition", "threshold", "horizon_seconds", "window_readings"}),
}
_HINTS = {
    RuleKind.ANOMALY: "an anomaly rule learns what is usual; choose a sensitivity instead",
    RuleKind.THRESHOLD: "use kind anomaly or forecast for it",
    RuleKind.FORECAST: "a forecast rule takes condition, threshold, horizon_seconds and window_readings",
}
# Anomaly rules: hysteresis is a margin on the anomaly score (0..1), below the lowest sensitivity's threshold.
MAX_ANOMALY_HYSTERESIS = 0.25


def kind_error(kind: RuleKind, fields: Mapping[str, object], *, creating: bool, hysteresis: float) -> str | None:
    """What is wrong with the kind-specific `fields` a client sent (None: nothing). Creating, a required field
    must be there and not null; editing, a field that is there may not be null when the kind requires it."""
    for name in KIND_FIELDS:
        if name not in fields and not creating:
            continue
        value = fields.get(name)
        if value is None and name in _REQUIRED[kind]:
            return f"{name}: required for {kind.value} rules" if creating else f"{name}: may not be null"
        if value is not None and name not in _ALLOWED[kind]:
            return f"{name}: not a parameter of {kind.value} rules ({_HINTS[kind]})"
    if kind is RuleKind.ANOMALY and not 0.0 <= hysteresis < MAX_ANOMALY_HYSTERESIS:
        return (
            f"hysteresis: for anomaly rules a margin on the anomaly score, 0 <= hysteresis < {MAX_ANOMALY_HYSTERESIS}"
        )
    return None


def is_predictive(rule: Rule) -> bool:
    return rule.kind is not RuleKind.THRESHOLD


def direction_of(condition: Condition) -> Direction:
    return Direction.ABOVE if condition in (Condition.GT, Condition.GE) else Direction.BELOW


def new_detector(rule: Rule) -> SeriesDetector:
    """A detector that has seen nothing."""
    if rule.kind is RuleKind.ANOMALY:
        return SeriesDetector(AnomalyDetector(Sensitivity(rule.sensitivity or Sensitivity.MEDIUM)), None)
    if rule.kind is RuleKind.FORECAST:
        return SeriesDetector(None, new_forecaster(rule))
    raise ValueError(f"{rule.kind} rules have no detector")


def new_forecaster(rule: Rule) -> TrendForecaster:
    return TrendForecaster(
        rule.threshold,
        direction_of(rule.condition),
        rule.horizon_seconds or 3600.0,
        window_readings=rule.window_readings or WINDOW_READINGS,
    )


def history_needed(rule: Rule) -> int:
    """How many stored readings before the next one `rebuild` needs."""
    if rule.kind is RuleKind.ANOMALY:
        return REBUILD_READINGS
    return rule.window_readings or WINDOW_READINGS


def rebuild(rule: Rule, timestamps_us: Sequence[int], values: Sequence[float], synced_to: int | None) -> SeriesDetector:
    """A detector that has seen these stored readings (oldest first), in step with rule state `synced_to`."""
    if rule.kind is RuleKind.ANOMALY:
        sensitivity = Sensitivity(rule.sensitivity or Sensitivity.MEDIUM)
        return SeriesDetector(AnomalyDetector.rebuild(timestamps_us, values, sensitivity), None, synced_to)
    detector = SeriesDetector(None, new_forecaster(rule), synced_to)
    assert detector.forecaster is not None
    detector.forecaster.add(timestamps_us, values)
    return detector


def settle(
    rule: Rule, detector: SeriesDetector, state: RuleState, timestamps_us: Sequence[int], values: Sequence[float]
) -> RuleState | None:
    """Feed one batch's readings of the series (in time order) to the detector at once, which costs a fraction of
    feeding them one by one. Returns the rule state after them when they change nothing (no episode or breach going
    on or starting, no alert to open, clear or update): the usual batch. Else None: `evaluate` must then see them
    one by one, and takes what the detector already computed for them. Readings `evaluate` would skip (older than
    the newest one evaluated) are left out."""
    start = 0
    if state.last_ts is not None:
        while start < len(timestamps_us) and timestamps_us[start] < state.last_ts:
            start += 1
    if start == len(timestamps_us):
        return state
    stamps, readings = (timestamps_us[start:], values[start:]) if start else (timestamps_us, values)
    idle = state.breach_since is None and state.open_alert_id is None and state.armed
    anomaly = detector.anomaly
    if anomaly is not None:
        if not idle:
            detector.prescored = deque(anomaly.score_batch(stamps, readings))
            return None
        # Hot path (bench M4 with an anomaly rule on every series): with nothing going on, the readings before the
        # first anomalous one only move the quiet count (as `evaluate` would, one by one), and the detector need
        # not make anything for the many that score 0.
        loud, anomalous_on = anomaly.scan_batch(stamps, readings)
        passed = len(stamps) - len(anomalous_on)
        if loud:
            bar = _SCORE_THRESHOLDS[rule.sensitivity or Sensitivity.MEDIUM] - rule.hysteresis
            last_loud = max((index for index, score in loud if score >= bar), default=None)
            detector.quiet = detector.quiet + passed if last_loud is None else passed - 1 - last_loud
        else:
            detector.quiet += passed
        if anomalous_on:
            detector.presettled = passed
            detector.prescored = deque(anomalous_on)
            return None
        detector.synced_to = stamps[-1]
        return RuleState(None, stamps[-1], True, None)
    assert detector.forecaster is not None
    detector.forecaster.add(stamps, readings)
    detector.fed_until = stamps[-1]
    if idle:
        # A fit costs ~75 µs (window 128): with no alert at stake it is redone every REFIT_READINGS readings.
        detector.unfitted += len(stamps)
        if detector.unfitted < REFIT_READINGS or not detector.forecaster.forecast().will_cross:
            if detector.unfitted >= REFIT_READINGS:
                detector.unfitted = 0
            detector.synced_to = stamps[-1]
            return RuleState(None, stamps[-1], True, None)
    detector.unfitted = 0
    return None


def in_sync(detector: SeriesDetector | None, state: RuleState) -> bool:
    """True when the detector has seen exactly the readings `state` reflects (else rebuild it)."""
    return detector is not None and detector.synced_to == state.last_ts


def evaluate(
    rule: Rule,
    detector: SeriesDetector,
    state: RuleState,
    value: float,
    ts: int,
    new_alert_id: Callable[[], str],
    *,
    unit: str = "",
    newest_of_batch: bool = True,
) -> Outcome:
    """Apply one reading of the rule's metric on one machine. `newest_of_batch`: the series' newest reading in
    this batch (a forecast is refitted only there)."""
    if state.last_ts is not None and ts < state.last_ts:
        return Outcome(state, None)
    detector.synced_to = ts
    if detector.anomaly is not None:
        if detector.presettled:
            # `settle` applied this reading already: nothing was going on and it was not anomalous.
            detector.presettled -= 1
            return Outcome(RuleState(None, ts, True, None), None)
        ready = detector.prescored
        if ready and ready[0].timestamp_us == ts and ready[0].value == value:
            scored = ready.popleft()
        else:
            ready.clear()
            scored = detector.anomaly.score(ts, value)
        if not scored.anomalous and state.breach_since is None and state.open_alert_id is None and state.armed:
            # The usual reading (hot path): no episode going on and none starting; only the quiet count moves.
            score = scored.score
            if score == 0.0 or score < _SCORE_THRESHOLDS[rule.sensitivity or Sensitivity.MEDIUM] - rule.hysteresis:
                detector.quiet += 1
            else:
                detector.quiet = 0
            return Outcome(RuleState(None, ts, True, None), None)
        return _evaluate_anomaly(rule, detector, scored, state, new_alert_id, unit)
    assert detector.forecaster is not None
    if detector.fed_until is None or ts > detector.fed_until:
        detector.forecaster.add((ts,), (value,))
    if not newest_of_batch:
        return Outcome(_advanced(state, ts), None)
    return _evaluate_forecast(rule, detector, detector.forecaster.forecast(), state, value, ts, new_alert_id, unit)


def _advanced(state: RuleState, ts: int) -> RuleState:
    return RuleState(state.breach_since, ts, state.armed, state.open_alert_id)


def _step(
    rule: Rule, state: RuleState, ts: int, breaching: bool, clearing: bool, value: float
) -> tuple[RuleState, bool, AlertCleared | None]:
    """The threshold lifecycle on (breaching, clearing): the next state, whether an alert is due to open, and
    the clearing of the open one."""
    if state.open_alert_id is not None:
        if clearing:
            return RuleState(None, ts, True, None), False, AlertCleared(state.open_alert_id, value, ts)
        return _advanced(state, ts), False, None
    armed = state.armed or clearing
    if not breaching or not armed:
        return RuleState(None, ts, armed, None), False, None
    since = state.breach_since if state.breach_since is not None else ts
    return RuleState(since, ts, True, None), ts - since >= rule.for_seconds * 1_000_000, None


def _evaluate_anomaly(
    rule: Rule,
    detector: SeriesDetector,
    scored: Scored,
    state: RuleState,
    new_alert_id: Callable[[], str],
    unit: str,
) -> Outcome:
    threshold = _SCORE_THRESHOLDS[rule.sensitivity or Sensitivity.MEDIUM]
    if scored.score == 0.0 or scored.score < threshold - rule.hysteresis:
        detector.quiet += 1
    else:
        detector.quiet = 0
    going_on = state.breach_since is not None or state.open_alert_id is not None
    clearing = detector.quiet >= QUIET_READINGS
    breaching = scored.anomalous or (going_on and not clearing)
    following, opens, cleared = _step(rule, state, scored.timestamp_us, breaching, clearing, scored.value)
    if cleared is not None:
        return Outcome(following, cleared)
    if not opens:
        return Outcome(following, None)
    alert_id = new_alert_id()
    message = rule.render_message(scored.value) if rule.message else anomaly_message(rule, scored, unit)
    opened = PredictiveOpened(alert_id, scored.value, scored.timestamp_us, message, scored.expected, None)
    return Outcome(RuleState(following.breach_since, following.last_ts, True, alert_id), opened)


def _evaluate_forecast(
    rule: Rule,
    detector: SeriesDetector,
    forecast: Forecast,
    state: RuleState,
    value: float,
    ts: int,
    new_alert_id: Callable[[], str],
    unit: str,
) -> Outcome:
    if not forecast.ready:
        return Outcome(_advanced(state, ts), None)
    horizon_us = (rule.horizon_seconds or 0.0) * 1_000_000
    going_on = state.breach_since is not None or state.open_alert_id is not None
    # The trend being past the threshold keeps a forecast going but does not start one: a value that jumps past
    # it was not predicted (the threshold rule is there for that).
    breaching = forecast.will_cross or (going_on and forecast.crossed)
    near = forecast.crossing_us is not None and forecast.crossing_us - ts <= CLEAR_HORIZON_FACTOR * horizon_us
    if direction_of(rule.condition) is Direction.ABOVE:
        safe = forecast.level < rule.threshold - rule.hysteresis
    else:
        safe = forecast.level > rule.threshold + rule.hysteresis
    clearing = not breaching and not near and safe
    following, opens, cleared = _step(rule, state, ts, breaching, clearing, value)
    if cleared is not None:
        detector.announced_us = None
        return Outcome(following, cleared)
    if opens:
        alert_id = new_alert_id()
        detector.announced_us = forecast.crossing_us
        message = rule.render_message(value) if rule.message else forecast_message(rule, forecast, unit)
        opened = PredictiveOpened(alert_id, value, ts, message, rule.threshold, forecast.crossing_us)
        return Outcome(RuleState(following.breach_since, following.last_ts, True, alert_id), opened)
    if following.open_alert_id is not None and forecast.crossing_us is not None and _moved(detector, forecast, ts):
        detector.announced_us = forecast.crossing_us
        message = rule.render_message(value) if rule.message else forecast_message(rule, forecast, unit)
        return Outcome(following, PredictiveUpdated(following.open_alert_id, ts, message, forecast.crossing_us))
    return Outcome(following, None)


def _moved(detector: SeriesDetector, forecast: Forecast, ts: int) -> bool:
    """Whether the predicted crossing moved enough since the alert last announced one to tell people."""
    assert forecast.crossing_us is not None
    if detector.announced_us is None:
        return True
    left = max(detector.announced_us - ts, 0)
    shift = abs(forecast.crossing_us - detector.announced_us)
    return shift > max(UPDATE_FRACTION * left, UPDATE_MIN_SECONDS * 1_000_000)


# ---- messages -----------------------------------------------------------------------------------------------


def _label(rule: Rule) -> str:
    return rule.metric_name.replace("_", " ").capitalize()


def _with_unit(value: float, unit: str) -> str:
    return f"{value:.4g}{_UNIT_SYMBOLS.get(unit, ' ' + unit if unit else '')}"


def format_duration(seconds: float) -> str:
    """'45 s', '40 min', '3.5 h', '2 d': how people say how long until something happens."""
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{round(seconds / 86400)} d"


def anomaly_message(rule: Rule, scored: Scored, unit: str = "") -> str:
    """'Temperature is unusual: 97.2 °C where about 62 °C (61–63) was expected (anomaly score 0.75).'"""
    return (
        f"{_label(rule)} is unusual: {_with_unit(scored.value, unit)} where about {_with_unit(scored.expected, unit)}"
        f" ({scored.low:.4g}–{scored.high:.4g}) was expected (anomaly score {scored.score:.2f})"
    )


def forecast_message(rule: Rule, forecast: Forecast, unit: str = "") -> str:
    """'Temperature will pass 90 °C in about 40 min (32–51 min)', or that its trend already has."""
    verb = "pass" if direction_of(rule.condition) is Direction.ABOVE else "fall below"
    target = _with_unit(rule.threshold, unit)
    if forecast.crossed or forecast.crossing_us is None:
        return f"{_label(rule)} trend is past {target} (at {_with_unit(forecast.level, unit)})"
    now = forecast.as_of_us
    text = f"{_label(rule)} will {verb} {target} in about {format_duration((forecast.crossing_us - now) / 1e6)}"
    if forecast.earliest_us is not None and forecast.latest_us is not None:
        earliest = format_duration((forecast.earliest_us - now) / 1e6)
        latest = format_duration((forecast.latest_us - now) / 1e6)
        if earliest != latest:
            text += f" ({earliest} – {latest})"
    return text


# ---- derived series for the history API ---------------------------------------------------------------------


def derive_anomaly(rule: Rule, timestamps_us: Sequence[int], values: Sequence[float], first: int) -> list[Scored]:
    """The detector's view of readings `first`.. (each scored from the readings before it only); the readings
    before `first` are context it learns from, as the server's detector did (up to REBUILD_READINGS)."""
    start = max(0, first - REBUILD_READINGS)
    detector = AnomalyDetector.rebuild(
        timestamps_us[start:first], values[start:first], Sensitivity(rule.sensitivity or Sensitivity.MEDIUM)
    )
    return detector.score_batch(timestamps_us[first:], values[first:])


def derive_forecast(
    rule: Rule, timestamps_us: Sequence[int], values: Sequence[float], first: int, every: int = 1
) -> list[Forecast]:
    """The forecast as of readings `first`.. (every `every`-th one, and the last), each from readings up to it."""
    forecaster = new_forecaster(rule)
    start = max(0, first - forecaster.window_readings)
    forecaster.add(timestamps_us[start:first], values[start:first])
    out: list[Forecast] = []
    last = len(values) - 1
    for index in range(first, len(values)):
        forecaster.add((timestamps_us[index],), (values[index],))
        if (index - first) % every == 0 or index == last:
            out.append(forecaster.forecast())
    return out


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
