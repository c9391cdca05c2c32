"""Notification channels, policies, silences, the outbox and deliveries in the database."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from haltless.core.notifications import (
    AlertChange,
    AlertFacts,
    GroupBy,
    Kind,
    Matchers,
    PlannedNotification,
    Policy,
    Silence,
    Track,
    Waiting,
)
from haltless.core.secret_box import Sealing, SecretBox, SecretsUnreadable
from haltless.store.tables import (
    alerts,
    machines,
    notification_channels,
    notification_events,
    notification_groups,
    notification_policies,
    notification_tracks,
    notification_waiting,
    notifications,
    silences,
)


def new_id() -> str:
    return str(uuid.uuid4())


# ---- channels -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    tenant_id: str
    name: str
    type: str  # webhook | email
    config: dict[str, Any]
    # Opened: the store seals them on write and opens them on read (core/secret_box.py); nothing above sees ciphertext.
    secrets: dict[str, Any]
    created_at: int
    updated_at: int
    # True when none of the configured keys opens the stored secrets (`secrets` is then empty).
    unreadable: bool = False


def _channel(row: Any, box: SecretBox) -> Channel:
    try:
        secrets, unreadable = box.open(row.secrets), False
    except SecretsUnreadable:
        secrets, unreadable = {}, True
    return Channel(
        row.id, row.tenant_id, row.name, row.type, dict(row.config), secrets, row.created_at, row.updated_at, unreadable
    )


def _sealed(channel: Channel, box: SecretBox) -> dict[str, str]:
    return box.seal(channel.secrets, channel.updated_at // 1_000_000)


async def insert_channel(conn: AsyncConnection, channel: Channel, box: SecretBox) -> None:
    await conn.execute(
        insert(notification_channels).values(
            id=channel.id,
            tenant_id=channel.tenant_id,
            name=channel.name,
            type=channel.type,
            config=channel.config,
            secrets=_sealed(channel, box),
            created_at=channel.created_at,
            updated_at=channel.updated_at,
        )
    )


async def update_channel(conn: AsyncConnection, channel: Channel, box: SecretBox) -> None:
    await conn.execute(
        update(notification_channels)
        .where(notification_channels.c.id == channel.id)
        .values(name=channel.name, config=channel.config, secrets=_sealed(channel, box), updated_at=channel.updated_at)
    )


async def get_channel(conn: AsyncConnection, box: SecretBox, *, tenant_id: str, channel_id: str) -> Channel | None:
    row = (
        await conn.execute(
            select(notification_channels).where(
                notification_channels.c.id == channel_id, notification_channels.c.tenant_id == tenant_id
            )
        )
    ).first()
    return None if row is None else _channel(row, box)


async def list_channels(conn: AsyncConnection, box: SecretBox, *, tenant_id: str) -> list[Channel]:
    rows = await conn.execute(
        select(notification_channels)
        .where(notification_channels.c.tenant_id == tenant_id)
        .order_by(notification_channels.c.created_at, notification_channels.c.id)
    )
    return [_channel(row, box) for row in rows]


async def channels_by_id(conn: AsyncConnection, box: SecretBox, ids: Iterable[str]) -> dict[str, Channel]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await conn.execute(select(notification_channels).where(notification_channels.c.id.in_(wanted)))
    return {row.id: _channel(row, box) for row in rows}


async def secrets_sealing(conn: AsyncConnection, box: SecretBox) -> dict[Sealing, int]:
    """How many channels' stored secrets are sealed with the first key, another one, not at all, or unreadably."""
    counts = dict.fromkeys(Sealing, 0)
    for row in await conn.execute(select(notification_channels.c.secrets)):
        counts[box.sealing(row.secrets)] += 1
    return counts


async def reseal_secrets(conn: AsyncConnection, box: SecretBox, *, now_s: int) -> dict[Sealing, int]:
    """Seal every channel's secrets with the first key (legacy plain ones too); unreadable ones are left as they
    are. Returns how each stood before: a second run finds them all current and writes nothing."""
    counts = dict.fromkeys(Sealing, 0)
    table = notification_channels
    rows = await conn.execute(select(table.c.id, table.c.secrets, table.c.updated_at))
    for row in list(rows):
        sealing = box.sealing(row.secrets)
        counts[sealing] += 1
        if sealing in (Sealing.OLD_KEY, Sealing.PLAINTEXT):
            # Unless a server changed the channel meanwhile (it sealed the new secrets with the first key itself).
            await conn.execute(
                update(table)
                .where(table.c.id == row.id, table.c.updated_at == row.updated_at)
                .values(secrets=box.seal(box.open(row.secrets), now_s))
            )
    return counts


