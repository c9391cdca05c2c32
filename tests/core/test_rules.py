"""The rule engine against a simple reference model, on random reading sequences (hypothesis)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from haltless.core.rules import (
    COMPARISONS,
    IDLE,
    AlertCleared,
    AlertOpened,
    Condition,
    Rule,
    RuleState,
    SeriesRules,
    Severity,
    evaluate,
    evaluate_quiet,
    message_template_error,
    resolved_by_user,
)


def make_rule(
    condition: Condition, threshold: float, for_seconds: float, hysteresis: float, message: str | None = None
) -> Rule:
    return Rule(
        id="r",
        tenant_id="t",
        name="Spindle too hot",
        metric_name="temperature",
        machine_id=None,
        condition=condition,
        threshold=threshold,
        severity=Severity.CRITICAL,
        for_seconds=for_seconds,
        hysteresis=hysteresis,
        enabled=True,
        message=message,
    )


def run_engine(rule: Rule, readings: list[tuple[float, int]]) -> list[tuple[str, int]]:
    """(kind, index) of every transition the engine emits."""
    ids = (f"a{i}" for i in itertools.count())
    state = RuleState()
    out: list[tuple[str, int]] = []
    for index, (value, ts) in enumerate(readings):
        state, transition = evaluate(rule, state, value, ts, lambda: next(ids))
        if isinstance(transition, AlertOpened):
            out.append(("open", index))
        elif isinstance(transition, AlertCleared):
            out.append(("clear", index))
    return out


def reference(rule: Rule, readings: list[tuple[float, int]]) -> list[tuple[str, int]]:
    """Stated the other way round: an alert opens at a breaching reading whose unbroken run of breaching
    readings (scanning backwards) spans at least for_seconds; it clears at the first reading past the
    threshold by the hysteresis."""
    compare: Callable[[float, float], bool] = {
        Condition.GT: operator.gt,
        Condition.GE: operator.ge,
        Condition.LT: operator.lt,
        Condition.LE: operator.le,
    }[rule.condition]
    towards_safe = -rule.hysteresis if rule.condition in (Condition.GT, Condition.GE) else rule.hysteresis
    out: list[tuple[str, int]] = []
    is_open = False
    for i, (value, ts) in enumerate(readings):
        if is_open:
            if not compare(value, rule.threshold + towards_safe):
                out.append(("clear", i))
                is_open = False
            continue
        if not compare(value, rule.threshold):
            continue
        start = i
        while start > 0 and compare(readings[start - 1][0], rule.threshold) and not (out and out[-1][1] == start - 1):
            start -= 1
        if ts - readings[start][1] >= rule.for_seconds * 1_000_000:
            out.append(("open", i))
            is_open = True
    return out


values = st.floats(min_value=0, max_value=100, allow_nan=False).map(lambda v: round(v, 1))
steps = st.integers(min_value=0, max_value=5_000_000)  # 0 to 5 s between readings, equal stamps allowed


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Rule, list[tuple[float, int]]]:
    rule = make_rule(
        draw(st.sampled_from(COMPARISONS)),
        draw(values),
        draw(st.sampled_from([0.0, 1.0, 2.5, 7.0])),
        draw(st.sampled_from([0.0, 0.5, 5.0, 20.0])),
    )
    gaps = draw(st.lists(steps, min_size=1, max_size=60))
    stamps = list(itertools.accumulate(gaps))
    readings = [(draw(values), ts) for ts in stamps]
    return rule, readings


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_engine_matches_reference_model(scenario: tuple[Rule, list[tuple[float, int]]]) -> None:
    rule, readings = scenario
    assert run_engine(rule, readings) == reference(rule, readings)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_alerts_alternate_and_respect_hysteresis_and_duration(scenario: tuple[Rule, list[tuple[float, int]]]) -> None:
    rule, readings = scenario
    transitions = run_engine(rule, readings)
    kinds = [kind for kind, _ in transitions]
    # Never two opens in a row: one open alert per (rule, machine), no duplicates.
    assert kinds == ["open", "clear"] * (len(kinds) // 2) + (["open"] if len(kinds) % 2 else [])
    for kind, index in transitions:
        value, ts = readings[index]
        if kind == "open":
            assert rule.breaches(value)
            run_start = index
            while (
                run_start > 0
                and rule.breaches(readings[run_start - 1][0])
                and (("clear", run_start - 1) not in transitions)
            ):
                run_start -= 1
            assert ts - readings[run_start][1] >= rule.for_seconds * 1_000_000
        else:
            assert rule.clears(value)


def test_hysteresis_keeps_noise_from_flapping() -> None:
    rule = make_rule(Condition.GT, 85.0, 0.0, 2.0)
    readings = [(86.0, 0), (84.5, 1), (85.5, 2), (83.5, 3), (85.1, 4), (82.9, 5), (86.0, 6)]
    assert run_engine(rule, readings) == [("open", 0), ("clear", 5), ("open", 6)]


def test_for_seconds_needs_an_unbroken_breach() -> None:
    rule = make_rule(Condition.GT, 85.0, 10.0, 0.0)
    s = 1_000_000
    readings = [(90.0, 0), (90.0, 5 * s), (80.0, 6 * s), (90.0, 7 * s), (90.0, 16 * s), (90.0, 17 * s)]
    assert run_engine(rule, readings) == [("open", 5)]


def test_manual_resolve_disarms_until_the_value_clears() -> None:
    rule = make_rule(Condition.GT, 85.0, 0.0, 1.0)
    state, _ = evaluate(rule, RuleState(), 90.0, 1, lambda: "a1")
    state = resolved_by_user(state)
    state, again = evaluate(rule, state, 91.0, 2, lambda: "a2")
    assert again is None
    state, still = evaluate(rule, state, 84.5, 3, lambda: "a3")  # inside the hysteresis band: not cleared
    assert still is None
    state, _ = evaluate(rule, state, 83.0, 4, lambda: "a4")  # cleared: re-armed
    state, reopened = evaluate(rule, state, 90.0, 5, lambda: "a5")
    assert isinstance(reopened, AlertOpened)
    assert reopened.alert_id == "a5"


def test_messages() -> None:
    assert make_rule(Condition.GT, 85, 0, 0).render_message(87.3) == "Temperature exceeded threshold"
    assert make_rule(Condition.LT, 85, 0, 0).render_message(1) == "Temperature fell below threshold"
    custom = make_rule(Condition.GE, 85, 0, 0, "{rule_name}: {metric_name} {value} {condition} {threshold}")
    assert custom.render_message(87.3) == "Spindle too hot: temperature 87.3 >= 85"
    assert message_template_error("{value} ok") is None
    error = message_template_error("{machine} {value}")
    assert error is not None
    assert "machine" in error


_states = st.builds(
    RuleState,
    breach_since=st.none() | st.integers(0, 50),
    last_ts=st.none() | st.integers(0, 100),
    armed=st.booleans(),
    open_alert_id=st.none() | st.just("open"),
)


def test_a_quiet_batch_leaves_an_idle_rule_alone_but_keeps_its_flap_memory() -> None:
    rule = make_rule(Condition.GT, 50.0, 0.0, 0.0)
    idle = RuleState()
    assert evaluate_quiet(rule, idle, 1.0, 2.0) is idle  # nothing made, nothing to write
    remembered = RuleState(flap_fires=(3, 5))
    assert evaluate_quiet(rule, remembered, 1.0, 2.0) is remembered
    calming = RuleState(flap_fires=(3, 5), calm_since=4)
    assert evaluate_quiet(rule, calming, 1.0, 2.0) == RuleState(flap_fires=(3, 5))
    assert evaluate_quiet(rule, idle, 1.0, 51.0) is None  # a value breaches: reading by reading


@settings(max_examples=400)
@given(
    condition=st.sampled_from(COMPARISONS),
    threshold=st.integers(-5, 5).map(float),
    state=_states,
    readings=st.lists(st.tuples(st.integers(0, 120), st.integers(-8, 8).map(float)), min_size=1, max_size=12),
)
def test_a_quiet_batch_settles_exactly_as_reading_by_reading(
    condition: Condition, threshold: float, state: RuleState, readings: list[tuple[int, float]]
) -> None:
    rule = make_rule(condition, threshold, for_seconds=0.00002, hysteresis=1.0)
    readings.sort()
    values = [value for _, value in readings]
    settled = evaluate_quiet(rule, state, min(values), max(values))
    replayed, transitions = state, []
    for ts, value in readings:
        replayed, transition = evaluate(rule, replayed, value, ts, lambda: "new")
        transitions.append(transition)
    if settled is not None:  # when it answers, it answers as the replay would: same state, nothing happened
        # (a threshold rule's `last_ts` means nothing: the series keeps the clock, see Fleet.series_ts)
        assert replace(settled, last_ts=None) == replace(replayed, last_ts=None)
        assert transitions == [None] * len(readings)
    else:  # it declines only when something is pending or a value breaches
        nothing_pending = state.open_alert_id is None and state.breach_since is None and state.armed
        assert not nothing_pending or any(rule.breaches(value) for value in values)


_thresholds = st.integers(-6, 6).map(float)


@settings(max_examples=300)
@given(
    rules=st.lists(st.tuples(st.sampled_from([*COMPARISONS, Condition.NO_DATA]), _thresholds), max_size=12),
    bounds=st.tuples(st.integers(-8, 8).map(float), st.integers(-8, 8).map(float)),
)
def test_series_rules_find_exactly_the_idle_rules_a_batch_can_move(
    rules: list[tuple[Condition, float]], bounds: tuple[float, float]
) -> None:
    """`SeriesRules.breached` is `evaluate_quiet` on an idle state asked of every threshold rule, equal thresholds
    and values on them included."""
    lowest, highest = min(bounds), max(bounds)
    made = [
        replace(make_rule(condition, threshold, 0.0, 0.0), id=f"r{i}") for i, (condition, threshold) in enumerate(rules)
    ]
    bank = SeriesRules(made)
    expected = {
        r.id for r in made if r.condition is not Condition.NO_DATA and evaluate_quiet(r, IDLE, lowest, highest) is None
    }
    assert sorted(r.id for r in bank.breached(lowest, highest)) == sorted(expected)
    assert len(bank.breached(lowest, highest)) == len(expected)  # none twice
    assert bank.rules == tuple(made)
    assert [r.id for r in bank.others] == [r.id for r in made if r.condition is Condition.NO_DATA]
