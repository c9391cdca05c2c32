"""The planners, pure and synchronous: a fleet and an input in, a plan out; `Fleet.apply` makes it true."""

from __future__ import annotations

import itertools
from dataclasses import replace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haltless.core.alerts import AlertState, Resolution, StoredAlert
from haltless.core.clock import ManualClock
from haltless.core.fleet import Fleet
from haltless.core.health import MachineHealth
from haltless.core.models import MachineStatus
from haltless.core.plan import SYSTEM, NewMachine, Plan, TransitionKind
from haltless.core.planners.alerts import plan_acknowledge, plan_resolve
from haltless.core.planners.machines import plan_add, plan_edit, plan_remove
from haltless.core.planners.maintenance import plan_maintenance
from haltless.core.planners.offline import due_offline, plan_offline
from haltless.core.planners.readings import plan_readings
from haltless.core.planners.rules import plan_delete, plan_update
from haltless.core.readings import Reading
from haltless.core.rules import COMPARISONS, Condition, Rule
from haltless.errors import Conflict, NotFound
from tests.core.test_rules import make_rule, reference, scenarios, values

TENANT = "t"
MACHINE = "m"
SECOND = 1_000_000
NEVER_OFFLINE = 10**15


def _fleet(*rules: Rule, status: MachineStatus = MachineStatus.OFFLINE, offline_after: int = NEVER_OFFLINE) -> Fleet:
    fleet = Fleet(TENANT, offline_after)
    fleet.health[MACHINE] = MachineHealth(MACHINE, TENANT, status)
    for rule in rules:
        fleet.add_rule(rule)
    return fleet


def _reading(value: float, ts: int, index: int = 0, metric: str = "temperature") -> Reading:
    return Reading(index, MACHINE, metric, value, "celsius", ts, None)


def _ids() -> itertools.count[int]:
    return itertools.count()


def _new_id(counter: itertools.count[int]) -> str:
    return f"a{next(counter)}"


def _types(plan: Plan) -> list[str]:
    return [orjson.loads(event)["type"] for event in plan.events]


def _ingest(fleet: Fleet, values: list[tuple[float, int]], counter: itertools.count[int]) -> Plan:
    batch = [_reading(value, ts, i) for i, (value, ts) in enumerate(values)]
    plan = plan_readings(fleet, batch, values[-1][1], lambda: _new_id(counter))
    fleet.apply(plan)
    return plan


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=20))
def test_planned_batches_match_the_reference_model(
    scenario: tuple[Rule, list[tuple[float, int]]], sizes: list[int]
) -> None:
    """Readings planned in batches of any size, each plan applied, open and clear the alerts the reference model
    says, and the fleet's open alerts, health and status follow them."""
    rule, readings = scenario
    fleet = _fleet(rule)
    counter = _ids()
    transitions: list[tuple[str, int]] = []
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(readings):
            break
        chunk = readings[start : start + size]
        start += size
        plan = _ingest(fleet, chunk, counter)
        types = _types(plan)
        assert types.count("sensor_update") == len(chunk)
        assert types[0] == "sensor_update"  # every reading's update comes before what it caused
        for transition in plan.alert_transitions:
            assert transition.actor == SYSTEM
            kind = "open" if transition.kind is TransitionKind.OPENED else "clear"
            if kind == "clear":
                assert transition.alert.resolution == Resolution.CLEARED
                assert transition.alert.state == AlertState.RESOLVED
            transitions.append((kind, transition.at))
        is_open = bool(transitions) and transitions[-1][0] == "open"
        assert len(fleet.open_alerts) == int(is_open)
        health = fleet.health[MACHINE]
        assert list(health.active) == list(fleet.open_alerts)
        assert health.status is (MachineStatus.CRITICAL if is_open else MachineStatus.HEALTHY)
        assert fleet.state((rule.id, MACHINE)).open_alert_id == (next(iter(fleet.open_alerts)) if is_open else None)
    assert transitions == [(kind, readings[index][1]) for kind, index in reference(rule, readings)]


