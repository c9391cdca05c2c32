"""Notifications, pure: what an alert change is, which policies route it, which silences hold it, when a group
of changes becomes one notification, how a failed delivery is retried, and what a receiver gets.

The dispatcher (server/service/notifier.py) feeds `plan_cycle` the changes recorded since its last cycle, the entries
still waiting in their groups, the tenant's policies and silences and the groups' last sends, with `now`; it
writes back what the plan says. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_network
from urllib.parse import urlsplit

from haltless.core.backoff import Backoff
from haltless.core.timefmt import format_micros

MICROS = 1_000_000


class Kind(StrEnum):
    """Why a notification is sent (the webhook body's `kind`)."""

    # An alert opened.
    FIRING = "firing"
    # An alert closed (cleared, resolved by hand, or its rule changed).
    RESOLVED = "resolved"
    # Someone acknowledged an alert.
    ACKNOWLEDGED = "acknowledged"
    # An alert still firing and unacknowledged after the policy's repeat_interval.
    REMINDER = "reminder"
    # An alert unacknowledged for the policy's escalate_after: sent to the escalation channels.
    ESCALATED = "escalated"
    # Sent by `POST /api/v1/notification-channels/{id}/test`.
    TEST = "test"


class GroupBy(StrEnum):
    """Which changes of one policy travel together in one notification."""

    # One notification per rule (per kind).
    RULE = "rule"
    # One notification per machine (per kind).
    MACHINE = "machine"
    # Everything the policy routes (per kind) in one notification.
    NONE = "none"


class WebhookFormat(StrEnum):
    """How a webhook channel renders the notification."""

    # The Haltless JSON contract (docs/notifications.md).
    HALTLESS = "haltless"
    # Incoming webhooks of Slack, Mattermost and Microsoft Teams.
    SLACK = "slack"
    MATTERMOST = "mattermost"
    TEAMS = "teams"


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """An alert as a notification shows it: the `alert` event's fields plus names and state."""

    alert_id: str
    machine_id: str
    severity: str
    message: str
    metric_value: float
    threshold_value: float
    created_at: int  # µs
    machine_name: str
    metric_name: str
    state: str
    rule_id: str | None = None
    tags: tuple[str, ...] = ()
    flapping: bool = False  # opened while its rule was flapping (its `state` then reads `flapping` while active)

    def to_json(self) -> dict[str, object]:
        """The snapshot kept in the outbox (times as µs)."""
        return {
            "alert_id": self.alert_id,
            "machine_id": self.machine_id,
            "severity": self.severity,
            "message": self.message,
            "metric_value": self.metric_value,
            "threshold_value": self.threshold_value,
            "created_at": self.created_at,
            "machine_name": self.machine_name,
            "metric_name": self.metric_name,
            "state": self.state,
            "rule_id": self.rule_id,
            "tags": list(self.tags),
            "flapping": self.flapping,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AlertFacts:
        tags = data.get("tags") or []
        assert isinstance(tags, list)
        rule_id = data.get("rule_id")
        return cls(
            alert_id=str(data["alert_id"]),
            machine_id=str(data["machine_id"]),
            severity=str(data["severity"]),
            message=str(data["message"]),
            metric_value=float(data["metric_value"]),  # type: ignore[arg-type]
            threshold_value=float(data["threshold_value"]),  # type: ignore[arg-type]
            created_at=int(data["created_at"]),  # type: ignore[call-overload]
            machine_name=str(data["machine_name"]),
            metric_name=str(data["metric_name"]),
            state=str(data["state"]),
            rule_id=None if rule_id is None else str(rule_id),
            tags=tuple(str(tag) for tag in tags),
            flapping=bool(data.get("flapping", False)),
        )


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One recorded alert transition, as the outbox holds it."""

    event_id: int
    tenant_id: str
    kind: Kind
    alert: AlertFacts
    at: int  # µs, the notifier's clock when the change was committed


@dataclass(frozen=True, slots=True)
class Matchers:
    """What a policy or silence applies to; an empty list matches anything, several lists must all match."""

    machine_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # any of them
    rule_ids: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    metric_names: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    def matches(self, kind: Kind, alert: AlertFacts) -> bool:
        return (
            (not self.machine_ids or alert.machine_id in self.machine_ids)
            and (not self.tags or any(tag in alert.tags for tag in self.tags))
            and (not self.rule_ids or alert.rule_id in self.rule_ids)
            and (not self.severities or alert.severity in self.severities)
            and (not self.metric_names or alert.metric_name in self.metric_names)
            and (not self.kinds or kind.value in self.kinds)
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """Where a tenant's alert changes go and how they are bundled."""

    id: str
    tenant_id: str
    matchers: Matchers
    channel_ids: tuple[str, ...]
    is_default: bool = False
    group_by: GroupBy = GroupBy.RULE
    group_wait: float = 30.0  # seconds the first change of a group waits for the rest of the burst
    group_interval: float = 300.0  # seconds between two notifications of one group
    position: int = 0
    # Seconds after which an alert still firing and unacknowledged is sent again (`reminder`); None: never.
    repeat_interval: float | None = None
    # Seconds after which an alert still unacknowledged goes to `escalation_channel_ids` (`escalated`); None: never.
    escalate_after: float | None = None
    escalation_channel_ids: tuple[str, ...] = ()
    # The severity an escalated alert is raised to (`info`, `warning`, `critical`; never lowered); None: unchanged.
    escalation_severity: str | None = None

    @property
    def follows_up(self) -> bool:
        """True when firing alerts are tracked after their notification (reminders or escalation)."""
        return self.repeat_interval is not None or (
            self.escalate_after is not None and bool(self.escalation_channel_ids)
        )


@dataclass(frozen=True, slots=True)
class Silence:
    """Alerts matching `matchers` while the silence is on are recorded, marked silenced, and not notified."""

    id: str
    tenant_id: str
    matchers: Matchers
    starts_at: int  # µs
    ends_at: int  # µs

    def covers(self, change: AlertChange) -> bool:
        return self.starts_at <= change.at < self.ends_at and self.matchers.matches(change.kind, change.alert)


def route(change: AlertChange, policies: Sequence[Policy]) -> list[Policy]:
    """Every non-default policy that matches, in order of position; when none does, the default ones."""
    ordered = sorted(policies, key=lambda policy: (policy.position, policy.id))
    chosen = [p for p in ordered if not p.is_default and p.matchers.matches(change.kind, change.alert)]
    if chosen:
        return chosen
    return [p for p in ordered if p.is_default and p.matchers.matches(change.kind, change.alert)]


def group_key(policy: Policy, change: AlertChange) -> str:
    """The group a change joins within its policy: its kind and the policy's group_by value."""
    if policy.group_by is GroupBy.RULE:
        subject = change.alert.rule_id or "-"
    elif policy.group_by is GroupBy.MACHINE:
        subject = change.alert.machine_id
    else:
        subject = "*"
    return f"{change.kind.value}/{subject}"


@dataclass(frozen=True, slots=True)
class Waiting:
    """A change waiting in a group of a policy for the group to be sent."""

    event_id: int
    policy_id: str
    group_key: str
    at: int  # µs, when it joined


@dataclass(frozen=True, slots=True)
class Track:
    """A firing alert a policy follows up (reminders, escalation) until it is resolved or acknowledged."""

    policy_id: str
    tenant_id: str
    alert: AlertFacts
    firing_at: int  # µs, when the firing change was recorded
    last_sent_at: int | None  # µs, its last notification (None: still waiting in its group)
    escalated: bool = False


@dataclass(frozen=True, slots=True)
class PlannedNotification:
    """One message to one channel."""

    id: str
    tenant_id: str
    channel_id: str
    kind: Kind
    alerts: tuple[AlertFacts, ...]
    created_at: int


@dataclass(slots=True)
class CyclePlan:
    """What one dispatcher cycle writes."""

    silenced: list[tuple[int, str]] = field(default_factory=list)  # event id, silence id
    unrouted: list[int] = field(default_factory=list)  # event ids no policy took
    waiting: list[Waiting] = field(default_factory=list)  # new entries
    sent: list[Waiting] = field(default_factory=list)  # entries that left with a notification
    notifications: list[PlannedNotification] = field(default_factory=list)
    group_sends: dict[tuple[str, str], int] = field(default_factory=dict)  # (policy, group key) -> sent at
    new_tracks: list[Track] = field(default_factory=list)
    tracks_sent: dict[tuple[str, str], int] = field(default_factory=dict)  # (policy, alert) -> sent at
    tracks_escalated: list[tuple[str, str]] = field(default_factory=list)  # (policy, alert)
    untracked: set[str] = field(default_factory=set)  # alerts resolved or acknowledged: follow-ups end
    next_due: int | None = None  # µs, when something waiting becomes due

    def due_at(self, at: int) -> None:
        self.next_due = at if self.next_due is None else min(self.next_due, at)


def plan_cycle(
    *,
    changes: Sequence[AlertChange],
    waiting: Sequence[Waiting],
    known: Mapping[int, AlertChange],
    policies: Sequence[Policy],
    silences: Sequence[Silence],
    silenced_alerts: Iterable[str],
    last_sent: Mapping[tuple[str, str], int],
    now: int,
    new_id: Callable[[], str],
    tracks: Sequence[Track] = (),
    shelved: Mapping[str, int] | None = None,
) -> CyclePlan:
    """Route new changes (or silence them) into groups, send each group that is due, then send reminders and
    escalations of the firing alerts policies follow up (`tracks`) that nobody acknowledged.

    `changes` are newly recorded (not yet routed); `waiting` are the entries still in their groups, whose changes
    `known` holds (with the new ones); `silenced_alerts` are alerts whose firing was silenced: their later
    changes are silenced too. A group is due `group_wait` after its first entry, or `group_interval` after its
    previous send when that was recent. `shelved`: alert id -> until when (µs) for alerts shelved at `now`; their
    reminders and escalation wait until the shelf ends, then resume.
    """
    plan = CyclePlan()
    by_policy = {policy.id: policy for policy in policies}
    silenced_ids = set(silenced_alerts)
    entries = list(waiting)
    superseded: set[tuple[str, str]] = set()  # (policy, alert) whose changes a flapping alert stands for
    for change in changes:
        if change.kind is not Kind.FIRING:
            plan.untracked.add(change.alert.alert_id)
        silence = next((s for s in silences if s.covers(change)), None)
        if silence is None and change.alert.alert_id in silenced_ids:
            silence = next((s for s in silences if s.matchers.matches(change.kind, change.alert)), None)
            plan.silenced.append((change.event_id, silence.id if silence is not None else "silenced"))
            continue
        if silence is not None:
            plan.silenced.append((change.event_id, silence.id))
            silenced_ids.add(change.alert.alert_id)
            continue
        routed = route(change, policies)
        if not routed:
            plan.unrouted.append(change.event_id)
        for policy in routed:
            if (policy.id, change.alert.alert_id) in superseded:
                continue  # a later change of an alert a flap stands for (its resolved, recorded after the flap)
            if change.kind is Kind.FIRING and change.alert.flapping:
                superseded |= {(policy.id, a) for a in _supersede(plan, entries, known, change, policy.id)}
            entry = Waiting(change.event_id, policy.id, group_key(policy, change), change.at)
            plan.waiting.append(entry)
            entries.append(entry)
            if change.kind is Kind.FIRING and policy.follows_up:
                plan.new_tracks.append(Track(policy.id, change.tenant_id, change.alert, change.at, None))

    groups: dict[tuple[str, str], list[Waiting]] = defaultdict(list)
    for entry in entries:
        groups[(entry.policy_id, entry.group_key)].append(entry)
    for key, members in groups.items():
        owner = by_policy.get(key[0])
        if owner is None:  # deleted meanwhile: its waiting changes go nowhere
            plan.sent.extend(members)
            continue
        due = group_due(owner, min(m.at for m in members), last_sent.get(key))
        if due > now:
            plan.due_at(due)
            continue
        alerts = tuple(known[m.event_id].alert for m in sorted(members, key=lambda m: (m.at, m.event_id)))
        first = known[members[0].event_id]
        for channel_id in owner.channel_ids:
            plan.notifications.append(
                PlannedNotification(new_id(), first.tenant_id, channel_id, first.kind, alerts, now)
            )
        plan.sent.extend(members)
        plan.group_sends[key] = now
        if first.kind is Kind.FIRING and owner.follows_up:
            for alert in alerts:
                plan.tracks_sent[(owner.id, alert.alert_id)] = now
    _follow_up(plan, [*tracks, *plan.new_tracks], by_policy, now, new_id, shelved or {})
    return plan


def _supersede(
    plan: CyclePlan, entries: list[Waiting], known: Mapping[int, AlertChange], flap: AlertChange, policy_id: str
) -> set[str]:
    """A flapping alert's firing stands for its flap (core/flapping.py): the earlier alerts of the same rule and
    machine whose firing this policy has not sent yet are dropped from its groups, their resolved changes too.
    One notification for the flap, not one per fire and clear; what was sent already stays sent. Returns the
    alerts dropped."""
    rule_id, machine_id = flap.alert.rule_id, flap.alert.machine_id
    if rule_id is None:
        return set()
    unsent = set()
    for entry in entries:
        change = known.get(entry.event_id)
        if (
            entry.policy_id == policy_id
            and change is not None
            and change.kind is Kind.FIRING
            and change.alert.rule_id == rule_id
            and change.alert.machine_id == machine_id
        ):
            unsent.add(change.alert.alert_id)
    if not unsent:
        return unsent
    dropped = [
        e
        for e in entries
        if e.policy_id == policy_id and (c := known.get(e.event_id)) is not None and c.alert.alert_id in unsent
    ]
    new = set(map(id, plan.waiting))
    for entry in dropped:
        entries.remove(entry)
        if id(entry) in new:
            plan.waiting.remove(entry)
        else:
            plan.sent.append(entry)
    plan.new_tracks = [t for t in plan.new_tracks if not (t.policy_id == policy_id and t.alert.alert_id in unsent)]
    return unsent


def _follow_up(
    plan: CyclePlan,
    tracks: Sequence[Track],
    by_policy: Mapping[str, Policy],
    now: int,
    new_id: Callable[[], str],
    shelved: Mapping[str, int],
) -> None:
    """Reminders and escalations that are due, one notification per policy and channel; a shelved alert's wait
    until its shelf ends (then what fell due meanwhile goes out at once)."""
    reminders: dict[str, list[Track]] = defaultdict(list)
    escalations: dict[str, list[Track]] = defaultdict(list)
    for track in tracks:
        policy = by_policy.get(track.policy_id)
        if policy is None or track.alert.alert_id in plan.untracked:
            continue
        shelf_end = shelved.get(track.alert.alert_id)
        if shelf_end is not None and shelf_end > now:
            plan.due_at(shelf_end)
            continue
        key = (track.policy_id, track.alert.alert_id)
        if policy.escalate_after is not None and policy.escalation_channel_ids and not track.escalated:
            due = track.firing_at + int(policy.escalate_after * MICROS)
            if due <= now:
                escalations[policy.id].append(track)
            else:
                plan.due_at(due)
        sent_at = plan.tracks_sent.get(key, track.last_sent_at)
        if policy.repeat_interval is not None and sent_at is not None:
            due = sent_at + int(max(policy.repeat_interval, 1.0) * MICROS)
            if due <= now:
                reminders[policy.id].append(track)
            else:
                plan.due_at(due)
    for policy_id, members in escalations.items():
        policy = by_policy[policy_id]
        alerts = tuple(t.alert for t in sorted(members, key=lambda t: (t.firing_at, t.alert.alert_id)))
        for channel_id in policy.escalation_channel_ids:
            plan.notifications.append(
                PlannedNotification(new_id(), members[0].tenant_id, channel_id, Kind.ESCALATED, alerts, now)
            )
        plan.tracks_escalated.extend((policy_id, t.alert.alert_id) for t in members)
    for policy_id, members in reminders.items():
        policy = by_policy[policy_id]
        alerts = tuple(t.alert for t in sorted(members, key=lambda t: (t.firing_at, t.alert.alert_id)))
        for channel_id in policy.channel_ids:
            plan.notifications.append(
                PlannedNotification(new_id(), members[0].tenant_id, channel_id, Kind.REMINDER, alerts, now)
            )
        for t in members:
            plan.tracks_sent[(policy_id, t.alert.alert_id)] = now
        assert policy.repeat_interval is not None
        plan.due_at(now + int(max(policy.repeat_interval, 1.0) * MICROS))


def group_due(policy: Policy, first_at: int, last_sent: int | None) -> int:
    """When a group whose oldest waiting entry joined at `first_at` is sent."""
    interval = int(policy.group_interval * MICROS)
    if last_sent is not None and last_sent + interval > first_at:
        return last_sent + interval
    return first_at + int(policy.group_wait * MICROS)


# ---- retries -------------------------------------------------------------------------------------------------

# Retry n waits 5 s doubling up to 5 min, between half and all of it (the jitter spreads retries of many
# notifications).
RETRY_BACKOFF = Backoff(initial=5.0, maximum=300.0, jitter=0.5)
# A receiver's Retry-After is honoured up to this; beyond it the next try is at the cap's pace.
RETRY_AFTER_CAP_SECONDS = 3600.0


def next_attempt(
    *, attempts: int, now: int, created_at: int, max_age: float, jitter: float, retry_after: float | None
) -> int | None:
    """When to try again after the `attempts`-th failed try (RETRY_BACKOFF, at least the receiver's
    Retry-After); None when that would be past `max_age` seconds after the notification was made.

    `jitter` is the random draw in [0, 1) for RETRY_BACKOFF: 0 waits the whole backoff, near 1 half of it.
    """
    delay = RETRY_BACKOFF.jittered(attempts, jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_SECONDS))
    at = now + int(delay * MICROS)
    if at > created_at + int(max_age * MICROS):
        return None
    return at


# ---- what receivers get ---------------------------------------------------------------------------------------


def alert_url(public_url: str, alert: AlertFacts) -> str:
    """Where the alert is seen on the dashboard (its machine's page, which lists the machine's alerts)."""
    return f"{public_url.rstrip('/')}/#/machines/{alert.machine_id}"


def webhook_body(
    *, notification_id: str, kind: Kind, tenant_id: str, sent_at: int, alerts: Sequence[AlertFacts], public_url: str
) -> dict[str, object]:
    """The webhook JSON document (docs/notifications.md: keep it stable)."""
    return {
        "notification_id": notification_id,
        "kind": kind.value,
        "tenant_id": tenant_id,
        "sent_at": format_micros(sent_at),
        "alerts": [
            {
                "alert_id": a.alert_id,
                "machine_id": a.machine_id,
                "severity": a.severity,
                "message": a.message,
                "metric_value": a.metric_value,
                "threshold_value": a.threshold_value,
                "created_at": format_micros(a.created_at),
                "machine_name": a.machine_name,
                "metric_name": a.metric_name,
                "state": a.state,
                "url": alert_url(public_url, a),
            }
            for a in alerts
        ],
    }


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`X-Haltless-Signature`: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` keyed by the secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def summary(kind: Kind, alerts: Sequence[AlertFacts]) -> str:
    """One line: what happened to how many alerts, and the first of them."""
    if not alerts:
        return f"[Haltless] {kind.value.upper()}: test notification"
    first = alerts[0]
    more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
    return f"[Haltless] {kind.value.upper()}: {first.severity} {first.message} on {first.machine_name}{more}"


def _alert_line(alert: AlertFacts) -> str:
    return (
        f"- {alert.severity} {alert.machine_name} {alert.metric_name} = {alert.metric_value:g} "
        f"(threshold {alert.threshold_value:g}): {alert.message} [{alert.state}, {format_micros(alert.created_at)}]"
    )


def plain_text(kind: Kind, alerts: Sequence[AlertFacts], public_url: str) -> str:
    """The email's (and chat message's) text."""
    lines = [summary(kind, alerts), ""]
    for alert in alerts:
        lines.append(_alert_line(alert))
        lines.append(f"  {alert_url(public_url, alert)}")
    if not alerts:
        lines.append("This channel works: Haltless can reach it.")
    return "\n".join(lines) + "\n"


def html_text(kind: Kind, alerts: Sequence[AlertFacts], public_url: str) -> str:
    """The email's HTML part; every value is escaped."""
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(cell))}</td>"
            for cell in (
                a.severity,
                a.machine_name,
                a.metric_name,
                f"{a.metric_value:g}",
                f"{a.threshold_value:g}",
                a.message,
                a.state,
                format_micros(a.created_at),
            )
        )
        + f'<td><a href="{html.escape(alert_url(public_url, a))}">open</a></td></tr>'
        for a in alerts
    )
    head = "".join(
        f"<th>{name}</th>"
        for name in ("Severity", "Machine", "Metric", "Value", "Threshold", "Message", "State", "Since", "")
    )
    table = f"<table><tr>{head}</tr>{rows}</table>" if alerts else "<p>This channel works: Haltless can reach it.</p>"
    return f"<html><body><h3>{html.escape(summary(kind, alerts))}</h3>{table}</body></html>"


def chat_body(fmt: WebhookFormat, kind: Kind, alerts: Sequence[AlertFacts], public_url: str) -> dict[str, object]:
    """The same content for a chat tool's incoming webhook."""
    text = plain_text(kind, alerts, public_url)
    if fmt is WebhookFormat.TEAMS:
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": summary(kind, alerts),
            "title": summary(kind, alerts),
            "text": text.replace("\n", "\n\n"),
        }
    return {"text": text}


# ---- where webhooks may go ------------------------------------------------------------------------------------

# Refused unless HALTLESS_WEBHOOK_ALLOW_NETWORKS says otherwise: the server's own loopback, link-local (cloud
# metadata at 169.254.169.254 and fd00:ec2::254 included), "this network" and multicast.
DEFAULT_DENIED_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "0.0.0.0/8",
    "::/128",
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "224.0.0.0/4",
    "ff00::/8",
)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be sent to, or None: it must parse, with a host and a port in range."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port out of range or not a number)
    except ValueError as exc:
        return f"not a URL: {exc}"
    return None if parts.hostname else "not a URL: it names no host"


def address_refusal(address: IPv4Address | IPv6Address, allowed: Sequence[str]) -> str | None:
    """Why a webhook may not connect to `address`, or None when it may.

    With `allowed` (CIDR networks) set, only those are reachable; without, everything but the default-denied.
    """
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if allowed:
        if any(address in ip_network(network, strict=False) for network in allowed):
            return None
        return f"{address} is outside HALTLESS_WEBHOOK_ALLOW_NETWORKS"
    for network in DEFAULT_DENIED_NETWORKS:
        if address.version == ip_network(network).version and address in ip_network(network):
            return f"{address} is in {network}, which webhooks may not reach (HALTLESS_WEBHOOK_ALLOW_NETWORKS)"
    return None
