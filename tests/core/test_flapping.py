"""Flap detection (core/flapping.py) against a reference model written from docs/alerts.md, plus the done-when
scenario of issue 17 in pure form: an hour of a value flipping around its threshold is one alert."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from haltless.core.flapping import decide
from haltless.core.notifications import Kind
from haltless.core.rules import AlertCleared, AlertOpened, Condition, Rule, RuleState, Severity, evaluate
from tests.core.test_notifications import T0, Outbox, _alert, _policy

S = 1_000_000


def make_rule(flap_threshold: int | None, window: float, hysteresis: float = 0.0, for_seconds: float = 0.0) -> Rule:
    return Rule(
        id="r",
        tenant_id="t",
        name="Spindle too hot",
        metric_name="temperature",
        machine_id=None,
        condition=Condition.GT,
        threshold=50.0,
        severity=Severity.CRITICAL,
        for_seconds=for_seconds,
        hysteresis=hysteresis,
        enabled=True,
        message=None,
        flap_threshold=flap_threshold,
        flap_window_seconds=window,
    )


Event = tuple[str, int, bool]  # ("open" or "clear", reading index, flapping)


def run_engine(rule: Rule, readings: list[tuple[float, int]]) -> tuple[list[Event], RuleState]:
    """The engine as the readings planner runs it, each reading a batch of its own: a reading older than its
    series' newest is skipped, the others go through evaluate, then flap detection."""
    ids = (f"a{i}" for i in itertools.count())
    state = RuleState()
    out: list[Event] = []
    newest: int | None = None
    for index, (value, ts) in enumerate(readings):
        if newest is not None and ts < newest:
            continue
        newest = ts
        after, transition = evaluate(rule, state, value, ts, lambda: next(ids))
        decision = decide(rule, state, after, transition, rule.breaches(value), ts)
        state = decision.state
        if isinstance(decision.transition, AlertOpened):
            out.append(("open", index, decision.flapping))
        elif isinstance(decision.transition, AlertCleared):
            out.append(("clear", index, False))
    return out, state


def reference(rule: Rule, readings: list[tuple[float, int]]) -> list[Event]:
    """docs/alerts.md "Flapping", for `>` rules without for_seconds, written out longhand."""
    assert rule.flap_threshold is not None
    window = rule.flap_window_seconds * S
    out: list[Event] = []
    opened: list[int] = []
    is_open = flapping = False
    calm_since: int | None = None
    newest: int | None = None
    for index, (value, ts) in enumerate(readings):
        if newest is not None and ts < newest:
            continue  # older than the newest evaluated: not evaluated
        newest = ts
        breaches = value > rule.threshold
        clears = not value > rule.threshold - rule.hysteresis
        if is_open and flapping:
            if breaches:
                calm_since = None
            elif clears:
                calm_since = ts if calm_since is None else calm_since
                if ts - calm_since >= window:
                    out.append(("clear", index, False))
                    is_open = flapping = False
                    calm_since = None
        elif is_open:
            if clears:
                out.append(("clear", index, False))
                is_open = False
        elif breaches:
            flapping = len([t for t in opened if ts - t < window]) >= rule.flap_threshold
            opened.append(ts)
            is_open = True
            out.append(("open", index, flapping))
    return out


values = st.sampled_from([40.0, 49.5, 50.0, 50.5, 60.0])
gaps = st.integers(min_value=0, max_value=40 * S)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Rule, list[tuple[float, int]]]:
    rule = make_rule(
        draw(st.integers(min_value=1, max_value=4)),
        draw(st.sampled_from([5.0, 30.0, 120.0, 600.0])),
        draw(st.sampled_from([0.0, 0.5, 2.0])),
    )
    steps = draw(st.lists(st.tuples(values, gaps, st.booleans()), min_size=1, max_size=80))
    readings, ts = [], 0
    for value, gap, late in steps:
        ts += gap
        readings.append((value, ts - 3 * S if late and gap else ts))  # now and then one measured earlier
    return rule, readings


@given(scenarios())
def test_flap_detection_matches_the_reference_model(scenario: tuple[Rule, list[tuple[float, int]]]) -> None:
    rule, readings = scenario
    assert run_engine(rule, readings)[0] == reference(rule, readings)


@given(scenarios())
def test_without_flap_detection_the_engine_is_unchanged(scenario: tuple[Rule, list[tuple[float, int]]]) -> None:
    rule, readings = scenario
    off = replace(rule, flap_threshold=None)
    ids = (f"a{i}" for i in itertools.count())
    state, plain = RuleState(), []
    newest: int | None = None
    for index, (value, ts) in enumerate(readings):
        if newest is not None and ts < newest:
            continue  # late: the planner skips it (tests/core/test_planners.py)
        newest = ts
        state, transition = evaluate(off, state, value, ts, lambda: next(ids))
        if transition is not None:
            plain.append(("open" if isinstance(transition, AlertOpened) else "clear", index, False))
    assert run_engine(off, readings)[0] == plain


