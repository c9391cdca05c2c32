"""A tenant's fleet as this process knows it: machines' health, the rule index, rule states, open alerts.

Planners read it; only `apply` changes it, with a plan the unit of work has committed, so memory never runs
ahead of the database. No I/O: the server loads it and, across processes, refreshes it (server/service/changes.py).
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, KeysView, MutableMapping, ValuesView
from dataclasses import replace

from haltless.core.alerts import StoredAlert
from haltless.core.health import MachineHealth
from haltless.core.plan import Plan, TransitionKind
from haltless.core.predictive import SeriesDetector
from haltless.core.rules import IDLE, Rule, RuleKind, RuleState, SeriesRules

_NO_RULES = SeriesRules(())


class RuleStates(MutableMapping[tuple[str, str], RuleState]):
    """(rule id, machine id) -> state, knowing which rules have a state on each machine.

    Planning a batch visits the rules of a series that have a state; `SeriesRules` finds the others it must see
    (core/planners/readings.py). Every write goes through `__setitem__` and `__delitem__`, which keep that answer.
    """

    __slots__ = ("_by_machine", "_states")

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], RuleState] = {}
        self._by_machine: dict[str, set[str]] = {}

    def of(self, key: tuple[str, str]) -> RuleState:
        """The pair's state; IDLE when none is kept."""
        return self._states.get(key, IDLE)

    def rules_on(self, machine_id: str) -> set[str] | None:
        """The ids of the rules with a state on the machine (None or empty: none)."""
        return self._by_machine.get(machine_id)

    def machine_keys(self, machine_id: str) -> list[tuple[str, str]]:
        return [(rule_id, machine_id) for rule_id in self._by_machine.get(machine_id, ())]

    def __getitem__(self, key: tuple[str, str]) -> RuleState:
        return self._states[key]

    def __setitem__(self, key: tuple[str, str], state: RuleState) -> None:
        self._states[key] = state
        rules = self._by_machine.get(key[1])
        if rules is None:
            rules = self._by_machine[key[1]] = set()
        rules.add(key[0])

    def __delitem__(self, key: tuple[str, str]) -> None:
        del self._states[key]
        rules = self._by_machine[key[1]]
        rules.discard(key[0])
        if not rules:
            del self._by_machine[key[1]]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: object) -> bool:
        return key in self._states

    def items(self) -> ItemsView[tuple[str, str], RuleState]:
        return self._states.items()

    def keys(self) -> KeysView[tuple[str, str]]:
        return self._states.keys()

    def values(self) -> ValuesView[RuleState]:
        return self._states.values()