async def existing_channel_ids(conn: AsyncConnection, *, tenant_id: str, ids: Iterable[str]) -> set[str]:
    rows = await conn.execute(
        select(notification_channels.c.id).where(
            notification_channels.c.tenant_id == tenant_id, notification_channels.c.id.in_(set(ids))
        )
    )
    return {row.id for row in rows}


async def channel_ids_of(conn: AsyncConnection, tenant_ids: Iterable[str]) -> set[str]:
    rows = await conn.execute(
        select(notification_channels.c.id).where(notification_channels.c.tenant_id.in_(set(tenant_ids)))
    )
    return {row.id for row in rows}


async def delete_channel(conn: AsyncConnection, channel_id: str) -> None:
    await conn.execute(delete(notification_channels).where(notification_channels.c.id == channel_id))


# ---- policies -------------------------------------------------------------------------------------------------


def matchers_json(matchers: Matchers) -> dict[str, list[str]]:
    return {
        "machine_ids": list(matchers.machine_ids),
        "tags": list(matchers.tags),
        "rule_ids": list(matchers.rule_ids),
        "severities": list(matchers.severities),
        "metric_names": list(matchers.metric_names),
        "kinds": list(matchers.kinds),
    }


def matchers_from(data: Mapping[str, Any]) -> Matchers:
    return Matchers(
        machine_ids=tuple(data.get("machine_ids") or ()),
        tags=tuple(data.get("tags") or ()),
        rule_ids=tuple(data.get("rule_ids") or ()),
        severities=tuple(data.get("severities") or ()),
        metric_names=tuple(data.get("metric_names") or ()),
        kinds=tuple(data.get("kinds") or ()),
    )


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    policy: Policy
    name: str
    created_at: int
    updated_at: int


def _policy(row: Any) -> StoredPolicy:
    policy = Policy(
        id=row.id,
        tenant_id=row.tenant_id,
        matchers=matchers_from(row.matchers),
        channel_ids=tuple(row.channel_ids),
        is_default=row.is_default,
        group_by=GroupBy(row.group_by),
        group_wait=row.group_wait,
        group_interval=row.group_interval,
        position=row.position,
        repeat_interval=row.repeat_interval,
        escalate_after=row.escalate_after,
        escalation_channel_ids=tuple(row.escalation_channel_ids),
        escalation_severity=row.escalation_severity,
    )
    return StoredPolicy(policy, row.name, row.created_at, row.updated_at)


def _policy_values(stored: StoredPolicy) -> dict[str, Any]:
    policy = stored.policy
    return {
        "name": stored.name,
        "matchers": matchers_json(policy.matchers),
        "channel_ids": list(policy.channel_ids),
        "is_default": policy.is_default,
        "group_by": policy.group_by.value,
        "group_wait": policy.group_wait,
        "group_interval": policy.group_interval,
        "position": policy.position,
        "repeat_interval": policy.repeat_interval,
        "escalate_after": policy.escalate_after,
        "escalation_channel_ids": list(policy.escalation_channel_ids),
        "escalation_severity": policy.escalation_severity,
        "updated_at": stored.updated_at,
    }


async def insert_policy(conn: AsyncConnection, stored: StoredPolicy) -> None:
    await conn.execute(
        insert(notification_policies).values(
            id=stored.policy.id,
            tenant_id=stored.policy.tenant_id,
            created_at=stored.created_at,
            **_policy_values(stored),
        )
    )


async def update_policy(conn: AsyncConnection, stored: StoredPolicy) -> None:
    await conn.execute(
        update(notification_policies)
        .where(notification_policies.c.id == stored.policy.id)
        .values(**_policy_values(stored))
    )