_rule_specs = st.tuples(
    st.sampled_from(COMPARISONS), values, st.sampled_from([0.0, 2.5, 7.0]), st.sampled_from([0.0, 0.5, 5.0])
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_rule_specs, min_size=2, max_size=8),
    scenarios(),
    st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=20),
)
def test_many_rules_on_one_series_each_follow_the_reference_model(
    specs: list[tuple[Condition, float, float, float]],
    scenario: tuple[Rule, list[tuple[float, int]]],
    sizes: list[int],
) -> None:
    """Several rules on one series, some idle (no state kept: found by threshold, core.rules.SeriesRules), some
    with something pending: each opens and clears what the reference model says for it alone."""
    rules = [replace(make_rule(*spec), id=f"r{i}") for i, spec in enumerate(specs)]
    _, readings = scenario
    fleet = _fleet(*rules)
    counter = _ids()
    transitions: dict[str, list[tuple[str, int]]] = {rule.id: [] for rule in rules}
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(readings):
            break
        plan = _ingest(fleet, readings[start : start + size], counter)
        start += size
        for t in plan.alert_transitions:
            assert t.alert.rule_id is not None
            transitions[t.alert.rule_id].append(("open" if t.kind is TransitionKind.OPENED else "clear", t.at))
    for rule in rules:
        assert transitions[rule.id] == [(kind, readings[i][1]) for kind, i in reference(rule, readings)], rule


@st.composite
def late_batches(draw: st.DrawFn) -> tuple[Rule, list[list[tuple[float, int]]]]:
    """A scenario cut into batches, some readings of which were measured earlier than they arrive (an agent
    sending what it buffered): up to 10 s before their place, so before readings of earlier batches too."""
    rule, readings = draw(scenarios())
    sizes = draw(st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=10))
    shifts = draw(
        st.lists(st.integers(min_value=0, max_value=10 * SECOND), min_size=len(readings), max_size=len(readings))
    )
    late = draw(st.lists(st.booleans(), min_size=len(readings), max_size=len(readings)))
    moved = [
        (value, ts - shift if is_late else ts)
        for (value, ts), shift, is_late in zip(readings, shifts, late, strict=True)
    ]
    batches, start = [], 0
    for size in itertools.cycle(sizes):
        if start >= len(moved):
            break
        batches.append(moved[start : start + size])
        start += size
    return rule, batches


def _evaluated(batches: list[list[tuple[float, int]]]) -> list[tuple[float, int]]:
    """What the rules see, stated plainly: each batch in measurement order, without the readings older than the
    newest of the batches before it (one clock per series, whatever rules watch it)."""
    seen: list[tuple[float, int]] = []
    newest: int | None = None
    for batch in batches:
        ordered = sorted(batch, key=lambda reading: reading[1])
        seen += [reading for reading in ordered if newest is None or reading[1] >= newest]
        newest = ordered[-1][1] if newest is None else max(newest, ordered[-1][1])
    return seen


@settings(max_examples=300, deadline=None)
@given(late_batches(), st.integers(min_value=0, max_value=20))
def test_late_readings_are_skipped_by_the_series_clock_alone(
    scenario: tuple[Rule, list[list[tuple[float, int]]]], restart_after: int
) -> None:
    """With readings arriving late, the alerts are the reference model's over what the series' clock lets through;
    a fleet rebuilt after any batch from what the database holds (its series' newest stored reading, the open
    alerts' states) goes on exactly as the one that kept running."""
    rule, batches = scenario
    fleet = _fleet(rule)
    counter = _ids()
    transitions: list[tuple[str, int]] = []
    for number, batch in enumerate(batches):
        plan = _ingest(fleet, batch, counter)
        transitions += [("open" if t.kind is TransitionKind.OPENED else "clear", t.at) for t in plan.alert_transitions]
        if number == restart_after:
            fleet = _restarted(fleet, rule)
    seen = _evaluated(batches)
    assert transitions == [(kind, seen[index][1]) for kind, index in reference(rule, seen)]


