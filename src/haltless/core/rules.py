"""The alert rule engine: one reading and the (rule, machine) state in, the next state and a transition out.

Semantics (docs/alerts.md):
- A reading *breaches* when `value <condition> threshold` holds.
- It *clears* when the value is back past the threshold by the hysteresis: for `>`/`>=` when
  `value <condition> (threshold - hysteresis)` no longer holds, for `<`/`<=` when
  `value <condition> (threshold + hysteresis)` no longer holds. Between the two nothing changes.
- An alert opens when the breach has lasted `for_seconds` of measurement time: the first breaching
  reading starts the clock, a reading that does not breach stops it, and the alert opens on the first
  breaching reading at or after start + for_seconds (`for_seconds = 0` opens on the first breach).
- While an alert is open further breaches emit nothing; a clearing reading resolves it.
- After a user resolves an alert while the breach goes on, the rule is *disarmed*: it opens nothing
  until the value has cleared once.
- Readings older than the newest one already evaluated for the (rule, machine) are not evaluated: the
  state already reflects newer measurements.
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


class Condition(StrEnum):
    """How a value is compared with the threshold."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    # No reading of the metric for `for_seconds` (core/planners/no_data.py); no threshold.
    NO_DATA = "no_data"


# The conditions that compare a value with a threshold (`evaluate`); `no_data` watches arrival instead.
COMPARISONS = (Condition.GT, Condition.GE, Condition.LT, Condition.LE)


class RuleKind(StrEnum):
    """What a rule watches (docs/alerts.md); it is fixed when the rule is created."""

    THRESHOLD = "threshold"  # the value against a fixed threshold
    ANOMALY = "anomaly"  # how unusual the value is for this series (core/anomaly.py), against a sensitivity
    FORECAST = "forecast"  # whether the series' trend will cross the threshold within a horizon (core/forecast.py)


class Severity(StrEnum):
    """How bad an alert is; `info` alerts never change a machine's status."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


_COMPARE: dict[Condition, Callable[[float, float], bool]] = {
    Condition.GT: operator.gt,
    Condition.GE: operator.ge,
    Condition.LT: operator.lt,
    Condition.LE: operator.le,
}

MESSAGE_FIELDS = frozenset({"metric_name", "value", "threshold", "condition", "rule_name", "severity"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# Stored alert messages are VARCHAR(500); a template within that limit can render longer
# (PostgreSQL refuses the overflow where SQLite would store it), so rendering cuts it off.
MAX_ALERT_MESSAGE_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Rule:
    """An alert rule as the engine sees it."""

    id: str
    tenant_id: str
    name: str
    metric_name: str
    machine_id: str | None  # None: every machine of the tenant
    condition: Condition
    threshold: float
    severity: Severity
    for_seconds: float
    hysteresis: float
    enabled: bool
    message: str | None
    # Predictive kinds (core/predictive.py); a threshold rule leaves them at their defaults.
    kind: RuleKind = RuleKind.THRESHOLD
    sensitivity: str | None = None  # anomaly: low, medium or high (core.anomaly.Sensitivity)
    horizon_seconds: float | None = None  # forecast: how far ahead a crossing is announced
    window_readings: int | None = None  # forecast: readings the trend is fitted to (None: the default)
    # Flap detection (core/flapping.py): more than `flap_threshold` alerts opened within `flap_window_seconds`
    # make the next one `flapping`; None: never.
    flap_threshold: int | None = None
    flap_window_seconds: float = 600.0

    @property
    def compares_values(self) -> bool:
        """A threshold rule that compares each value with its threshold (no_data aside): it skips late readings
        by its series' clock, and an idle state of it remembers nothing worth keeping."""
        return self.kind is RuleKind.THRESHOLD and self.condition is not Condition.NO_DATA

    def breaches(self, value: float) -> bool:
        return _COMPARE[self.condition](value, self.threshold)

    def clears(self, value: float) -> bool:
        """True when the value is back past the threshold by at least the hysteresis."""
        if self.condition in (Condition.GT, Condition.GE):
            return not _COMPARE[self.condition](value, self.threshold - self.hysteresis)
        return not _COMPARE[self.condition](value, self.threshold + self.hysteresis)

    def applies_to(self, machine_id: str) -> bool:
        return self.enabled and (self.machine_id is None or self.machine_id == machine_id)

    def render_message(self, value: float) -> str:
        """The alert text: the rule's template with its placeholders filled, or a sensible default."""
        if not self.message:
            label = self.metric_name.replace("_", " ").capitalize()
            if self.condition is Condition.NO_DATA:
                return f"{label}: no reading for {self.for_seconds:g} s"
            verb = "exceeded" if self.condition in (Condition.GT, Condition.GE) else "fell below"
            return f"{label} {verb} threshold"
        fields = {
            "metric_name": self.metric_name,
            "value": f"{value:g}",
            "threshold": f"{self.threshold:g}",
            "condition": self.condition.value,
            "rule_name": self.name,
            "severity": self.severity.value,
        }
        text = _PLACEHOLDER.sub(lambda match: fields.get(match.group(1), match.group(0)), self.message)
        if len(text) > MAX_ALERT_MESSAGE_LENGTH:
            text = text[: MAX_ALERT_MESSAGE_LENGTH - 1] + "…"
        return text