@given(scenarios())
def test_at_most_k_plus_one_alerts_open_in_any_window(scenario: tuple[Rule, list[tuple[float, int]]]) -> None:
    """However the value moves, a rule opens at most K + 1 alerts per window: the K before the flap and the
    flapping one, which stays open until the value has been calm a whole window."""
    rule, readings = scenario
    assert rule.flap_threshold is not None
    events, _ = run_engine(rule, readings)
    opens = [readings[index][1] for kind, index, _ in events if kind == "open"]
    window = rule.flap_window_seconds * S
    for i, start in enumerate(opens):
        assert len([t for t in opens[i:] if t - start < window]) <= rule.flap_threshold + 1


def test_an_hour_flipping_around_the_threshold_is_one_flapping_alert() -> None:
    """±0.5 % around the threshold at 1 Hz for an hour: K plain alerts, then one flapping alert for the rest."""
    rule = make_rule(3, 600.0)
    readings = [(50.0 * (1.005 if n % 2 == 0 else 0.995), n * S) for n in range(3600)]
    events, state = run_engine(rule, readings)
    assert [(kind, flapping) for kind, _, flapping in events] == [
        ("open", False),
        ("clear", False),
        ("open", False),
        ("clear", False),
        ("open", False),
        ("clear", False),
        ("open", True),
    ]
    assert state.flapping
    assert state.open_alert_id is not None
    # The hour ends on a clearing reading (t = 3599 s): calm from there, it clears a whole window later.
    calm = [(49.0, (3600 + n) * S) for n in range(601)]
    events, state = run_engine(rule, readings + calm)
    assert events[-1] == ("clear", 3599 + 600, False)
    assert not state.flapping
    assert state.flap_fires  # the memory of recent alerts stays


# ---- the dispatcher: a flapping alert's firing stands for its flap (core.notifications.plan_cycle) ----------------


def _flap(outbox: Outbox, start: int, alerts: int) -> None:
    """`alerts` plain alerts opening and clearing a second apart, then a flapping one; recorded as the outbox does
    (a change's openings before its resolutions)."""
    for n in range(alerts):
        outbox.record(Kind.FIRING, _alert(n), start + 2 * n * S)
        outbox.record(Kind.RESOLVED, replace(_alert(n), state="resolved"), start + (2 * n + 1) * S)
    outbox.record(Kind.FIRING, replace(_alert(alerts), state="flapping", flapping=True), start + 2 * alerts * S)
    outbox.record(Kind.RESOLVED, replace(_alert(99, machine="other"), state="resolved"), start + 2 * alerts * S)


def test_a_flap_inside_group_wait_is_one_notification_of_the_flapping_alert() -> None:
    outbox = Outbox([_policy(group_wait=30.0)])
    _flap(outbox, T0, 3)
    outbox.cycle(T0 + 6 * S)
    outbox.run_until(T0 + 120 * S)
    sent = [(n.channel_id, n.kind, [a.alert_id for a in n.alerts]) for n in outbox.sent]
    # The flap is one firing notification per channel; another machine's change travels as usual.
    assert sorted(sent) == [
        ("hook", Kind.FIRING, ["a3"]),
        ("hook", Kind.RESOLVED, ["a99"]),
        ("mail", Kind.FIRING, ["a3"]),
        ("mail", Kind.RESOLVED, ["a99"]),
    ]
    assert outbox.waiting == []


def test_what_was_sent_before_the_flap_stays_sent_and_its_resolution_follows() -> None:
    outbox = Outbox([_policy(group_wait=0.0, group_interval=300.0, channel_ids=("hook",))])
    outbox.record(Kind.FIRING, _alert(0), T0)
    outbox.cycle(T0)  # a0's firing is sent at once
    outbox.record(Kind.RESOLVED, replace(_alert(0), state="resolved"), T0 + S)
    for n in (1, 2):
        outbox.record(Kind.FIRING, _alert(n), T0 + 2 * n * S)
        outbox.record(Kind.RESOLVED, replace(_alert(n), state="resolved"), T0 + (2 * n + 1) * S)
    outbox.record(Kind.FIRING, replace(_alert(3), state="flapping", flapping=True), T0 + 6 * S)
    outbox.run_until(T0 + 400 * S)
    sent = [(n.kind, [a.alert_id for a in n.alerts]) for n in outbox.sent]
    assert sent == [(Kind.FIRING, ["a0"]), (Kind.RESOLVED, ["a0"]), (Kind.FIRING, ["a3"])]
