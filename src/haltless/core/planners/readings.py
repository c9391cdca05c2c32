"""Planning a batch of stored readings: sensor updates, then the alerts they open or clear, then status changes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter

from haltless.core import predictive, wire
from haltless.core.alerts import AlertState, Resolution, StoredAlert
from haltless.core.flapping import decide as flap_decide
from haltless.core.fleet import Fleet
from haltless.core.health import MachineHealth
from haltless.core.models import MachineStatus
from haltless.core.plan import SYSTEM, Plan, TransitionKind
from haltless.core.planners import no_data
from haltless.core.planners.draft import Draft
from haltless.core.readings import Reading
from haltless.core.rules import (
    MAX_ALERT_MESSAGE_LENGTH,
    AlertCleared,
    AlertOpened,
    Condition,
    Rule,
    RuleKind,
    evaluate,
    evaluate_quiet,
)

_MEASURED_AT = attrgetter("ts")


def plan_readings(
    fleet: Fleet,
    readings: Sequence[Reading],
    received_at: int,
    new_id: Callable[[], str],
    reporting: Iterable[str] | None = None,
) -> Plan:
    """Store `readings` (of known machines) and evaluate them in measurement order.

    `reporting`: the machines the readings come from, when the caller has them at hand; `new_id` names new alerts.
    """
    ordered = sorted(readings, key=_MEASURED_AT)
    machine_ids = set(reporting) if reporting is not None else {reading.machine_id for reading in ordered}
    plan = Plan(fleet.tenant_id, received_at, readings=readings, reporting=machine_ids)
    draft = Draft(fleet, plan)
    events = plan.events
    healths: dict[str, MachineHealth | None] = {}
    for machine_id in machine_ids:
        health = healths[machine_id] = draft.health(machine_id)
        if health is not None:
            health.last_seen = received_at
    replay = _settle_quiet(draft, ordered, healths)
    if not replay and not any(h is not None and h.status is MachineStatus.OFFLINE for h in healths.values()):
        # The usual batch: no rule to replay and no machine coming back online, so the events are the
        # readings' updates and nothing else (the loop below would find exactly that, at twice the cost).
        events.extend(wire.sensor_updates(ordered))
        return plan
    sensor_update = wire.sensor_update
    series_ts = fleet.series_ts
    for reading in ordered:
        machine_id = reading.machine_id
        events.append(sensor_update(machine_id, reading.metric_name, reading.value, reading.unit, reading.ts))
        health = healths[machine_id]
        if health is None:
            continue
        # A reading can change the status only by ending `offline` or by opening or closing an alert;
        # deriving it for every other reading would be wasted work on the ingest hot path.
        changed = health.status is MachineStatus.OFFLINE
        series_key = (machine_id, reading.metric_name)
        rules = replay.get(series_key)
        if rules:
            # Late: older than the series' newest before this batch (see _settle_quiet); threshold rules skip it.
            since = series_ts.get(series_key)
            late = since is not None and reading.ts < since
            for rule in rules:
                changed = _evaluate(draft, rule, health, reading, late, new_id) or changed
        if changed:
            draft.restatus(health, received_at)
    return plan


def _settle_quiet(
    draft: Draft, ordered: Sequence[Reading], healths: dict[str, MachineHealth | None]
) -> dict[tuple[str, str], list[Rule]]:
    """Settle every (machine, metric) whose readings cannot move its rules (core.rules.evaluate_quiet) in
    one step, and note each series' newest measurement time; returns the rules that must see the other series
    reading by reading.

    Hot path (bench M4): most batches breach nothing, and replaying each reading through each rule
    was the largest part of planning. A threshold rule with no state kept (idle) is not visited unless a value
    breaches it (core.rules.SeriesRules): nothing is made or written for it (bench planning, 1,000 rules on
    every machine).
    """
    series: dict[tuple[str, str], list[Reading]] = defaultdict(list)
    for reading in ordered:
        series[(reading.machine_id, reading.metric_name)].append(reading)
    replay: dict[tuple[str, str], list[Rule]] = {}
    fleet = draft.fleet
    series_rules, series_ts, with_state = fleet.series_rules, fleet.series_ts, fleet.states.rules_on
    plan = draft.plan
    for series_key, members in series.items():
        machine_id, metric_name = series_key
        # `ordered` is sorted by measurement time (a stable sort), so the newest is the series' last. Noted for
        # every series, machines in maintenance too: after a restart the stored readings say the same.
        newest = members[-1].ts
        plan.series_ts[series_key] = newest
        health = healths[machine_id]
        if health is None or health.maintenance:
            continue
        bank = series_rules(machine_id, metric_name)
        if not bank.rules:
            continue
        values = [reading.value for reading in members]
        current = values
        since = series_ts.get(series_key)
        if since is not None and members[0].ts < since:
            # Late readings, older than the series' newest before this batch: threshold rules are past them.
            current = [reading.value for reading in members if reading.ts >= since]
        settled = {}
        waiting: list[Rule] = []
        stamps: list[int] | None = None
        for rule in bank.others:
            key = (rule.id, machine_id)
            state = draft.state(key)
            if rule.condition is Condition.NO_DATA:
                # Any reading feeds a no_data rule; one with an open alert resolves it, reading by reading below.
                if state.open_alert_id is None:
                    settled[key] = no_data.seen(state, plan.at, newest)[0]
                else:
                    waiting.append(rule)
                continue
            # A predictive rule's detector takes the series' batch here, once; a settled one has seen them.
            detector = draft.detector(rule, key)
            if stamps is None:
                stamps = [reading.ts for reading in members]
            after = predictive.settle(rule, detector, state, stamps, values)
            if after is None:
                waiting.append(rule)
            else:
                settled[key] = after
        if current:  # else every reading is late: threshold rules have nothing to see
            lowest, highest = min(current), max(current)
            threshold = bank.threshold
            # Threshold rules with a state (something pending, or flap memory) settle one by one...
            visited: set[str] = set()
            for rule_id in with_state(machine_id) or ():
                kept = threshold.get(rule_id)
                if kept is None:
                    continue  # a rule of another metric, or not a threshold rule
                visited.add(rule_id)
                key = (rule_id, machine_id)
                state = draft.state(key)
                after = evaluate_quiet(kept, state, lowest, highest)
                if after is None:
                    waiting.append(kept)
                elif after is not state:
                    settled[key] = after
            # ... and of the others (idle, no state kept) only those a value breaches see the readings.
            waiting += [rule for rule in bank.breached(lowest, highest) if rule.id not in visited]
        if waiting:
            if len(waiting) > 1:
                position = bank.position
                waiting.sort(key=lambda rule: position[rule.id])  # the series' order, as events are published
            replay[series_key] = waiting
        if settled:
            plan.states.update(settled)
    if replay and fleet.predictive_rules:
        draft.series = series  # predictive detectors need to know a reading is the newest of its series' batch
    return replay


def _evaluate(
    draft: Draft, rule: Rule, health: MachineHealth, reading: Reading, late: bool, new_id: Callable[[], str]
) -> bool:
    """Apply one reading to one rule; True when an alert opened or cleared. `late`: the reading is older than
    its series' newest before the batch, which a threshold rule is past."""
    if rule.kind is not RuleKind.THRESHOLD:
        return _evaluate_predictive(draft, rule, health, reading, new_id)
    key = (rule.id, reading.machine_id)
    if rule.condition is Condition.NO_DATA:
        return no_data.resolve_seen(draft, rule, key, draft.plan.at, reading.ts)
    if late:
        return False
    before = draft.state(key)
    state, transition = evaluate(rule, before, reading.value, reading.ts, new_id)
    flapping = False
    if rule.flap_threshold is not None or before.flap_fires or before.flapping:
        decision = flap_decide(rule, before, state, transition, rule.breaches(reading.value), reading.ts)
        state, transition, flapping = decision.state, decision.transition, decision.flapping
    draft.plan.states[key] = state
    if isinstance(transition, AlertOpened):
        message = rule.render_message(reading.value)
        _opened_alert(
            draft,
            rule,
            health,
            transition.alert_id,
            message,
            reading.value,
            rule.threshold,
            reading.ts,
            flapping=flapping,
        )
        if flapping:
            fires = state.flap_fires
            draft.plan.events.append(
                wire.alert_flapping(transition.alert_id, health.machine_id, rule.id, len(fires), fires[0])
            )
    elif isinstance(transition, AlertCleared):
        draft.resolve(health, transition.alert_id, rule.severity.value, transition.ts, SYSTEM, Resolution.CLEARED)
    return transition is not None