def message_template_error(template: str) -> str | None:
    """Why a message template is unusable, or None when it is fine."""
    unknown = sorted({name for name in _PLACEHOLDER.findall(template) if name not in MESSAGE_FIELDS})
    if unknown:
        allowed = ", ".join("{" + name + "}" for name in sorted(MESSAGE_FIELDS))
        return f"unknown placeholder(s) {', '.join(unknown)}; allowed: {allowed}"
    return None


@dataclass(frozen=True, slots=True)
class RuleState:
    """What the engine remembers per (rule, machine)."""

    breach_since: int | None = None  # measurement time (µs) the current breach started
    # Predictive and no_data rules: the newest measurement time evaluated. Threshold rules keep none: a late
    # reading is one older than its series' newest (`Fleet.series_ts`), the same for every rule of the series.
    last_ts: int | None = None
    armed: bool = True
    open_alert_id: str | None = None
    # Flap detection (core/flapping.py): when the rule's recent alerts opened (µs, measurement time, the newest
    # `flap_threshold` + 1), whether the open alert is flapping, and since when the value has stayed clear.
    flap_fires: tuple[int, ...] = ()
    flapping: bool = False
    calm_since: int | None = None
    # `no_data` rules (core/planners/no_data.py): arrival time (µs) of the newest reading of the metric.
    seen_at: int | None = None


# A rule with nothing pending on a machine: what the fleet assumes for a (rule, machine) it keeps no state of.
IDLE = RuleState()


@dataclass(frozen=True, slots=True)
class AlertOpened:
    alert_id: str
    value: float
    ts: int


@dataclass(frozen=True, slots=True)
class AlertCleared:
    alert_id: str
    value: float
    ts: int


Transition = AlertOpened | AlertCleared


def evaluate(
    rule: Rule, state: RuleState, value: float, ts: int, new_alert_id: Callable[[], str]
) -> tuple[RuleState, Transition | None]:
    """Apply one reading of the rule's metric on one machine, in measurement order.

    A late reading (older than its series' newest before the batch) must not reach it: the caller skips those,
    once per series rather than once per rule (core/planners/readings.py)."""
    breaching = rule.breaches(value)
    clearing = rule.clears(value)

    if state.open_alert_id is not None:
        if clearing:
            cleared = AlertCleared(state.open_alert_id, value, ts)
            return RuleState(breach_since=None, armed=True, open_alert_id=None), cleared
        return state, None

    armed = state.armed or clearing
    if not breaching or not armed:
        return RuleState(breach_since=None, armed=armed, open_alert_id=None), None
    since = state.breach_since if state.breach_since is not None else ts
    if ts - since >= rule.for_seconds * 1_000_000:
        opened = AlertOpened(new_alert_id(), value, ts)
        return RuleState(breach_since=since, armed=True, open_alert_id=opened.alert_id), opened
    return RuleState(breach_since=since, armed=True, open_alert_id=None), None