class Fleet:
    """Machines, rules, rule states and open alerts of one tenant."""

    def __init__(self, tenant_id: str, offline_after_us: int) -> None:
        self.tenant_id = tenant_id
        self.offline_after_us = offline_after_us
        self.rules: dict[str, Rule] = {}
        self.index: dict[str, list[Rule]] = {}  # metric name -> the rules on it
        # (machine id, metric name) -> `series_rules`' answer, kept until the rules or the machines change.
        self._applicable: dict[tuple[str, str], SeriesRules] = {}
        # (rule id, machine id) -> state; pairs with nothing pending (IDLE) are left out.
        self.states = RuleStates()
        # (machine id, metric) -> the newest measurement time stored, for the series this process has seen since
        # it started and those its rules watched then. A reading older than that is late: threshold rules skip it.
        # One clock per series, not a `last_ts` per (rule, machine): with 1,000 rules on a metric a quiet batch
        # advanced 1,000 states per series (docs/benchmarks.md, "Rules").
        self.series_ts: dict[tuple[str, str], int] = {}
        self.health: dict[str, MachineHealth] = {}  # machine id -> health
        self.open_alerts: dict[str, StoredAlert] = {}  # alert id -> alert
        # Predictive rules (anomaly, forecast): their detectors per (rule, machine), and how many such rules.
        self.detectors: dict[tuple[str, str], SeriesDetector] = {}
        self.predictive_rules = 0
        # Shared mode: the database's `tenants.rules_revision` when the rules were last reloaded (None: never), so
        # a refresh fetches them only when another change has moved it.
        self.rules_revision: int | None = None

    # ---- reading -----------------------------------------------------------------------------------

    def known(self, machine_ids: Iterable[str]) -> set[str]:
        """Which of `machine_ids` are machines of this fleet."""
        health = self.health
        return {m for m in set(machine_ids) if m in health}

    def state(self, key: tuple[str, str]) -> RuleState:
        return self.states.of(key)

    def rules_for(self, machine_id: str, metric_name: str) -> tuple[Rule, ...]:
        """The enabled rules on `metric_name` that apply to `machine_id`, in the index's order."""
        return self.series_rules(machine_id, metric_name).rules

    def series_rules(self, machine_id: str, metric_name: str) -> SeriesRules:
        """`rules_for`'s rules, arranged for planning a batch (core.rules.SeriesRules).

        Hot path (ingest, every series of every batch): picking them out of all the metric's rules cost one check
        per rule, most of them bound to other machines (1,000 machine-specific rules on 100 machines: planning a
        500-reading batch took twice as long); the answer is kept until a rule is added, changed or dropped, or a
        machine removed. Only metrics that have rules are kept, so readings of other metrics never grow it.
        """
        key = (machine_id, metric_name)
        found = self._applicable.get(key)
        if found is None:
            rules = self.index.get(metric_name)
            if not rules:
                return _NO_RULES
            found = self._applicable[key] = SeriesRules(rule for rule in rules if rule.applies_to(machine_id))
        return found

    def states_to_write(self, plan: Plan) -> dict[tuple[str, str], RuleState]:
        """The plan's states whose `breach_since` or `armed` changed: only those must be written when this
        process is the only one (bench M4: upserting every touched (rule, machine) on every batch cost a fifth
        of a 500-reading batch; predictive rules' `last_ts` is recovered from the readings at start-up)."""
        changed = {}
        for key, state in plan.states.items():
            old = self.states.of(key)
            if (
                old.breach_since != state.breach_since
                or old.armed != state.armed
                or old.flap_fires is not state.flap_fires
                or old.calm_since != state.calm_since
                or old.seen_at != state.seen_at
            ):
                changed[key] = state
        return changed

    # ---- loading ------------------------------------------------------------------------------------

    def add_rule(self, rule: Rule) -> None:
        self._applicable.clear()
        self.rules[rule.id] = rule
        self.index.setdefault(rule.metric_name, []).append(rule)
        if rule.kind is not RuleKind.THRESHOLD:
            self.predictive_rules += 1

    def drop_rule(self, rule_id: str) -> None:
        self._applicable.clear()
        rule = self.rules.pop(rule_id, None)
        if rule is not None:
            if rule.kind is not RuleKind.THRESHOLD:
                self.predictive_rules -= 1
            members = [r for r in self.index[rule.metric_name] if r.id != rule_id]
            if members:
                self.index[rule.metric_name] = members
            else:
                del self.index[rule.metric_name]

    def load_states(self, states: dict[tuple[str, str], RuleState]) -> None:
        """Keep states as the database holds them, but a threshold rule's that remembers nothing but a `last_ts`:
        idle, so not kept (rows written before the series kept the clock, 2026-12-05, have one per pair)."""
        rules = self.rules
        for key, state in states.items():
            rule = rules.get(key[0])
            if rule is not None and rule.compares_values and replace(state, last_ts=None) == IDLE:
                continue
            self.states[key] = state

    def track_open(self, alert: StoredAlert) -> None:
        """Remember an open alert (loading): on its machine's health and its (rule, machine) state."""
        self.open_alerts[alert.id] = alert
        health = self.health.get(alert.machine_id)
        if health is not None:
            health.active[alert.id] = alert.severity
        if alert.rule_id is not None:
            key = (alert.rule_id, alert.machine_id)
            old = self.states.of(key)
            self.states[key] = replace(old, open_alert_id=alert.id, flapping=alert.flapping)

    def reload(
        self,
        rules: Iterable[Rule] | None,
        machines: Iterable[MachineHealth],
        states: dict[tuple[str, str], RuleState],
        open_alerts: Iterable[StoredAlert],
        *,
        rules_revision: int | None = None,
    ) -> None:
        """Replace the rules (None: they are unchanged since `rules_revision`), and everything about `machines`,
        with what the database holds now."""
        if rules is not None:
            self.rules.clear()
            self.index.clear()
            self._applicable.clear()
            self.predictive_rules = 0
            for rule in rules:
                self.add_rule(rule)
        self.rules_revision = rules_revision
        ids = set()
        for health in machines:
            self.health[health.machine_id] = health
            ids.add(health.machine_id)
        for machine_id in ids:
            for key in self.states.machine_keys(machine_id):
                del self.states[key]
        self.load_states(states)
        for alert_id in [a.id for a in self.open_alerts.values() if a.machine_id in ids]:
            del self.open_alerts[alert_id]
        for alert in open_alerts:
            self.track_open(alert)

    # ---- applying a committed plan --------------------------------------------------------------------

    def apply(self, plan: Plan) -> None:
        """Make a committed plan the in-memory truth."""
        states = self.states
        for key, state in plan.states.items():
            if state == IDLE:
                states.pop(key, None)  # nothing pending: the pair needs no state of its own
            else:
                states[key] = state
        clocks = self.series_ts
        for key, newest in plan.series_ts.items():
            known = clocks.get(key)
            if known is None or known < newest:
                clocks[key] = newest
        self.health.update(plan.health)
        self.detectors.update(plan.detectors)
        for transition in plan.alert_transitions:
            if transition.kind is TransitionKind.RESOLVED:
                self.open_alerts.pop(transition.alert.id, None)
            else:
                self.open_alerts[transition.alert.id] = transition.alert
        for rule_id in plan.rule_states_reset:
            for key in [key for key in self.states if key[0] == rule_id]:
                del self.states[key]
            for key in [key for key in self.detectors if key[0] == rule_id]:
                del self.detectors[key]
        for rule in plan.rules_created:
            self.add_rule(rule)
        for rule in plan.rules_updated:
            self.drop_rule(rule.id)
            self.add_rule(rule)
        for rule_id in plan.rules_deleted:
            self.drop_rule(rule_id)
        for machine_id in plan.machines_removed:
            self._forget_machine(machine_id)

    def _forget_machine(self, machine_id: str) -> None:
        """A deleted machine: its states, open alerts and the rules bound to it go with it (as in the database)."""
        self.health.pop(machine_id, None)
        self._applicable.clear()
        for key in self.states.machine_keys(machine_id):
            del self.states[key]
        for key in [key for key in self.detectors if key[1] == machine_id]:
            del self.detectors[key]
        for key in [key for key in self.series_ts if key[0] == machine_id]:
            del self.series_ts[key]
        for alert_id in [a.id for a in self.open_alerts.values() if a.machine_id == machine_id]:
            del self.open_alerts[alert_id]
        for rule in [rule for rule in self.rules.values() if rule.machine_id == machine_id]:
            self.drop_rule(rule.id)