async def get_policy(conn: AsyncConnection, *, tenant_id: str, policy_id: str) -> StoredPolicy | None:
    row = (
        await conn.execute(
            select(notification_policies).where(
                notification_policies.c.id == policy_id, notification_policies.c.tenant_id == tenant_id
            )
        )
    ).first()
    return None if row is None else _policy(row)


async def list_policies(conn: AsyncConnection, *, tenant_ids: Iterable[str]) -> list[StoredPolicy]:
    rows = await conn.execute(
        select(notification_policies)
        .where(notification_policies.c.tenant_id.in_(set(tenant_ids)))
        .order_by(notification_policies.c.position, notification_policies.c.created_at)
    )
    return [_policy(row) for row in rows]


async def delete_policy(conn: AsyncConnection, policy_id: str) -> None:
    await conn.execute(delete(notification_policies).where(notification_policies.c.id == policy_id))
    await conn.execute(delete(notification_waiting).where(notification_waiting.c.policy_id == policy_id))
    await conn.execute(delete(notification_groups).where(notification_groups.c.policy_id == policy_id))
    await conn.execute(delete(notification_tracks).where(notification_tracks.c.policy_id == policy_id))


# ---- silences -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredSilence:
    silence: Silence
    comment: str
    created_by: str
    created_at: int


def _silence(row: Any) -> StoredSilence:
    silence = Silence(row.id, row.tenant_id, matchers_from(row.matchers), row.starts_at, row.ends_at)
    return StoredSilence(silence, row.comment, row.created_by, row.created_at)


async def insert_silence(conn: AsyncConnection, stored: StoredSilence) -> None:
    s = stored.silence
    await conn.execute(
        insert(silences).values(
            id=s.id,
            tenant_id=s.tenant_id,
            matchers=matchers_json(s.matchers),
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            comment=stored.comment,
            created_by=stored.created_by,
            created_at=stored.created_at,
        )
    )


async def update_silence_end(conn: AsyncConnection, silence_id: str, ends_at: int) -> None:
    await conn.execute(update(silences).where(silences.c.id == silence_id).values(ends_at=ends_at))


async def get_silence(conn: AsyncConnection, *, tenant_id: str, silence_id: str) -> StoredSilence | None:
    row = (
        await conn.execute(select(silences).where(silences.c.id == silence_id, silences.c.tenant_id == tenant_id))
    ).first()
    return None if row is None else _silence(row)


async def list_silences(conn: AsyncConnection, *, tenant_ids: Iterable[str]) -> list[StoredSilence]:
    rows = await conn.execute(
        select(silences).where(silences.c.tenant_id.in_(set(tenant_ids))).order_by(silences.c.starts_at, silences.c.id)
    )
    return [_silence(row) for row in rows]


async def delete_silence(conn: AsyncConnection, silence_id: str) -> None:
    await conn.execute(delete(silences).where(silences.c.id == silence_id))


async def silenced_alert_ids(conn: AsyncConnection, *, tenant_id: str) -> list[str]:
    """Alerts of which a change was silenced, newest first (the silence's `alerts`)."""
    rows = await conn.execute(
        select(notification_events.c.alert_id, notification_events.c.silence_id)
        .where(notification_events.c.tenant_id == tenant_id, notification_events.c.state == "silenced")
        .order_by(notification_events.c.id.desc())
    )
    return [row.alert_id for row in rows]


async def changes_of_alert(
    conn: AsyncConnection, *, tenant_id: str, alert_id: str
) -> list[tuple[str, int, str, str | None]]:
    """The alert's recorded changes: (kind, at, state, silence id), oldest first."""
    rows = await conn.execute(
        select(
            notification_events.c.kind,
            notification_events.c.at,
            notification_events.c.state,
            notification_events.c.silence_id,
        )
        .where(notification_events.c.tenant_id == tenant_id, notification_events.c.alert_id == alert_id)
        .order_by(notification_events.c.id)
    )
    return [(row.kind, row.at, row.state, row.silence_id) for row in rows]


async def alerts_silenced_by(conn: AsyncConnection, *, silence_id: str) -> list[str]:
    rows = await conn.execute(
        select(notification_events.c.alert_id)
        .where(notification_events.c.silence_id == silence_id)
        .order_by(notification_events.c.id)
    )
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(row.alert_id)
    return list(seen)


