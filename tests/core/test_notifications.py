"""The notification planner driven synchronously with a clock in hand, against a small in-memory outbox."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections import defaultdict
from dataclasses import dataclass, field, replace
from ipaddress import ip_address

from hypothesis import given
from hypothesis import strategies as st

from haltless.core.notifications import (
    AlertChange,
    AlertFacts,
    CyclePlan,
    GroupBy,
    Kind,
    Matchers,
    PlannedNotification,
    Policy,
    Silence,
    Track,
    Waiting,
    address_refusal,
    group_key,
    next_attempt,
    plan_cycle,
    route,
    signature,
)

S = 1_000_000
T0 = 1_800_000_000 * S


def _alert(
    n: int, machine: str = "m0", rule: str = "r0", severity: str = "critical", tags: tuple[str, ...] = ()
) -> AlertFacts:
    return AlertFacts(
        alert_id=f"a{n}",
        machine_id=machine,
        severity=severity,
        message="Temperature exceeded threshold",
        metric_value=90.0,
        threshold_value=85.0,
        created_at=T0,
        machine_name=f"Press {machine}",
        metric_name="temperature",
        state="active",
        rule_id=rule,
        tags=tags,
    )


@dataclass
class Outbox:
    """What the store keeps between cycles, applied exactly as server/service/notifier.py writes it."""

    policies: list[Policy]
    silences: list[Silence] = field(default_factory=list)
    known: dict[int, AlertChange] = field(default_factory=dict)
    new: list[AlertChange] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    last_sent: dict[tuple[str, str], int] = field(default_factory=dict)
    tracks: dict[tuple[str, str], Track] = field(default_factory=dict)
    silenced_alerts: set[str] = field(default_factory=set)
    shelved: dict[str, int] = field(default_factory=dict)  # alert id -> shelved until (µs)
    sent: list[PlannedNotification] = field(default_factory=list)
    next_due: int | None = None
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def record(self, kind: Kind, alert: AlertFacts, at: int) -> AlertChange:
        change = AlertChange(next(self.ids), "t1", kind, alert, at)
        self.known[change.event_id] = change
        self.new.append(change)
        return change

    def cycle(self, now: int) -> CyclePlan:
        plan = plan_cycle(
            changes=self.new,
            waiting=self.waiting,
            known=self.known,
            policies=self.policies,
            silences=self.silences,
            silenced_alerts=self.silenced_alerts,
            last_sent=self.last_sent,
            now=now,
            new_id=lambda: f"n{len(self.sent)}-{now}",
            tracks=list(self.tracks.values()),
            shelved={alert_id: until for alert_id, until in self.shelved.items() if until > now},
        )
        self.silenced_alerts |= {self.known[event_id].alert.alert_id for event_id, _ in plan.silenced}
        self.new = []
        gone = {(w.event_id, w.policy_id) for w in plan.sent}
        self.waiting = [w for w in [*self.waiting, *plan.waiting] if (w.event_id, w.policy_id) not in gone]
        self.last_sent.update(plan.group_sends)
        for track in plan.new_tracks:
            self.tracks[(track.policy_id, track.alert.alert_id)] = track
        for key, at in plan.tracks_sent.items():
            self.tracks[key] = replace(self.tracks[key], last_sent_at=at)
        for key in plan.tracks_escalated:
            self.tracks[key] = replace(self.tracks[key], escalated=True)
        self.tracks = {k: t for k, t in self.tracks.items() if k[1] not in plan.untracked}
        self.sent.extend(plan.notifications)
        self.next_due = plan.next_due
        return plan

    def run_until(self, now: int) -> None:
        """The dispatcher's timer: a cycle at every due time up to `now`, then one at `now`."""
        while self.next_due is not None and self.next_due <= now:
            self.cycle(self.next_due)
        self.cycle(now)


def _policy(**overrides: object) -> Policy:
    values: dict[str, object] = {
        "id": "p1",
        "tenant_id": "t1",
        "matchers": Matchers(),
        "channel_ids": ("hook", "mail"),
        "is_default": True,
    }
    values.update(overrides)
    return Policy(**values)  # type: ignore[arg-type]