def _opened_alert(
    draft: Draft,
    rule: Rule,
    health: MachineHealth,
    alert_id: str,
    message: str,
    value: float,
    threshold: float,
    at: int,
    predicted_crossing_at: int | None = None,
    *,
    flapping: bool = False,
) -> None:
    """A rule opened an alert on the machine at measurement time `at`: record it, count it, announce it."""
    alert = StoredAlert(
        id=alert_id,
        tenant_id=rule.tenant_id,
        rule_id=rule.id,
        machine_id=health.machine_id,
        metric_name=rule.metric_name,
        severity=rule.severity,
        message=message,
        metric_value=value,
        threshold_value=threshold,
        state=AlertState.ACTIVE,
        created_at=at,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        resolved_by=None,
        resolution=None,
        predicted_crossing_at=predicted_crossing_at,
        flapping=flapping,
    )
    draft.record(TransitionKind.OPENED, alert, SYSTEM, at, details={"severity": alert.severity.value})
    health.active[alert.id] = alert.severity
    draft.plan.events.append(
        wire.alert(alert.id, alert.machine_id, alert.severity.value, message, value, threshold, at)
    )


def _evaluate_predictive(
    draft: Draft, rule: Rule, health: MachineHealth, reading: Reading, new_id: Callable[[], str]
) -> bool:
    """Apply one reading to one anomaly or forecast rule; True when an alert opened or cleared."""
    key = (rule.id, reading.machine_id)
    plan = draft.plan
    members = draft.series.get((reading.machine_id, reading.metric_name)) if draft.series else None
    state = draft.state(key)
    detector = draft.detector(rule, key)
    outcome = predictive.evaluate(
        rule,
        detector,
        state,
        reading.value,
        reading.ts,
        new_id,
        unit=reading.unit,
        newest_of_batch=not members or reading.ts >= members[-1].ts,
    )
    plan.states[key] = outcome.state
    transition = outcome.transition
    if isinstance(transition, predictive.PredictiveOpened):
        _opened_alert(
            draft,
            rule,
            health,
            transition.alert_id,
            transition.message[:MAX_ALERT_MESSAGE_LENGTH],
            transition.value,
            transition.threshold_value,
            transition.ts,
            predicted_crossing_at=transition.predicted_crossing_us,
        )
        return True
    if isinstance(transition, predictive.PredictiveUpdated):
        if transition.predicted_crossing_us is not None:
            plan.predictions.append((transition.alert_id, transition.message, transition.predicted_crossing_us))
        plan.events.append(
            wire.alert_updated(
                transition.alert_id, reading.machine_id, transition.message, transition.predicted_crossing_us
            )
        )
        return False
    if isinstance(transition, AlertCleared):
        draft.resolve(health, transition.alert_id, rule.severity.value, transition.ts, SYSTEM, Resolution.CLEARED)
        return True
    return False