# ---- the outbox of alert changes ------------------------------------------------------------------------------


async def alert_facts(conn: AsyncConnection, alert_ids: Sequence[str]) -> dict[str, tuple[str, AlertFacts]]:
    """Snapshots of stored alerts with their machine's name and tags, and each one's tenant."""
    if not alert_ids:
        return {}
    rows = await conn.execute(
        select(alerts, machines.c.name.label("machine_name"), machines.c.tags.label("machine_tags"))
        .join(machines, machines.c.id == alerts.c.machine_id)
        .where(alerts.c.id.in_(set(alert_ids)))
    )
    return {
        row.id: (
            row.tenant_id,
            AlertFacts(
                alert_id=row.id,
                machine_id=row.machine_id,
                severity=row.severity,
                message=row.message,
                metric_value=row.metric_value,
                threshold_value=row.threshold_value,
                created_at=row.created_at,
                machine_name=row.machine_name,
                metric_name=row.metric_name,
                state="flapping" if row.flapping and row.state == "active" else row.state,
                rule_id=row.rule_id,
                tags=tuple(row.machine_tags or ()),
                flapping=bool(row.flapping),
            ),
        )
        for row in rows
    }


async def insert_events(conn: AsyncConnection, rows: Sequence[tuple[str, Kind, AlertFacts, int]]) -> None:
    """Record alert changes (tenant, kind, alert, at) in the outbox."""
    if rows:
        await conn.execute(
            insert(notification_events),
            [
                {
                    "tenant_id": t,
                    "alert_id": a.alert_id,
                    "kind": k.value,
                    "alert": a.to_json(),
                    "at": at,
                    "state": "new",
                }
                for t, k, a, at in rows
            ],
        )


def _change(row: Any) -> AlertChange:
    return AlertChange(row.id, row.tenant_id, Kind(row.kind), AlertFacts.from_json(row.alert), row.at)


async def new_events(conn: AsyncConnection, *, limit: int) -> list[AlertChange]:
    rows = await conn.execute(
        select(notification_events)
        .where(notification_events.c.state == "new")
        .order_by(notification_events.c.id)
        .limit(limit)
    )
    return [_change(row) for row in rows]


async def routing_work(conn: AsyncConnection) -> bool:
    """Whether routing has anything to look at: new changes, waiting entries or followed-up alerts."""
    for table, condition in (
        (notification_events, notification_events.c.state == "new"),
        (notification_waiting, None),
        (notification_tracks, None),
    ):
        query = select(literal(1)).select_from(table)
        if condition is not None:
            query = query.where(condition)
        if (await conn.execute(query.limit(1))).first() is not None:
            return True
    return False


async def waiting_entries(conn: AsyncConnection) -> tuple[list[Waiting], dict[int, AlertChange]]:
    """Every entry waiting in a group, and the changes they stand for."""
    rows = list(
        await conn.execute(
            select(notification_waiting, notification_events).join(
                notification_events, notification_events.c.id == notification_waiting.c.event_id
            )
        )
    )
    entries = [
        Waiting(row.event_id, row.policy_id, row.group_key, row._mapping[notification_waiting.c.at]) for row in rows
    ]
    changes = {
        row.event_id: AlertChange(
            row.event_id,
            row._mapping[notification_events.c.tenant_id],
            Kind(row.kind),
            AlertFacts.from_json(row.alert),
            row._mapping[notification_events.c.at],
        )
        for row in rows
    }
    return entries, changes


async def previously_silenced(conn: AsyncConnection, alert_ids: Iterable[str]) -> set[str]:
    wanted = set(alert_ids)
    if not wanted:
        return set()
    rows = await conn.execute(
        select(notification_events.c.alert_id).where(
            notification_events.c.alert_id.in_(wanted), notification_events.c.state == "silenced"
        )
    )
    return {row.alert_id for row in rows}


async def group_sends(conn: AsyncConnection, tenant_ids: Iterable[str]) -> dict[tuple[str, str], int]:
    rows = await conn.execute(select(notification_groups).where(notification_groups.c.tenant_id.in_(set(tenant_ids))))
    return {(row.policy_id, row.group_key): row.last_sent_at for row in rows}