def _restarted(fleet: Fleet, rule: Rule) -> Fleet:
    """The fleet as Changes.load rebuilds it: states as stored, series clocks from the stored readings."""
    again = _fleet(rule, status=fleet.health[MACHINE].status)
    again.states.update({key: replace(state, open_alert_id=None) for key, state in fleet.states.items()})
    again.series_ts = dict(fleet.series_ts)
    for alert in fleet.open_alerts.values():
        again.track_open(alert)
    return again


def test_a_quiet_batch_is_sensor_updates_and_nothing_else() -> None:
    fleet = _fleet(make_rule(Condition.GT, 85.0, 0.0, 0.0), status=MachineStatus.HEALTHY)
    plan = plan_readings(fleet, [_reading(20.0, 2), _reading(21.0, 1, 1)], 5, lambda: "never")
    assert _types(plan) == ["sensor_update", "sensor_update"]
    assert [orjson.loads(e)["value"] for e in plan.events] == [21.0, 20.0]  # in measurement order
    assert plan.alert_transitions == [] and plan.status_changes == {}
    assert ("r", MACHINE) not in plan.states  # an idle rule: nothing made, nothing to write
    assert plan.series_ts == {(MACHINE, "temperature"): 2}
    assert fleet.health[MACHINE].last_seen is None  # nothing changes until the plan is applied
    fleet.apply(plan)
    assert fleet.health[MACHINE].last_seen == 5


def test_a_breach_opens_an_alert_then_changes_the_status_in_that_order() -> None:
    fleet = _fleet(make_rule(Condition.GT, 85.0, 0.0, 0.0))
    plan = plan_readings(fleet, [_reading(90.0, 1)], 1, lambda: "a1")
    assert _types(plan) == ["sensor_update", "alert", "machine_status"]
    assert plan.status_changes == {MACHINE: MachineStatus.CRITICAL}
    [opened] = plan.alert_transitions
    assert (opened.kind, opened.alert.id, opened.alert.state, opened.at) == (TransitionKind.OPENED, "a1", "active", 1)


def test_maintenance_suppresses_and_forgets_breaches_in_progress() -> None:
    rule = make_rule(Condition.GT, 85.0, 10.0, 0.0)
    fleet = _fleet(rule, status=MachineStatus.HEALTHY)
    counter = _ids()
    _ingest(fleet, [(90.0, 1)], counter)
    assert fleet.states[(rule.id, MACHINE)].breach_since == 1
    plan = plan_maintenance(fleet, MACHINE, True, 2)
    assert _types(plan) == ["machine_status"] and plan.maintenance_changes == {MACHINE: True}
    fleet.apply(plan)
    assert fleet.state((rule.id, MACHINE)).breach_since is None
    assert fleet.health[MACHINE].status is MachineStatus.MAINTENANCE
    assert _types(_ingest(fleet, [(99.0, 20 * SECOND)], counter)) == ["sensor_update"]
    assert plan_maintenance(fleet, MACHINE, True, 3).events == []  # no change, nothing to say
    with pytest.raises(NotFound):
        plan_maintenance(fleet, "unknown", True, 3)


def _open_alert(fleet: Fleet) -> StoredAlert:
    _ingest(fleet, [(90.0, 1)], _ids())
    [alert] = fleet.open_alerts.values()
    return alert


def test_acknowledge_once_then_nothing_more() -> None:
    fleet = _fleet(make_rule(Condition.GT, 85.0, 0.0, 0.0))
    alert = _open_alert(fleet)
    plan, after = plan_acknowledge(fleet, alert, "u1", 7)
    [transition] = plan.alert_transitions
    assert (transition.kind, transition.actor, transition.at) == (TransitionKind.ACKNOWLEDGED, "u1", 7)
    assert (after.state, after.acknowledged_by, after.acknowledged_at) == (AlertState.ACKNOWLEDGED, "u1", 7)
    assert _types(plan) == ["alert_acknowledged"]
    fleet.apply(plan)
    assert fleet.open_alerts[alert.id] == after
    again, same = plan_acknowledge(fleet, after, "u2", 8)
    assert again.alert_transitions == [] and again.events == [] and same == after
    with pytest.raises(NotFound):
        plan_acknowledge(fleet, None, "u1", 9)
    with pytest.raises(Conflict):
        plan_acknowledge(fleet, replace(after, state=AlertState.RESOLVED), "u1", 9)