def test_a_burst_of_200_alerts_is_one_notification_per_channel_after_group_wait() -> None:
    box = Outbox([_policy(group_by=GroupBy.NONE, group_wait=30)])
    for n in range(200):
        box.record(Kind.FIRING, _alert(n, machine=f"m{n // 4}", rule=f"r{n % 4}"), T0 + (n % 2) * S)
        if n % 50 == 49:
            box.run_until(T0 + (n // 100) * S)
    box.run_until(T0 + 30 * S - 1)
    assert box.sent == []  # the wait counts from the first alert, at T0: due at T0 + 30 s
    box.run_until(T0 + 31 * S)
    assert [(n.channel_id, len(n.alerts), n.created_at) for n in box.sent] == [
        ("hook", 200, T0 + 30 * S),
        ("mail", 200, T0 + 30 * S),
    ]


def test_group_by_rule_splits_and_group_interval_spaces_later_sends() -> None:
    box = Outbox([_policy(channel_ids=("hook",), group_by=GroupBy.RULE, group_wait=10, group_interval=300)])
    box.record(Kind.FIRING, _alert(1, rule="r1"), T0)
    box.record(Kind.FIRING, _alert(2, rule="r2"), T0)
    box.run_until(T0 + 10 * S)
    assert sorted(a.alert_id for n in box.sent for a in n.alerts) == ["a1", "a2"]
    assert len(box.sent) == 2
    box.record(Kind.FIRING, _alert(3, rule="r1"), T0 + 20 * S)
    box.run_until(T0 + 309 * S)
    assert len(box.sent) == 2
    box.run_until(T0 + 400 * S)
    assert box.sent[-1].alerts[0].alert_id == "a3"
    assert box.sent[-1].created_at == T0 + 310 * S


def test_routing_prefers_matching_policies_over_the_default() -> None:
    critical = _policy(id="crit", is_default=False, matchers=Matchers(severities=("critical",), tags=("press",)))
    default = _policy(id="default")
    by_kind = _policy(id="acks", is_default=False, matchers=Matchers(kinds=("acknowledged",)))
    policies = [default, critical, by_kind]
    pressing = AlertChange(1, "t1", Kind.FIRING, _alert(1, tags=("press", "line-2")), T0)
    other = AlertChange(2, "t1", Kind.FIRING, _alert(2, severity="warning", tags=("press",)), T0)
    ack = AlertChange(3, "t1", Kind.ACKNOWLEDGED, _alert(3, severity="warning"), T0)
    assert [p.id for p in route(pressing, policies)] == ["crit"]
    assert [p.id for p in route(other, policies)] == ["default"]
    assert [p.id for p in route(ack, policies)] == ["acks"]
    assert group_key(critical, pressing) == "firing/r0"
    assert group_key(replace(critical, group_by=GroupBy.MACHINE), pressing) == "firing/m0"


def test_a_future_silence_holds_only_what_happens_inside_it() -> None:
    hour = 3600 * S
    silence = Silence("s1", "t1", Matchers(machine_ids=("m0",)), T0 + hour, T0 + 2 * hour)
    box = Outbox([_policy(channel_ids=("hook",), group_wait=0)], silences=[silence])
    for n, at in enumerate((T0 + 600 * S, T0 + hour, T0 + 90 * 60 * S, T0 + 2 * hour, T0 + 150 * 60 * S)):
        box.record(Kind.FIRING, _alert(n), at)
        box.run_until(at)
    assert [n.alerts[0].alert_id for n in box.sent] == ["a0", "a3", "a4"]
    assert box.silenced_alerts == {"a1", "a2"}
    box.record(Kind.RESOLVED, _alert(1), T0 + 3 * hour)  # the end of a silenced alert is silenced too
    box.run_until(T0 + 3 * hour)
    assert len(box.sent) == 3


def test_reminders_repeat_until_acknowledged() -> None:
    box = Outbox([_policy(channel_ids=("hook",), group_wait=0, repeat_interval=600)])
    box.record(Kind.FIRING, _alert(1), T0)
    box.run_until(T0)
    box.run_until(T0 + 1900 * S)
    assert [(n.kind, n.created_at) for n in box.sent] == [
        (Kind.FIRING, T0),
        (Kind.REMINDER, T0 + 600 * S),
        (Kind.REMINDER, T0 + 1200 * S),
        (Kind.REMINDER, T0 + 1800 * S),
    ]
    box.record(Kind.ACKNOWLEDGED, _alert(1), T0 + 1900 * S)
    box.run_until(T0 + 5000 * S)
    assert [n.kind for n in box.sent[4:]] == [Kind.ACKNOWLEDGED]
    assert box.tracks == {}


def test_an_unacknowledged_alert_escalates_exactly_at_n_minutes() -> None:
    box = Outbox([_policy(channel_ids=("hook",), group_wait=30, escalate_after=300, escalation_channel_ids=("boss",))])
    box.record(Kind.FIRING, _alert(1), T0)
    box.record(Kind.FIRING, _alert(2), T0 + 100 * S)
    box.run_until(T0 + 100 * S)
    assert [n.kind for n in box.sent] == [Kind.FIRING]
    box.run_until(T0 + 299 * S)
    assert box.next_due == T0 + 300 * S  # the dispatcher sleeps until exactly then
    box.record(Kind.ACKNOWLEDGED, _alert(2), T0 + 350 * S)
    box.run_until(T0 + 1000 * S)
    escalated = [n for n in box.sent if n.kind is Kind.ESCALATED]
    assert [(n.channel_id, n.created_at, [a.alert_id for a in n.alerts]) for n in escalated] == [
        ("boss", T0 + 300 * S, ["a1"])
    ]


def test_a_shelved_alert_gets_no_reminder_or_escalation_until_its_shelf_ends() -> None:
    """Shelved from the start until 1000 s: the reminder due at 600 s and the escalation due at 300 s both wait, then
    go out exactly when the shelf ends; reminders go on at their pace after it. The unshelved alert is unaffected."""
    box = Outbox(
        [
            _policy(
                channel_ids=("hook",),
                group_wait=0,
                repeat_interval=600,
                escalate_after=300,
                escalation_channel_ids=("boss",),
            )
        ]
    )
    box.record(Kind.FIRING, _alert(1), T0)
    box.record(Kind.FIRING, _alert(2), T0)
    box.run_until(T0)
    box.shelved["a1"] = T0 + 1000 * S
    box.run_until(T0 + 999 * S)
    held = [(n.kind, n.created_at, [a.alert_id for a in n.alerts]) for n in box.sent[1:]]
    assert held == [(Kind.ESCALATED, T0 + 300 * S, ["a2"]), (Kind.REMINDER, T0 + 600 * S, ["a2"])]
    assert box.next_due == T0 + 1000 * S  # the dispatcher wakes exactly when the shelf ends
    box.run_until(T0 + 1000 * S)
    after = [(n.kind, n.created_at, [a.alert_id for a in n.alerts]) for n in box.sent[3:]]
    assert after == [(Kind.ESCALATED, T0 + 1000 * S, ["a1"]), (Kind.REMINDER, T0 + 1000 * S, ["a1"])]
    box.run_until(T0 + 1600 * S)
    assert [(n.kind, n.created_at, [a.alert_id for a in n.alerts]) for n in box.sent[5:]] == [
        (Kind.REMINDER, T0 + 1200 * S, ["a2"]),
        (Kind.REMINDER, T0 + 1600 * S, ["a1"]),
    ]


steps = st.lists(
    st.one_of(
        st.tuples(st.just("fire"), st.integers(0, 3), st.integers(0, 2)),
        st.tuples(st.just("resolve"), st.integers(0, 3), st.integers(0, 2)),
        st.tuples(st.just("wait"), st.integers(0, 400), st.just(0)),
    ),
    max_size=40,
)


@given(
    steps=steps,
    group_by=st.sampled_from(list(GroupBy)),
    group_wait=st.sampled_from([0.0, 10.0, 30.0]),
    group_interval=st.sampled_from([0.0, 60.0, 300.0]),
)
def test_every_change_is_sent_once_never_early_and_groups_keep_their_interval(
    steps: list[tuple[str, int, int]], group_by: GroupBy, group_wait: float, group_interval: float
) -> None:
    policy = _policy(channel_ids=("hook",), group_by=group_by, group_wait=group_wait, group_interval=group_interval)
    box = Outbox([policy])
    now = T0
    open_alerts: dict[tuple[int, int], AlertFacts] = {}
    recorded: list[AlertChange] = []
    numbers = itertools.count()
    for action, machine, rule in steps:
        key = (machine, rule)
        if action == "wait":
            now += machine * S
        elif action == "fire" and key not in open_alerts:
            open_alerts[key] = _alert(next(numbers), machine=f"m{machine}", rule=f"r{rule}")
            recorded.append(box.record(Kind.FIRING, open_alerts[key], now))
        elif action == "resolve" and key in open_alerts:
            recorded.append(box.record(Kind.RESOLVED, open_alerts.pop(key), now))
        box.run_until(now)
    box.run_until(now + 1000 * S)

    sent = [(n, a) for n in box.sent for a in n.alerts]
    assert sorted((n.kind, a.alert_id) for n, a in sent) == sorted((c.kind, c.alert.alert_id) for c in recorded)
    groups: dict[str, list[int]] = defaultdict(list)
    for notification in box.sent:
        changes = [c for c in recorded if c.kind is notification.kind and c.alert in notification.alerts]
        assert len({group_key(policy, c) for c in changes}) == 1
        assert all(c.at <= notification.created_at for c in changes)
        groups[group_key(policy, changes[0])].append(notification.created_at)
        if len(groups[group_key(policy, changes[0])]) == 1:
            assert notification.created_at >= min(c.at for c in changes) + int(group_wait * S)
    for times in groups.values():
        assert all(later - earlier >= int(group_interval * S) for earlier, later in itertools.pairwise(times))
    assert box.waiting == []


def test_retries_back_off_with_jitter_honour_retry_after_and_stop_at_max_age() -> None:
    delays = [
        next_attempt(attempts=n, now=T0, created_at=T0, max_age=86_400, jitter=0.0, retry_after=None)
        for n in (1, 2, 3, 10)
    ]
    assert [(d - T0) / S for d in delays if d is not None] == [5.0, 10.0, 20.0, 300.0]
    shortest = next_attempt(attempts=1, now=T0, created_at=T0, max_age=86_400, jitter=0.999, retry_after=None)
    assert shortest is not None and 2.5 < (shortest - T0) / S < 2.51
    waited = next_attempt(attempts=1, now=T0, created_at=T0, max_age=86_400, jitter=0.0, retry_after=120)
    assert waited == T0 + 120 * S
    assert next_attempt(attempts=5, now=T0 + 590 * S, created_at=T0, max_age=600, jitter=0.0, retry_after=None) is None


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"kind":"test"}'
    expected = hmac.new(b"secret-0123456789", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert signature("secret-0123456789", "1800000000", body) == f"sha256={expected}"


def test_webhooks_may_not_reach_the_server_itself_by_default() -> None:
    for refused in ("127.0.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "0.0.0.0", "fe80::1", "fd00:ec2::254"):
        assert address_refusal(ip_address(refused), []) is not None, refused
    for allowed in ("10.1.2.3", "192.168.0.10", "93.184.216.34", "2001:db8::1"):
        assert address_refusal(ip_address(allowed), []) is None, allowed
    assert address_refusal(ip_address("127.0.0.1"), ["127.0.0.0/8"]) is None
    assert address_refusal(ip_address("10.1.2.3"), ["127.0.0.0/8"]) is not None