async def save_cycle(
    conn: AsyncConnection,
    *,
    routed: Iterable[int],
    silenced: Sequence[tuple[int, str]],
    unrouted: Sequence[int],
    waiting: Sequence[Waiting],
    tenants: Mapping[int, str],
    sent: Sequence[Waiting],
    group_sends_at: Mapping[tuple[str, str], tuple[str, int]],
    planned: Sequence[PlannedNotification],
    now: int,
) -> None:
    """Write one dispatcher cycle's plan (see core.notifications.plan_cycle)."""
    routed_ids = set(routed)
    if routed_ids:
        await conn.execute(
            update(notification_events).where(notification_events.c.id.in_(routed_ids)).values(state="routed")
        )
    for event_id, silence_id in silenced:
        await conn.execute(
            update(notification_events)
            .where(notification_events.c.id == event_id)
            .values(state="silenced", silence_id=silence_id)
        )
    if unrouted:
        await conn.execute(
            update(notification_events).where(notification_events.c.id.in_(set(unrouted))).values(state="unrouted")
        )
    if waiting:
        await conn.execute(
            insert(notification_waiting),
            [
                {
                    "event_id": w.event_id,
                    "policy_id": w.policy_id,
                    "tenant_id": tenants[w.event_id],
                    "group_key": w.group_key,
                    "at": w.at,
                }
                for w in waiting
            ],
        )
    for entry in sent:
        await conn.execute(
            delete(notification_waiting).where(
                notification_waiting.c.event_id == entry.event_id, notification_waiting.c.policy_id == entry.policy_id
            )
        )
    for (policy_id, key), (tenant_id, at) in group_sends_at.items():
        done = await conn.execute(
            update(notification_groups)
            .where(notification_groups.c.policy_id == policy_id, notification_groups.c.group_key == key)
            .values(last_sent_at=at)
        )
        if done.rowcount == 0:
            await conn.execute(
                insert(notification_groups).values(
                    policy_id=policy_id, group_key=key, tenant_id=tenant_id, last_sent_at=at
                )
            )
    await insert_notifications(conn, planned, now)


# ---- follow-ups (reminders, escalation) ----------------------------------------------------------------------


async def tracks_of(conn: AsyncConnection, tenant_ids: Iterable[str]) -> list[Track]:
    rows = await conn.execute(select(notification_tracks).where(notification_tracks.c.tenant_id.in_(set(tenant_ids))))
    return [
        Track(
            row.policy_id,
            row.tenant_id,
            AlertFacts.from_json(row.alert),
            row.firing_at,
            row.last_sent_at,
            row.escalated,
        )
        for row in rows
    ]


async def tracked_tenants(conn: AsyncConnection) -> set[str]:
    rows = await conn.execute(select(notification_tracks.c.tenant_id).distinct())
    return {row.tenant_id for row in rows}


async def save_tracks(
    conn: AsyncConnection,
    *,
    new: Sequence[Track],
    sent: Mapping[tuple[str, str], int],
    escalated: Sequence[tuple[str, str]],
    untracked: Iterable[str],
) -> None:
    if new:
        await conn.execute(
            insert(notification_tracks),
            [
                {
                    "policy_id": t.policy_id,
                    "alert_id": t.alert.alert_id,
                    "tenant_id": t.tenant_id,
                    "alert": t.alert.to_json(),
                    "firing_at": t.firing_at,
                    "last_sent_at": t.last_sent_at,
                    "escalated": t.escalated,
                }
                for t in new
            ],
        )
    for (policy_id, alert_id), at in sent.items():
        await conn.execute(
            update(notification_tracks)
            .where(notification_tracks.c.policy_id == policy_id, notification_tracks.c.alert_id == alert_id)
            .values(last_sent_at=at)
        )
    for policy_id, alert_id in escalated:
        await conn.execute(
            update(notification_tracks)
            .where(notification_tracks.c.policy_id == policy_id, notification_tracks.c.alert_id == alert_id)
            .values(escalated=True)
        )
    done = set(untracked)
    if done:
        await conn.execute(delete(notification_tracks).where(notification_tracks.c.alert_id.in_(done)))


