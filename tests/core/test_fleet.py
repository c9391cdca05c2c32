"""`Fleet.rules_for`: the rules a series' readings meet, kept between batches, never stale after a change; and
`Fleet.states`, which knows the rules with a state on each machine."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from haltless.core.fleet import Fleet
from haltless.core.health import MachineHealth
from haltless.core.models import MachineStatus
from haltless.core.plan import Plan
from haltless.core.planners.readings import plan_readings
from haltless.core.readings import Reading
from haltless.core.rules import Condition, Rule, RuleState
from tests.core.test_rules import make_rule

TENANT = "t"
MACHINES = ("m1", "m2", "m3")
METRICS = ("temperature", "vibration")
SECOND = 1_000_000

# One step of a fleet's life: a rule added, edited or dropped, the rules reloaded, a machine removed.
_rule_fields = st.tuples(st.sampled_from(METRICS), st.sampled_from((None, *MACHINES)), st.booleans())
_steps = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 5), _rule_fields),
    st.tuples(st.just("edit"), st.integers(0, 5), _rule_fields),
    st.tuples(st.just("drop"), st.integers(0, 5), st.none()),
    st.tuples(st.just("reload"), st.integers(0, 5), st.none()),
    st.tuples(st.just("remove machine"), st.integers(0, len(MACHINES) - 1), st.none()),
)


def _fleet() -> Fleet:
    fleet = Fleet(TENANT, 10**15)
    for machine_id in MACHINES:
        fleet.health[machine_id] = MachineHealth(machine_id, TENANT, MachineStatus.HEALTHY)
    return fleet


def _rule(number: int, metric_name: str, machine_id: str | None, enabled: bool) -> Rule:
    return replace(
        make_rule(Condition.GT, 50.0, 0.0, 0.0),
        id=f"r{number}",
        metric_name=metric_name,
        machine_id=machine_id,
        enabled=enabled,
    )


def _expected(fleet: Fleet, machine_id: str, metric_name: str) -> tuple[Rule, ...]:
    return tuple(rule for rule in fleet.index.get(metric_name, ()) if rule.applies_to(machine_id))


@given(st.lists(_steps, max_size=25))
# Every rule reloaded away: no rule is added after it, so only the reload itself may forget the kept answers.
@example([("add", 1, ("temperature", None, True)), ("reload", 0, None)])
def test_rules_for_answers_as_the_index_does_after_every_change(steps: list[tuple[str, int, object]]) -> None:
    fleet = _fleet()
    for action, number, fields in steps:
        # Ask first, so that every change below meets answers kept from before it.
        for machine_id, metric_name in itertools.product(MACHINES, METRICS):
            assert fleet.rules_for(machine_id, metric_name) == _expected(fleet, machine_id, metric_name)
        rule_id = f"r{number}"
        if action == "add" and rule_id not in fleet.rules:
            assert isinstance(fields, tuple)
            fleet.apply(Plan(TENANT, 1, rules_created=[_rule(number, *fields)]))
        elif action == "edit" and rule_id in fleet.rules:
            assert isinstance(fields, tuple)
            fleet.apply(Plan(TENANT, 1, rules_updated=[_rule(number, *fields)]))
        elif action == "drop" and rule_id in fleet.rules:
            fleet.apply(Plan(TENANT, 1, rules_deleted=[rule_id]))
        elif action == "reload":
            # Another process kept some rules and dropped the rest.
            kept = [rule for rule in fleet.rules.values() if int(rule.id[1:]) <= number]
            fleet.reload(kept, [], {}, [])
        elif action == "remove machine":
            fleet.apply(Plan(TENANT, 1, machines_removed=[MACHINES[number]]))
    for machine_id, metric_name in itertools.product(MACHINES, METRICS):
        assert fleet.rules_for(machine_id, metric_name) == _expected(fleet, machine_id, metric_name)


def test_a_rule_moved_to_another_machine_fires_there_and_no_longer_where_it_was() -> None:
    fleet = _fleet()
    fleet.apply(Plan(TENANT, 1, rules_created=[_rule(0, "temperature", "m1", True)]))
    ids = (f"a{n}" for n in itertools.count())

    def breach(machine_id: str, ts: int) -> list[str]:
        plan = plan_readings(
            fleet, [Reading(0, machine_id, "temperature", 60.0, "celsius", ts, None)], ts, ids.__next__
        )
        fleet.apply(plan)
        return [t.alert.machine_id for t in plan.alert_transitions]

    assert breach("m2", 1 * SECOND) == []  # bound to m1: m2's readings are asked about, and the answer kept
    assert breach("m1", 2 * SECOND) == ["m1"]
    fleet.apply(Plan(TENANT, 3, rules_updated=[_rule(0, "temperature", "m2", True)]))
    assert breach("m2", 4 * SECOND) == ["m2"]
    fleet.apply(Plan(TENANT, 5, rules_updated=[_rule(0, "temperature", "m2", False)]))
    assert breach("m2", 6 * SECOND) == [] and breach("m3", 7 * SECOND) == []


def test_what_is_kept_grows_with_the_series_of_metrics_with_rules_only() -> None:
    fleet = _fleet()
    fleet.apply(Plan(TENANT, 1, rules_created=[_rule(0, "temperature", None, True)]))
    for n in range(1000):
        assert fleet.rules_for("m1", f"metric_{n}") == ()
    for machine_id in MACHINES:
        assert fleet.rules_for(machine_id, "temperature") == (fleet.rules["r0"],)
    assert len(fleet._applicable) == len(MACHINES)  # a client's many metric names do not grow it
    fleet.apply(Plan(TENANT, 2, machines_removed=["m3"]))
    assert "m3" not in {machine_id for machine_id, _ in fleet._applicable}  # nor do machines long gone


_keys = st.tuples(st.sampled_from(("r1", "r2", "r3")), st.sampled_from(MACHINES))
_state_steps = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _keys),
        st.tuples(st.just("delete"), _keys),
        st.tuples(st.just("pop"), _keys),
        st.tuples(st.just("update"), st.lists(_keys, max_size=4)),
        st.tuples(st.just("remove machine"), st.sampled_from(MACHINES)),
    ),
    max_size=30,
)


@given(_state_steps)
def test_rule_states_know_which_rules_have_a_state_on_each_machine(steps: list[tuple[str, Any]]) -> None:
    """Whatever writes the states (a plan applied, a reload, a removed machine), `rules_on` answers as the keys do:
    planning visits exactly the rules it names."""
    fleet = _fleet()
    states = fleet.states
    for kind, arg in steps:
        if kind == "set":
            states[arg] = RuleState(breach_since=1)
        elif kind == "delete" and arg in states:
            del states[arg]
        elif kind == "pop":
            states.pop(arg, None)
        elif kind == "update":
            states.update({key: RuleState(armed=False) for key in arg})
        elif kind == "remove machine":
            plan = Plan(TENANT, 1)
            plan.machines_removed.append(arg)
            fleet.apply(plan)
        for machine_id in MACHINES:
            assert (states.rules_on(machine_id) or set()) == {rule for rule, m in states if m == machine_id}
        assert len(states) == len(list(states.items()))