def test_resolve_by_hand_disarms_the_rule_until_the_value_clears() -> None:
    rule = make_rule(Condition.GT, 85.0, 0.0, 0.0)
    fleet = _fleet(rule)
    alert = _open_alert(fleet)
    plan, after = plan_resolve(fleet, alert, "u1", 5)
    assert (after.state, after.resolved_by, after.resolution) == (AlertState.RESOLVED, "u1", Resolution.MANUAL)
    assert _types(plan) == ["alert_resolved", "machine_status"]
    fleet.apply(plan)
    assert fleet.open_alerts == {} and fleet.health[MACHINE].status is MachineStatus.HEALTHY
    counter = _ids()
    assert _ingest(fleet, [(95.0, 6)], counter).alert_transitions == []  # still breaching: disarmed
    assert _ingest(fleet, [(10.0, 7), (95.0, 8)], counter).alert_transitions[0].kind is TransitionKind.OPENED
    with pytest.raises(Conflict):
        plan_resolve(fleet, after, "u1", 9)


def test_a_change_of_meaning_resolves_the_rules_alerts_a_rename_does_not() -> None:
    rule = make_rule(Condition.GT, 85.0, 0.0, 0.0)
    fleet = _fleet(rule)
    _open_alert(fleet)
    renamed = plan_update(fleet, rule, replace(rule, name="Renamed"), 3)
    assert renamed.alert_transitions == [] and renamed.rule_states_reset == []
    changed = plan_update(fleet, rule, replace(rule, threshold=95.0), 3)
    assert [t.alert.resolution for t in changed.alert_transitions] == [Resolution.RULE_CHANGED]
    assert _types(changed) == ["alert_resolved", "machine_status"] and changed.rule_states_reset == [rule.id]
    disabled = plan_update(fleet, rule, replace(rule, enabled=False), 3)
    assert [t.alert.resolution for t in disabled.alert_transitions] == [Resolution.RULE_DISABLED]
    deleted = plan_delete(fleet, rule, 3)
    assert [t.alert.resolution for t in deleted.alert_transitions] == [Resolution.RULE_DELETED]
    fleet.apply(deleted)
    assert fleet.rules == {} and fleet.index == {} and fleet.open_alerts == {} and fleet.states == {}


def test_silent_machines_go_offline_by_the_injected_clock() -> None:
    clock = ManualClock(0)
    fleet = _fleet(offline_after=60 * SECOND)
    fleet.apply(plan_readings(fleet, [_reading(1.0, 0)], clock.now_us(), lambda: "never"))
    assert fleet.health[MACHINE].status is MachineStatus.HEALTHY
    clock.advance(59.9)
    assert due_offline(fleet, clock.now_us()) == []
    clock.advance(0.1)
    assert due_offline(fleet, clock.now_us()) == [MACHINE]
    plan = plan_offline(fleet, [MACHINE], clock.now_us())
    assert [orjson.loads(e)["new_status"] for e in plan.events] == ["offline"]
    fleet.apply(plan)
    assert due_offline(fleet, clock.now_us()) == []


def test_machines_join_offline_and_leave_with_their_rules_and_alerts() -> None:
    fleet = Fleet(TENANT, NEVER_OFFLINE)
    plan = plan_add(fleet, NewMachine(MACHINE, TENANT, "Press", None, [], 1))
    fleet.apply(plan)
    assert fleet.known([MACHINE, "other"]) == {MACHINE}
    assert fleet.health[MACHINE].status is MachineStatus.OFFLINE
    bound = replace(make_rule(Condition.GT, 85.0, 0.0, 0.0), machine_id=MACHINE)
    fleet.add_rule(bound)
    _open_alert(fleet)
    edit = plan_edit(fleet, MACHINE, {"name": "Press 2"}, None, 2)
    assert edit.machine_edits == {MACHINE: {"name": "Press 2"}} and edit.events == []
    fleet.apply(plan_remove(fleet, MACHINE, 3))
    assert fleet.health == {} and fleet.rules == {} and fleet.open_alerts == {} and fleet.states == {}