def evaluate_quiet(rule: Rule, state: RuleState, lowest: float, highest: float) -> RuleState | None:
    """The state after several readings at once, when they cannot change anything; None when they might.

    They cannot when nothing is pending (no open alert, no breach in progress, armed) and no value in
    [lowest, highest] breaches: then `evaluate`, reading by reading, would change nothing but the flap
    detector's calm (core/flapping.py). Every condition is monotone, so the two extremes stand for all the
    values. The ingest hot path (bench M4) uses this to skip replaying a quiet batch one reading at a time;
    None means: call `evaluate` per reading.

    Hot path (bench planning, 1,000 rules on every machine): the usual answer is `state` itself, so a quiet
    batch makes no object and writes no state for an idle rule (it used to make one per (rule, machine) only to
    advance a `last_ts` that the series now keeps once, `Fleet.series_ts`).
    """
    if state.open_alert_id is not None or state.breach_since is not None or not state.armed:
        return None
    if rule.kind is not RuleKind.THRESHOLD:
        return None  # a predictive rule's detector must see every reading (core/predictive.py)
    compare, threshold = _COMPARE[rule.condition], rule.threshold
    if compare(highest, threshold) or compare(lowest, threshold):
        return None
    if not state.flapping and state.calm_since is None:
        return state
    return RuleState(flap_fires=state.flap_fires) if state.flap_fires else IDLE


class SeriesRules:
    """The rules one (machine, metric) series meets, arranged so that a batch finds the threshold rules its values
    can move without visiting the others.

    A threshold rule with nothing pending (no state kept, `IDLE`) changes only when a value breaches it
    (`evaluate_quiet`); grouped by condition and sorted by threshold, the breached ones of a batch are a slice
    of each group, and a quiet batch costs one comparison per group. Hot path (bench planning, 1,000 rules on
    every machine): visiting each (rule, machine) of each series made planning ~10x M4's three rules.
    """

    __slots__ = ("_ge", "_gt", "_le", "_lt", "others", "position", "rules", "threshold")

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self.position = {rule.id: index for index, rule in enumerate(self.rules)}
        # Threshold rules (no_data aside), by id; the rest (no_data, anomaly, forecast) see every batch.
        self.threshold = {r.id: r for r in self.rules if r.compares_values}
        self.others = tuple(r for r in self.rules if r.id not in self.threshold)
        self._gt = self._group(Condition.GT)
        self._ge = self._group(Condition.GE)
        self._lt = self._group(Condition.LT)
        self._le = self._group(Condition.LE)

    def _group(self, condition: Condition) -> tuple[list[float], list[Rule]]:
        members = sorted((r for r in self.threshold.values() if r.condition is condition), key=lambda r: r.threshold)
        return [r.threshold for r in members], members

    def breached(self, lowest: float, highest: float) -> list[Rule]:
        """The threshold rules some value in [lowest, highest] breaches (in no particular order)."""
        found: list[Rule] = []
        thresholds, rules = self._gt
        if thresholds and thresholds[0] < highest:
            found += rules[: bisect_left(thresholds, highest)]
        thresholds, rules = self._ge
        if thresholds and thresholds[0] <= highest:
            found += rules[: bisect_right(thresholds, highest)]
        thresholds, rules = self._lt
        if thresholds and thresholds[-1] > lowest:
            found += rules[bisect_right(thresholds, lowest) :]
        thresholds, rules = self._le
        if thresholds and thresholds[-1] >= lowest:
            found += rules[bisect_left(thresholds, lowest) :]
        return found


def resolved_by_user(state: RuleState) -> RuleState:
    """The state after a user resolved the open alert: disarmed until the value clears once (the flap detector
    keeps its memory of recent alerts)."""
    return RuleState(
        breach_since=None, last_ts=state.last_ts, armed=False, open_alert_id=None, flap_fires=state.flap_fires
    )
