"""The lifecycle planners, pure: acknowledge with a comment, shelve and unshelve, escalation raising severity;
every transition carries its actor, time, comment and details for the audit trail."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from haltless.core.alerts import AlertState
from haltless.core.models import MachineStatus
from haltless.core.plan import SYSTEM, TransitionKind
from haltless.core.planners.alerts import plan_acknowledge, plan_resolve
from haltless.core.planners.lifecycle import plan_escalated, plan_shelve, plan_unshelve, raised
from haltless.core.rules import Condition, Severity
from haltless.errors import Conflict, NotFound
from tests.core.test_planners import _fleet, _open_alert
from tests.core.test_rules import make_rule

SECOND = 1_000_000


def _events(plan: object) -> list[dict[str, object]]:
    return [orjson.loads(event) for event in plan.events]  # type: ignore[attr-defined]


def test_acknowledge_with_a_comment_keeps_it_on_the_alert_the_transition_and_the_event() -> None:
    fleet = _fleet(make_rule(Condition.GT, 85.0, 0.0, 0.0))
    alert = _open_alert(fleet)
    plan, after = plan_acknowledge(fleet, alert, "u1", 7, "bearing swap at 14:00")
    [transition] = plan.alert_transitions
    assert (transition.kind, transition.actor, transition.at, transition.comment) == (
        TransitionKind.ACKNOWLEDGED,
        "u1",
        7,
        "bearing swap at 14:00",
    )
    assert (after.state, after.acknowledge_comment) == (AlertState.ACKNOWLEDGED, "bearing swap at 14:00")
    [event] = _events(plan)
    assert event["comment"] == "bearing swap at 14:00"


def test_acknowledge_without_a_comment_sends_the_event_as_before() -> None:
    fleet = _fleet(make_rule(Condition.GT, 85.0, 0.0, 0.0))
    plan, _ = plan_acknowledge(fleet, _open_alert(fleet), "u1", 7)
    [event] = _events(plan)
    assert list(event) == ["type", "alert_id", "machine_id", "acknowledged_by", "acknowledged_at"]


def test_opened_and_resolved_transitions_carry_their_details() -> None:
    fleet = _fleet(make_rule(Condition.GT, 85.0, 0.0, 0.0))
    alert = _open_alert(fleet)
    plan, _ = plan_resolve(fleet, alert, "u1", 9, "false alarm: sensor cable")
    [transition] = plan.alert_transitions
    assert (transition.kind, transition.actor, transition.comment, transition.details) == (
        TransitionKind.RESOLVED,
        "u1",
        "false alarm: sensor cable",
        {"resolution": "manual"},
    )


def test_shelve_sets_the_end_records_it_and_announces_it() -> None:
    fleet = _fleet(make_rule(Condition.GT, 85.0, 0.0, 0.0))
    alert = _open_alert(fleet)
    plan, after = plan_shelve(fleet, alert, "u1", 10 * SECOND, 600 * SECOND, "waiting for parts")
    assert after.shelved_until == 610 * SECOND and after.shelved_at(609 * SECOND) and not after.shelved_at(610 * SECOND)
    [transition] = plan.alert_transitions
    assert (transition.kind, transition.actor, transition.comment) == (
        TransitionKind.SHELVED,
        "u1",
        "waiting for parts",
    )
    assert transition.details == {"until": "1970-01-01T00:10:10Z"}
    [event] = _events(plan)
    assert event["type"] == "alert_shelved" and event["shelved_until"] == "1970-01-01T00:10:10Z"
    fleet.apply(plan)
    assert fleet.open_alerts[alert.id].shelved_until == 610 * SECOND

    off, unshelved = plan_unshelve(fleet, after, "u2", 20 * SECOND)
    assert unshelved.shelved_until is None
    assert [(t.kind, t.actor) for t in off.alert_transitions] == [(TransitionKind.UNSHELVED, "u2")]
    assert [e["type"] for e in _events(off)] == ["alert_unshelved"]
    # A shelf that already ended, or none: unshelving changes nothing.
    nothing, same = plan_unshelve(fleet, after, "u2", 700 * SECOND)
    assert nothing.alert_transitions == [] and nothing.events == [] and same == after


def test_shelving_needs_an_open_alert() -> None:
    fleet = _fleet(make_rule(Condition.GT, 85.0, 0.0, 0.0))
    alert = _open_alert(fleet)
    with pytest.raises(NotFound):
        plan_shelve(fleet, None, "u1", 1, SECOND, None)
    _plan, closed = plan_resolve(fleet, alert, "u1", 2)
    with pytest.raises(Conflict):
        plan_shelve(fleet, closed, "u1", 3, SECOND, None)
    with pytest.raises(Conflict):
        plan_unshelve(fleet, closed, "u1", 3)


def test_escalation_raises_the_severity_and_the_status_follows() -> None:
    fleet = _fleet(replace(make_rule(Condition.GT, 85.0, 0.0, 0.0), severity=Severity.WARNING))
    alert = _open_alert(fleet)
    assert fleet.health[alert.machine_id].status is MachineStatus.WARNING
    plan = plan_escalated(fleet, alert.id, "p1", Severity.CRITICAL, 50 * SECOND)
    [transition] = plan.alert_transitions
    assert (transition.kind, transition.actor, transition.alert.severity, transition.details) == (
        TransitionKind.SEVERITY_RAISED,
        SYSTEM,
        Severity.CRITICAL,
        {"from": "warning", "to": "critical", "policy_id": "p1"},
    )
    escalated, status = _events(plan)
    assert (escalated["type"], escalated["severity"], escalated["previous_severity"]) == (
        "alert_escalated",
        "critical",
        "warning",
    )
    assert (status["type"], status["new_status"]) == ("machine_status", "critical")
    fleet.apply(plan)
    assert fleet.open_alerts[alert.id].severity is Severity.CRITICAL

    # Already at (or above) the target: announced, not changed; a closed alert: nothing at all.
    again = plan_escalated(fleet, alert.id, "p1", Severity.WARNING, 60 * SECOND)
    assert again.alert_transitions == [] and [e["type"] for e in _events(again)] == ["alert_escalated"]
    assert plan_escalated(fleet, "no-such-alert", "p1", Severity.CRITICAL, 60 * SECOND).events == []


def test_escalation_never_lowers_a_severity() -> None:
    assert raised(Severity.CRITICAL, Severity.WARNING) is Severity.CRITICAL
    assert raised(Severity.INFO, Severity.WARNING) is Severity.WARNING
    assert raised(Severity.WARNING, None) is Severity.WARNING
