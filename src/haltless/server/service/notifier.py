"""The notification dispatcher: records alert changes in the outbox, routes and groups them, delivers them.

- `record_alert_changes(conn, ...)` runs inside the transaction of the alert change (server/service/changes.py,
  `persist_alert_transitions`): it only inserts outbox rows, so ingest never waits for a delivery and a crash
  never loses one.
- A background task runs cycles: route new changes through policies and silences into groups, turn due groups
  into notifications (core.notifications.plan_cycle), then claim due notifications and send them, retrying with
  backoff until HALTLESS_NOTIFICATION_MAX_AGE. Several processes: the routing step runs in one process at a
  time (a PostgreSQL advisory transaction lock), each delivery is claimed by one (`FOR UPDATE SKIP LOCKED`).
- Time comes from `clock` (µs), which tests replace to drive group waits and retries without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiosmtplib
import httpx
import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from haltless import __version__
from haltless.core.notifications import (
    AlertChange,
    AlertFacts,
    CyclePlan,
    Kind,
    Policy,
    Silence,
    Track,
    Waiting,
    WebhookFormat,
    address_refusal,
    chat_body,
    html_text,
    next_attempt,
    plain_text,
    plan_cycle,
    signature,
    summary,
    url_problem,
    webhook_body,
)
from haltless.core.plan import SYSTEM, TransitionKind
from haltless.core.retry_after import parse_retry_after
from haltless.core.secret_box import SecretBox
from haltless.core.timefmt import format_micros
from haltless.server.service.background import Background, every
from haltless.settings import Settings
from haltless.store import alert_history
from haltless.store import alerts as alert_store
from haltless.store import notifications as store
from haltless.store.database import begin_write

log = logging.getLogger("haltless.notifications")

Clock = Callable[[], int]

# Changes routed per cycle, and deliveries tried at once.
ROUTE_BATCH = 5000
DELIVERY_BATCH = 50
# How long a claimed delivery is another process's before it may be tried again (a crash mid-send).
CLAIM_LEASE_SECONDS = 120.0
SEND_TIMEOUT_SECONDS = 10.0
# How often finished notifications past HALTLESS_NOTIFICATION_RETENTION_DAYS are deleted.
PRUNE_EVERY_SECONDS = 3600.0
# Any fixed 64-bit number: the routing step's PostgreSQL advisory transaction lock.
_ROUTING_LOCK = 0x6E6F746966790001


def wall_clock() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Escalation:
    """An alert a policy escalated (audited in the routing transaction); `severity`: what to raise it to."""

    tenant_id: str
    alert_id: str
    policy_id: str
    severity: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one try went: delivered, or why not and whether another try can help."""

    ok: bool
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None