# ---- deliveries -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    tenant_id: str
    channel_id: str
    kind: Kind
    alerts: tuple[AlertFacts, ...]
    state: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: int
    last_error: str | None
    created_at: int
    delivered_at: int | None


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.id,
        row.tenant_id,
        row.channel_id,
        Kind(row.kind),
        tuple(AlertFacts.from_json(a) for a in row.alerts),
        row.state,
        row.attempts,
        row.next_attempt_at,
        row.last_error,
        row.created_at,
        row.delivered_at,
    )


async def insert_notifications(conn: AsyncConnection, planned: Sequence[PlannedNotification], now: int) -> None:
    if planned:
        await conn.execute(
            insert(notifications),
            [
                {
                    "id": n.id,
                    "tenant_id": n.tenant_id,
                    "channel_id": n.channel_id,
                    "kind": n.kind.value,
                    "alerts": [a.to_json() for a in n.alerts],
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "claimed_until": None,
                    "last_error": None,
                    "created_at": n.created_at,
                    "delivered_at": None,
                }
                for n in planned
            ],
        )


async def claim_due(conn: AsyncConnection, *, now: int, lease_until: int, limit: int) -> list[Delivery]:
    """Take due pending deliveries for one try (PostgreSQL: rows another process holds are skipped)."""
    query = (
        select(notifications)
        .where(
            notifications.c.state == "pending",
            notifications.c.next_attempt_at <= now,
            or_(notifications.c.claimed_until.is_(None), notifications.c.claimed_until <= now),
        )
        .order_by(notifications.c.next_attempt_at, notifications.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = [_delivery(row) for row in await conn.execute(query)]
    if rows:
        await conn.execute(
            update(notifications).where(notifications.c.id.in_([d.id for d in rows])).values(claimed_until=lease_until)
        )
    return rows


async def next_delivery_due(conn: AsyncConnection) -> int | None:
    row = (
        await conn.execute(
            select(notifications.c.next_attempt_at)
            .where(notifications.c.state == "pending")
            .order_by(notifications.c.next_attempt_at)
            .limit(1)
        )
    ).first()
    return None if row is None else int(row.next_attempt_at)


async def finish_delivery(
    conn: AsyncConnection,
    delivery_id: str,
    *,
    state: str,
    attempts: int,
    next_attempt_at: int,
    error: str | None,
    delivered_at: int | None,
) -> None:
    await conn.execute(
        update(notifications)
        .where(notifications.c.id == delivery_id)
        .values(
            state=state,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            claimed_until=None,
            last_error=None if error is None else error[:500],
            delivered_at=delivered_at,
        )
    )


async def list_deliveries(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    state: str | None,
    channel_id: str | None,
    after: tuple[int, str] | None,
    limit: int,
) -> list[Delivery]:
    query = select(notifications).where(notifications.c.tenant_id == tenant_id)
    if state is not None:
        query = query.where(notifications.c.state == state)
    if channel_id is not None:
        query = query.where(notifications.c.channel_id == channel_id)
    if after is not None:
        query = query.where(
            or_(
                notifications.c.created_at < after[0],
                and_(notifications.c.created_at == after[0], notifications.c.id < after[1]),
            )
        )
    rows = await conn.execute(query.order_by(notifications.c.created_at.desc(), notifications.c.id.desc()).limit(limit))
    return [_delivery(row) for row in rows]


async def get_delivery(conn: AsyncConnection, *, tenant_id: str, delivery_id: str) -> Delivery | None:
    row = (
        await conn.execute(
            select(notifications).where(notifications.c.id == delivery_id, notifications.c.tenant_id == tenant_id)
        )
    ).first()
    return None if row is None else _delivery(row)


async def prune(conn: AsyncConnection, *, before: int) -> None:
    """Forget finished notifications and handled alert changes made before `before` (µs)."""
    await conn.execute(
        delete(notifications).where(notifications.c.state != "pending", notifications.c.created_at < before)
    )
    waiting = select(notification_waiting.c.event_id)
    await conn.execute(
        delete(notification_events).where(
            notification_events.c.state != "new",
            notification_events.c.at < before,
            notification_events.c.id.not_in(waiting),
        )
    )