class WebhookSender:
    """POSTs to a webhook channel, only to addresses HALTLESS_WEBHOOK_ALLOW_NETWORKS allows (checked on the
    address connected to, after resolving the name at send time)."""

    def __init__(self, settings: Settings) -> None:
        self._allowed = settings.webhook_allow_networks
        self._public_url = settings.public_url
        self._http = httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS, follow_redirects=False)

    async def close(self) -> None:
        await self._http.aclose()

    async def _pinned_url(self, url: str) -> tuple[str, str, str] | str:
        """(url with the checked IP address as host, Host header, name for TLS) or why the URL is refused."""
        problem = url_problem(url)  # one stored before URLs were checked at creation
        if problem is not None:
            return problem
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            return "the URL must be http(s)://host/..."
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=1)  # SOCK_STREAM
        except OSError as exc:
            return f"cannot resolve {host}: {exc}"
        addresses = list(dict.fromkeys(ip_address(info[4][0]) for info in infos))
        for address in addresses:
            refusal = address_refusal(address, self._allowed)
            if refusal is not None:
                return f"refused: {refusal}"
        chosen = addresses[0]
        literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        host_header = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header, host

    async def send(
        self,
        channel: store.Channel,
        notification_id: str,
        kind: Kind,
        tenant_id: str,
        alerts: Sequence[AlertFacts],
        now: int,
    ) -> Outcome:
        pinned = await self._pinned_url(str(channel.config["url"]))
        if isinstance(pinned, str):
            # A bad or refused address stays so until an admin changes it; a name that does not resolve may.
            return Outcome(False, pinned, permanent=not pinned.startswith("cannot resolve"))
        url, host_header, sni = pinned
        fmt = WebhookFormat(channel.config.get("format", WebhookFormat.HALTLESS))
        document: dict[str, object]
        if fmt is WebhookFormat.HALTLESS:
            document = webhook_body(
                notification_id=notification_id,
                kind=kind,
                tenant_id=tenant_id,
                sent_at=now,
                alerts=alerts,
                public_url=self._public_url,
            )
        else:
            document = chat_body(fmt, kind, alerts, self._public_url)
        body = orjson.dumps(document)
        timestamp = str(now // 1_000_000)
        headers = {
            "Host": host_header,
            "Content-Type": "application/json",
            "User-Agent": f"haltless/{__version__}",
            "Idempotency-Key": notification_id,
            "X-Haltless-Timestamp": timestamp,
            "X-Haltless-Signature": signature(str(channel.secrets.get("secret", "")), timestamp, body),
        }
        try:
            response = await self._http.post(url, content=body, headers=headers, extensions={"sni_hostname": sni})
        except httpx.HTTPError as exc:
            return Outcome(False, f"webhook unreachable: {type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            return Outcome(True)
        error = f"webhook answered {response.status_code}"
        retryable = response.status_code in (408, 425, 429) or response.status_code >= 500
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        return Outcome(False, error, permanent=not retryable, retry_after=retry_after)


class EmailSender:
    """Sends one email per notification through the channel's SMTP relay."""

    def __init__(self, settings: Settings) -> None:
        self._public_url = settings.public_url
        self._allowed = settings.smtp_allow_networks

    async def _refusal(self, host: str, port: int) -> str | None:
        """Why the relay may not be reached (HALTLESS_SMTP_ALLOW_NETWORKS), or None."""
        if not self._allowed:
            return None
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=1)  # SOCK_STREAM
        except OSError as exc:
            return f"cannot resolve {host}: {exc}"
        for info in infos:
            address = ip_address(info[4][0])
            if address_refusal(address, self._allowed) is not None:
                return f"refused: {address} is outside HALTLESS_SMTP_ALLOW_NETWORKS"
        return None

    def message(
        self, channel: store.Channel, kind: Kind, alerts: Sequence[AlertFacts], notification_id: str
    ) -> EmailMessage:
        config = channel.config
        message = EmailMessage()
        message["Subject"] = summary(kind, alerts)
        message["From"] = str(config["from_address"])
        message["To"] = ", ".join(config["to_addresses"])
        message["X-Haltless-Notification-Id"] = notification_id
        message.set_content(plain_text(kind, alerts, self._public_url))
        message.add_alternative(html_text(kind, alerts, self._public_url), subtype="html")
        return message

    async def send(
        self,
        channel: store.Channel,
        notification_id: str,
        kind: Kind,
        tenant_id: str,
        alerts: Sequence[AlertFacts],
        now: int,
    ) -> Outcome:
        config = channel.config
        security = config.get("security", "starttls")
        username = config.get("username")
        refusal = await self._refusal(str(config["host"]), int(config["port"]))
        if refusal is not None:
            return Outcome(False, refusal, permanent=not refusal.startswith("cannot resolve"))
        try:
            await aiosmtplib.send(
                self.message(channel, kind, alerts, notification_id),
                hostname=str(config["host"]),
                port=int(config["port"]),
                username=username or None,
                password=channel.secrets.get("password") if username else None,
                use_tls=security == "tls",
                start_tls=security == "starttls",
                timeout=SEND_TIMEOUT_SECONDS,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            return Outcome(False, f"SMTP authentication failed: {exc.code} {exc.message}", permanent=True)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return Outcome(False, f"SMTP relay refused the recipients: {exc}", permanent=True)
        except aiosmtplib.SMTPResponseException as exc:
            return Outcome(False, f"SMTP relay answered {exc.code} {exc.message}", permanent=exc.code >= 500)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(False, f"SMTP relay unreachable: {type(exc).__name__}: {exc}")
        return Outcome(True)


class Notifier:
    """Outbox writer and dispatcher of one process."""

    def __init__(self, engine: AsyncEngine, settings: Settings, *, box: SecretBox, clock: Clock = wall_clock) -> None:
        self._engine = engine
        self._settings = settings
        self.clock = clock
        # Opens channels' stored secrets (the store seals and opens; core/secret_box.py).
        self.box = box
        self.jitter: Callable[[], float] = random.random
        self._webhooks = WebhookSender(settings)
        self._email = EmailSender(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cycles: Background | None = None
        # Cycles started and finished: a test that moved the clock waits for a cycle started after that.
        self.cycles_started = 0
        self.cycles_finished = 0
        self._pruned_at = 0
        # After a cycle escalated alerts (committed): announce them, raise severities (server/service/lifecycle.py).
        self.on_escalated: Callable[[Sequence[Escalation]], Awaitable[None]] | None = None

    # ---- writing the outbox (inside the caller's transaction) --------------------------------------------------

    async def record_alert_changes(
        self,
        conn: AsyncConnection,
        *,
        opened: Sequence[str] = (),
        resolved: Sequence[str] = (),
        acknowledged: Sequence[str] = (),
    ) -> None:
        """For these alert changes, within this transaction, write outbox rows (after the alerts are written)."""
        if not (opened or resolved or acknowledged):
            return
        facts = await store.alert_facts(conn, [*opened, *resolved, *acknowledged])
        at = self.clock()
        rows = []
        for kind, ids in ((Kind.FIRING, opened), (Kind.RESOLVED, resolved), (Kind.ACKNOWLEDGED, acknowledged)):
            for alert_id in ids:
                found = facts.get(alert_id)
                if found is not None:
                    rows.append((found[0], kind, found[1], at))
        await store.insert_events(conn, rows)
        # No wake here: the rows are not committed yet. The unit of work wakes the dispatcher after its commit.

    # ---- the background task ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Run cycles: at once, then every HALTLESS_NOTIFICATION_POLL_INTERVAL, when woken, or when due."""
        self._loop = asyncio.get_running_loop()
        poll = self._settings.notification_poll_interval
        self._cycles = every(poll, self._cycle, name="notification cycle", at_start=True)

    async def stop(self) -> None:
        if self._cycles is not None:
            await self._cycles.stop()
        await self._webhooks.close()

    def wake(self) -> None:
        """Run a cycle soon (call from the dispatcher's event loop)."""
        if self._cycles is not None:
            self._cycles.wake()

    def wake_threadsafe(self) -> None:
        """`wake` from another thread (tests that drive the clock)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.wake)

    async def _cycle(self) -> float | None:
        """One cycle; the seconds until something becomes due, when known (a failed cycle is retried by `every`)."""
        due = await self.run_cycle()
        return None if due is None else (due - self.clock()) / 1_000_000

    async def run_cycle(self) -> int | None:
        """Route, group and deliver what is due now; returns when something next becomes due (µs) if known."""
        self.cycles_started += 1
        now = self.clock()
        try:
            route_due, escalations = await self._route(now)
            if escalations and self.on_escalated is not None:
                await self.on_escalated(escalations)
            await self._deliver(now)
            if now - self._pruned_at >= PRUNE_EVERY_SECONDS * 1_000_000:
                self._pruned_at = now
                async with self._engine.connect() as conn, conn.begin():
                    await begin_write(conn)
                    before = now - int(self._settings.notification_retention_days * 86_400 * 1_000_000)
                    await store.prune(conn, before=before)
            async with self._engine.connect() as conn:
                delivery_due = await store.next_delivery_due(conn)
            dues = [d for d in (route_due, delivery_due) if d is not None]
            return min(dues) if dues else None
        finally:
            self.cycles_finished += 1

    async def _route(self, now: int) -> tuple[int | None, list[Escalation]]:
        # Read first: most cycles find nothing, and on SQLite the write lock would queue ingest behind them.
        async with self._engine.connect() as conn:
            if not await store.routing_work(conn):
                return None, []
        async with self._engine.connect() as conn, conn.begin():
            await begin_write(conn)
            if conn.dialect.name == "postgresql":
                locked = (await conn.execute(select(func.pg_try_advisory_xact_lock(_ROUTING_LOCK)))).scalar_one()
                if not locked:
                    return None, []
            changes = await store.new_events(conn, limit=ROUTE_BATCH)
            waiting, known = await store.waiting_entries(conn)
            followed = await store.tracked_tenants(conn)
            if not changes and not waiting and not followed:
                return None, []
            known.update({c.event_id: c for c in changes})
            tenants = {c.tenant_id for c in changes} | {c.tenant_id for c in known.values()} | followed
            tracks: dict[str, list[Track]] = defaultdict(list)
            for track in await store.tracks_of(conn, tenants):
                tracks[track.tenant_id].append(track)
            shelved = await alert_store.shelved_until(
                conn, (t.alert.alert_id for members in tracks.values() for t in members), now
            )
            policies: dict[str, list[Policy]] = defaultdict(list)
            channels = await store.channel_ids_of(conn, tenants)
            for stored in await store.list_policies(conn, tenant_ids=tenants):
                # A deleted channel drops out of the policies that named it.
                policy = stored.policy
                live = tuple(c for c in policy.channel_ids if c in channels)
                escalation = tuple(c for c in policy.escalation_channel_ids if c in channels)
                policies[policy.tenant_id].append(replace(policy, channel_ids=live, escalation_channel_ids=escalation))
            silences: dict[str, list[Silence]] = defaultdict(list)
            for stored_silence in await store.list_silences(conn, tenant_ids=tenants):
                silences[stored_silence.silence.tenant_id].append(stored_silence.silence)
            silenced_before = await store.previously_silenced(conn, {c.alert.alert_id for c in changes})
            last_sent = await store.group_sends(conn, tenants)
            by_tenant: dict[str, list[AlertChange]] = defaultdict(list)
            for change in changes:
                by_tenant[change.tenant_id].append(change)
            waiting_by_tenant: dict[str, list[Waiting]] = defaultdict(list)
            for entry in waiting:
                waiting_by_tenant[known[entry.event_id].tenant_id].append(entry)
            plans: list[tuple[str, CyclePlan]] = []
            for tenant_id in tenants:
                plans.append(
                    (
                        tenant_id,
                        plan_cycle(
                            changes=by_tenant[tenant_id],
                            waiting=waiting_by_tenant[tenant_id],
                            known=known,
                            policies=policies[tenant_id],
                            silences=silences[tenant_id],
                            silenced_alerts=silenced_before,
                            last_sent=last_sent,
                            now=now,
                            new_id=store.new_id,
                            tracks=tracks[tenant_id],
                            shelved=shelved,
                        ),
                    )
                )
            not_routed = set()
            next_due: int | None = None
            escalations: list[Escalation] = []
            for tenant_id, plan in plans:
                not_routed |= {event_id for event_id, _ in plan.silenced} | set(plan.unrouted)
                if plan.next_due is not None:
                    next_due = plan.next_due if next_due is None else min(next_due, plan.next_due)
                await store.save_cycle(
                    conn,
                    routed=(),
                    silenced=plan.silenced,
                    unrouted=plan.unrouted,
                    waiting=plan.waiting,
                    tenants={event_id: change.tenant_id for event_id, change in known.items()},
                    sent=plan.sent,
                    group_sends_at={key: (tenant_id, at) for key, at in plan.group_sends.items()},
                    planned=plan.notifications,
                    now=now,
                )
                await store.save_tracks(
                    conn,
                    new=plan.new_tracks,
                    sent=plan.tracks_sent,
                    escalated=plan.tracks_escalated,
                    untracked=plan.untracked,
                )
                escalations.extend(await self._audit(conn, plan, known, policies[tenant_id], now))
            await store.save_cycle(
                conn,
                routed=[c.event_id for c in changes if c.event_id not in not_routed],
                silenced=(),
                unrouted=(),
                waiting=(),
                tenants={},
                sent=(),
                group_sends_at={},
                planned=(),
                now=now,
            )
            return next_due, escalations

    async def _audit(
        self,
        conn: AsyncConnection,
        plan: CyclePlan,
        known: Mapping[int, AlertChange],
        policies: Sequence[Policy],
        now: int,
    ) -> list[Escalation]:
        """Write what a cycle did to each alert into its history (actor `system`), in the cycle's transaction:
        `silenced` changes, `notified` (which channels a firing, resolved, acknowledged or reminder notification
        went to) and `escalated`. Returns the escalations, for what follows them once committed."""
        entries: list[alert_history.Entry] = []
        system = SYSTEM
        for event_id, silence_id in plan.silenced:
            change = known[event_id]
            # "silenced" as the id: the silence that held the alert's firing was deleted since.
            silenced: dict[str, Any] = {"change": change.kind.value}
            silenced["silence_id"] = silence_id if silence_id != "silenced" else None
            alert_id = change.alert.alert_id
            entries.append(alert_history.Entry(change.tenant_id, alert_id, "silenced", system, now, None, silenced))
        channels: dict[tuple[str, Kind, str], list[str]] = defaultdict(list)  # (tenant, kind, alert) -> channels
        for notification in plan.notifications:
            if notification.kind in (Kind.ESCALATED, Kind.TEST):
                continue
            for alert in notification.alerts:
                channels[(notification.tenant_id, notification.kind, alert.alert_id)].append(notification.channel_id)
        for (tenant_id, sent_kind, alert_id), channel_ids in channels.items():
            notified: dict[str, Any] = {"notification": sent_kind.value, "channel_ids": channel_ids}
            entries.append(alert_history.Entry(tenant_id, alert_id, "notified", system, now, None, notified))
        by_id = {policy.id: policy for policy in policies}
        escalated = {alert.alert_id for n in plan.notifications if n.kind is Kind.ESCALATED for alert in n.alerts}
        out: list[Escalation] = []
        for policy_id, alert_id in plan.tracks_escalated:
            policy = by_id[policy_id]
            if alert_id not in escalated:
                continue
            count = len(policy.escalation_channel_ids)
            comment = (
                f"unacknowledged for {policy.escalate_after or 0:g} s: sent to {count} escalation "
                f"channel{'s' if count != 1 else ''}"
            )
            details: dict[str, Any] = {"policy_id": policy_id, "channel_ids": list(policy.escalation_channel_ids)}
            escalated_kind = TransitionKind.ESCALATED.value
            entries.append(
                alert_history.Entry(policy.tenant_id, alert_id, escalated_kind, system, now, comment, details)
            )
            out.append(Escalation(policy.tenant_id, alert_id, policy_id, policy.escalation_severity))
        await alert_history.append_existing(conn, entries)
        return out

    async def _deliver(self, now: int) -> None:
        for _ in range(100):  # bounded: a cycle ends, the next one goes on
            async with self._engine.connect() as conn:
                due = await store.next_delivery_due(conn)
            if due is None or due > now:
                return
            async with self._engine.connect() as conn, conn.begin():
                await begin_write(conn)
                claimed = await store.claim_due(
                    conn, now=now, lease_until=now + int(CLAIM_LEASE_SECONDS * 1_000_000), limit=DELIVERY_BATCH
                )
                channels = await store.channels_by_id(conn, self.box, {d.channel_id for d in claimed})
            if not claimed:
                return
            outcomes = await asyncio.gather(*(self._try(channels.get(d.channel_id), d, now) for d in claimed))
            async with self._engine.connect() as conn, conn.begin():
                await begin_write(conn)
                for delivery, outcome in zip(claimed, outcomes, strict=True):
                    await self._settle(conn, delivery, outcome, now)

    async def _try(self, channel: store.Channel | None, delivery: store.Delivery, now: int) -> Outcome:
        if channel is None:
            return Outcome(False, "the channel was deleted", permanent=True)
        if channel.unreadable:
            # Retried until HALTLESS_NOTIFICATION_MAX_AGE: the operator may yet configure the key.
            return Outcome(False, "the channel's secrets cannot be decrypted with the configured HALTLESS_SECRETS_KEYS")
        return await self.send(channel, delivery.id, delivery.kind, delivery.tenant_id, delivery.alerts, now)

    async def send(
        self,
        channel: store.Channel,
        notification_id: str,
        kind: Kind,
        tenant_id: str,
        alerts: Sequence[AlertFacts],
        now: int,
    ) -> Outcome:
        """One try to one channel (also the channel test)."""
        sender = self._webhooks if channel.type == "webhook" else self._email
        try:
            return await sender.send(channel, notification_id, kind, tenant_id, alerts, now)
        except Exception as exc:  # a bug in one channel's rendering must not stop the others
            log.exception("notification %s to channel %s failed", notification_id, channel.id)
            return Outcome(False, f"internal error: {type(exc).__name__}")

    async def _settle(self, conn: AsyncConnection, delivery: store.Delivery, outcome: Outcome, now: int) -> None:
        attempts = delivery.attempts + 1
        if outcome.ok:
            await store.finish_delivery(
                conn,
                delivery.id,
                state="delivered",
                attempts=attempts,
                next_attempt_at=now,
                error=None,
                delivered_at=now,
            )
            return
        retry_at = None
        if not outcome.permanent:
            retry_at = next_attempt(
                attempts=attempts,
                now=now,
                created_at=delivery.created_at,
                max_age=self._settings.notification_max_age,
                jitter=self.jitter(),
                retry_after=outcome.retry_after,
            )
        if retry_at is None:
            reason = outcome.error or "failed"
            if not outcome.permanent:
                reason = f"gave up after {attempts} tries ({format_micros(now)}): {reason}"
            log.warning("notification %s failed: %s", delivery.id, reason)
            await store.finish_delivery(
                conn,
                delivery.id,
                state="failed",
                attempts=attempts,
                next_attempt_at=now,
                error=reason,
                delivered_at=None,
            )
        else:
            await store.finish_delivery(
                conn,
                delivery.id,
                state="pending",
                attempts=attempts,
                next_attempt_at=retry_at,
                error=outcome.error,
                delivered_at=None,
            )
