"""Notification channels and policies (admins), silences (operators), deliveries (viewers). docs/notifications.md"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Response

from haltless.core.notifications import Kind, Matchers, Policy, Silence
from haltless.core.readings import normalize_uuid
from haltless.core.rules import Severity
from haltless.core.timefmt import TimestampError, format_micros, parse_timestamp, to_micros
from haltless.errors import InvalidRequest, NotFound
from haltless.server.http import resource_verbs as verbs
from haltless.server.http.resource_verbs import Resource
from haltless.server.http.security import Admin, Operator, State, Viewer
from haltless.server.schemas.notifications import (
    AlertChangeOut,
    AlertNotificationStatus,
    ChannelCreate,
    ChannelOut,
    ChannelTestResult,
    ChannelUpdate,
    EmailConfigIn,
    EmailConfigOut,
    MatchersIn,
    MatchersOut,
    NotificationAlertOut,
    NotificationOut,
    NotificationPage,
    PolicyCreate,
    PolicyMatchersIn,
    PolicyMatchersOut,
    PolicyOut,
    PolicyUpdate,
    SilenceCreate,
    SilenceOut,
    WebhookConfigIn,
    WebhookConfigOut,
)
from haltless.server.state import AppState
from haltless.store import notifications as store

channels_router = APIRouter(prefix="/api/v1/notification-channels", tags=["notifications"])
policies_router = APIRouter(prefix="/api/v1/notification-policies", tags=["notifications"])
silences_router = APIRouter(prefix="/api/v1/silences", tags=["notifications"])
notifications_router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
alert_status_router = APIRouter(prefix="/api/v1/alerts", tags=["notifications"])

NOTIFICATIONS_CURSOR = "notifications/1"


# ---- channels -------------------------------------------------------------------------------------------------


def _webhook_config(body: WebhookConfigIn, old_secret: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    secret = body.secret or old_secret
    if not secret:
        raise InvalidRequest("webhook.secret: required (at least 16 characters): receivers verify the signature")
    return {"url": body.url, "format": body.format.value}, {"secret": secret}


def _email_config(body: EmailConfigIn, old_password: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    password = body.password if body.password is not None else old_password
    if body.username and not password:
        raise InvalidRequest("email.password: required with a username")
    config = {
        "host": body.host,
        "port": body.port,
        "security": body.security,
        "username": body.username,
        "from_address": body.from_address,
        "to_addresses": list(body.to_addresses),
    }
    return config, ({"password": password} if password else {})


def _channel_out(channel: store.Channel) -> ChannelOut:
    config = channel.config
    webhook = email = None
    if channel.type == "webhook":
        webhook = WebhookConfigOut(
            url=config["url"], format=config.get("format", "haltless"), has_secret=bool(channel.secrets.get("secret"))
        )
    else:
        email = EmailConfigOut(
            host=config["host"],
            port=config["port"],
            security=config["security"],
            username=config.get("username"),
            from_address=config["from_address"],
            to_addresses=list(config["to_addresses"]),
            has_password=bool(channel.secrets.get("password")),
        )
    return ChannelOut(
        id=channel.id,
        name=channel.name,
        type=channel.type,
        webhook=webhook,
        email=email,
        created_at=format_micros(channel.created_at),
        updated_at=format_micros(channel.updated_at),
    )


CHANNELS: Resource[store.Channel] = Resource(
    "channel",
    read=lambda conn, tenant_id, item_id: store.get_channel(conn, tenant_id=tenant_id, channel_id=item_id),
    update=store.update_channel,
    delete=lambda conn, channel: store.delete_channel(conn, channel.id),
)


@channels_router.post("", status_code=201, response_model=ChannelOut)
async def create_channel(body: ChannelCreate, principal: Admin, state: State) -> ChannelOut:
    """Create a webhook or email channel; its secret or password can be set but is never shown again."""
    if body.type == "webhook":
        if body.webhook is None or body.email is not None:
            raise InvalidRequest("webhook: required for a webhook channel (and no email settings)")
        config, secrets = _webhook_config(body.webhook, None)
    else:
        if body.email is None or body.webhook is not None:
            raise InvalidRequest("email: required for an email channel (and no webhook settings)")
        config, secrets = _email_config(body.email, None)
    now = state.notifier.clock()
    channel = store.Channel(store.new_id(), principal.tenant_id, body.name, body.type, config, secrets, now, now)
    await verbs.write(state, lambda conn: store.insert_channel(conn, channel))
    return _channel_out(channel)


@channels_router.get("", response_model=list[ChannelOut])
async def list_channels(principal: Admin, state: State) -> list[ChannelOut]:
    async with state.engine.connect() as conn:
        return [_channel_out(c) for c in await store.list_channels(conn, tenant_id=principal.tenant_id)]


@channels_router.get("/{channel_id}", response_model=ChannelOut)
async def get_channel(channel_id: str, principal: Admin, state: State) -> ChannelOut:
    return _channel_out(await verbs.get(state, CHANNELS, principal.tenant_id, channel_id))


@channels_router.patch("/{channel_id}", response_model=ChannelOut)
async def update_channel(channel_id: str, body: ChannelUpdate, principal: Admin, state: State) -> ChannelOut:
    """Rename, or replace the settings of the channel's type (a secret or password left out is kept)."""

    async def change(channel: store.Channel) -> store.Channel:
        config, secrets = channel.config, channel.secrets
        if body.webhook is not None:
            if channel.type != "webhook":
                raise InvalidRequest("webhook: this is an email channel")
            config, secrets = _webhook_config(body.webhook, channel.secrets.get("secret"))
        if body.email is not None:
            if channel.type != "email":
                raise InvalidRequest("email: this is a webhook channel")
            config, secrets = _email_config(body.email, channel.secrets.get("password"))
        return store.Channel(
            channel.id,
            channel.tenant_id,
            body.name or channel.name,
            channel.type,
            config,
            secrets,
            channel.created_at,
            state.notifier.clock(),
        )

    return _channel_out(await verbs.patch(state, CHANNELS, principal.tenant_id, channel_id, change))


@channels_router.delete("/{channel_id}", status_code=204, response_class=Response)
async def delete_channel(channel_id: str, principal: Admin, state: State) -> Response:
    """Delete a channel and its deliveries; policies that named it go on with their other channels."""
    return await verbs.delete(state, CHANNELS, principal.tenant_id, channel_id)


@channels_router.post("/{channel_id}/test", response_model=ChannelTestResult)
async def test_channel(channel_id: str, principal: Admin, state: State) -> ChannelTestResult:
    """Send a `test` notification now, once, and report how it went."""
    channel = await verbs.get(state, CHANNELS, principal.tenant_id, channel_id)
    notifier = state.notifier
    outcome = await notifier.send(channel, store.new_id(), Kind.TEST, principal.tenant_id, (), notifier.clock())
    return ChannelTestResult(ok=outcome.ok, error=outcome.error)


# ---- policies -------------------------------------------------------------------------------------------------


def _matchers(body: MatchersIn) -> Matchers:
    kinds = tuple(body.kinds) if isinstance(body, PolicyMatchersIn) else ()
    return Matchers(
        machine_ids=tuple(body.machine_ids),
        tags=tuple(body.tags),
        rule_ids=tuple(body.rule_ids),
        severities=tuple(s.value for s in body.severities),
        metric_names=tuple(body.metric_names),
        kinds=kinds,
    )


def _matchers_out(matchers: Matchers) -> dict[str, list[str]]:
    return {
        "machine_ids": list(matchers.machine_ids),
        "tags": list(matchers.tags),
        "rule_ids": list(matchers.rule_ids),
        "severities": list(matchers.severities),
        "metric_names": list(matchers.metric_names),
    }


def _policy_out(stored: store.StoredPolicy) -> PolicyOut:
    p = stored.policy
    return PolicyOut(
        id=p.id,
        name=stored.name,
        matchers=PolicyMatchersOut(**_matchers_out(p.matchers), kinds=list(p.matchers.kinds)),
        channel_ids=list(p.channel_ids),
        is_default=p.is_default,
        group_by=p.group_by,
        group_wait=p.group_wait,
        group_interval=p.group_interval,
        position=p.position,
        repeat_interval=p.repeat_interval,
        escalate_after=p.escalate_after,
        escalation_channel_ids=list(p.escalation_channel_ids),
        escalation_severity=Severity(p.escalation_severity) if p.escalation_severity else None,
        created_at=format_micros(stored.created_at),
        updated_at=format_micros(stored.updated_at),
    )


async def _channel_ids(state: AppState, tenant_id: str, ids: list[str]) -> tuple[str, ...]:
    normalized = [normalize_uuid(i) for i in ids]
    async with state.engine.connect() as conn:
        known = await store.existing_channel_ids(conn, tenant_id=tenant_id, ids=[i for i in normalized if i])
    unknown = [raw for raw, n in zip(ids, normalized, strict=True) if n is None or n not in known]
    if unknown:
        raise InvalidRequest(f"channel_ids: no such channel in this tenant: {', '.join(unknown[:5])}")
    return tuple(dict.fromkeys(cast("list[str]", normalized)))


_NULLABLE = {"repeat_interval", "escalate_after", "escalation_severity"}


def _check_escalation(policy: Policy) -> None:
    if policy.escalate_after is not None and not policy.escalation_channel_ids:
        raise InvalidRequest("escalation_channel_ids: name at least one channel to escalate to")
    if policy.escalation_severity is not None and policy.escalate_after is None:
        raise InvalidRequest("escalation_severity: set escalate_after too (the severity is raised on escalation)")


POLICIES: Resource[store.StoredPolicy] = Resource(
    "policy",
    read=lambda conn, tenant_id, item_id: store.get_policy(conn, tenant_id=tenant_id, policy_id=item_id),
    update=store.update_policy,
    delete=lambda conn, stored: store.delete_policy(conn, stored.policy.id),
)


@policies_router.post("", status_code=201, response_model=PolicyOut)
async def create_policy(body: PolicyCreate, principal: Admin, state: State) -> PolicyOut:
    """Route matching alert changes to channels; a default policy takes what no other policy matches."""
    now = state.notifier.clock()
    policy = Policy(
        id=store.new_id(),
        tenant_id=principal.tenant_id,
        matchers=_matchers(body.matchers),
        channel_ids=await _channel_ids(state, principal.tenant_id, body.channel_ids),
        is_default=body.is_default,
        group_by=body.group_by,
        group_wait=body.group_wait,
        group_interval=body.group_interval,
        position=body.position,
        repeat_interval=body.repeat_interval,
        escalate_after=body.escalate_after,
        escalation_channel_ids=await _channel_ids(state, principal.tenant_id, body.escalation_channel_ids),
        escalation_severity=body.escalation_severity.value if body.escalation_severity else None,
    )
    _check_escalation(policy)
    stored = store.StoredPolicy(policy, body.name, now, now)
    await verbs.write(state, lambda conn: store.insert_policy(conn, stored))
    return _policy_out(stored)


@policies_router.get("", response_model=list[PolicyOut])
async def list_policies(principal: Admin, state: State) -> list[PolicyOut]:
    async with state.engine.connect() as conn:
        return [_policy_out(p) for p in await store.list_policies(conn, tenant_ids=[principal.tenant_id])]


@policies_router.get("/{policy_id}", response_model=PolicyOut)
async def get_policy(policy_id: str, principal: Admin, state: State) -> PolicyOut:
    return _policy_out(await verbs.get(state, POLICIES, principal.tenant_id, policy_id))


@policies_router.patch("/{policy_id}", response_model=PolicyOut)
async def update_policy(policy_id: str, body: PolicyUpdate, principal: Admin, state: State) -> PolicyOut:
    changes = body.model_dump(exclude_unset=True)

    async def change(old: store.StoredPolicy) -> store.StoredPolicy:
        p = old.policy
        for field_name, value in changes.items():
            if value is None and field_name not in _NULLABLE:
                raise InvalidRequest(f"{field_name}: may not be null")
        policy = Policy(
            id=p.id,
            tenant_id=p.tenant_id,
            matchers=_matchers(body.matchers) if body.matchers is not None else p.matchers,
            channel_ids=(
                await _channel_ids(state, principal.tenant_id, body.channel_ids)
                if body.channel_ids is not None
                else p.channel_ids
            ),
            is_default=body.is_default if body.is_default is not None else p.is_default,
            group_by=body.group_by or p.group_by,
            group_wait=body.group_wait if body.group_wait is not None else p.group_wait,
            group_interval=body.group_interval if body.group_interval is not None else p.group_interval,
            position=body.position if body.position is not None else p.position,
            repeat_interval=changes.get("repeat_interval", p.repeat_interval),
            escalate_after=changes.get("escalate_after", p.escalate_after),
            escalation_channel_ids=(
                await _channel_ids(state, principal.tenant_id, body.escalation_channel_ids)
                if body.escalation_channel_ids is not None
                else p.escalation_channel_ids
            ),
            escalation_severity=(
                (body.escalation_severity.value if body.escalation_severity else None)
                if "escalation_severity" in changes
                else p.escalation_severity
            ),
        )
        _check_escalation(policy)
        return store.StoredPolicy(policy, body.name or old.name, old.created_at, state.notifier.clock())

    return _policy_out(await verbs.patch(state, POLICIES, principal.tenant_id, policy_id, change))


@policies_router.delete("/{policy_id}", status_code=204, response_class=Response)
async def delete_policy(policy_id: str, principal: Admin, state: State) -> Response:
    """Delete a policy; changes waiting in its groups are dropped."""
    return await verbs.delete(state, POLICIES, principal.tenant_id, policy_id)


# ---- silences -------------------------------------------------------------------------------------------------


def _time(field_name: str, text: str) -> int:
    try:
        return to_micros(parse_timestamp(text))
    except TimestampError as exc:
        raise InvalidRequest(f"{field_name}: {exc}") from None


async def _silence_out(state: AppState, stored: store.StoredSilence) -> SilenceOut:
    s = stored.silence
    async with state.engine.connect() as conn:
        alert_ids = await store.alerts_silenced_by(conn, silence_id=s.id)
    now = state.notifier.clock()
    return SilenceOut(
        id=s.id,
        matchers=MatchersOut(**_matchers_out(s.matchers)),
        starts_at=format_micros(s.starts_at),
        ends_at=format_micros(s.ends_at),
        comment=stored.comment,
        created_by=stored.created_by,
        created_at=format_micros(stored.created_at),
        active=s.starts_at <= now < s.ends_at,
        silenced_alert_ids=alert_ids,
    )


SILENCES: Resource[store.StoredSilence] = Resource(
    "silence",
    read=lambda conn, tenant_id, item_id: store.get_silence(conn, tenant_id=tenant_id, silence_id=item_id),
    # A silence changes only by expiring: its end is all there is to store.
    update=lambda conn, stored: store.update_silence_end(conn, stored.silence.id, stored.silence.ends_at),
    delete=lambda conn, stored: store.delete_silence(conn, stored.silence.id),
)


@silences_router.post("", status_code=201, response_model=SilenceOut)
async def create_silence(body: SilenceCreate, principal: Operator, state: State) -> SilenceOut:
    """Silence matching alerts from `starts_at` (default now, may be in the future) until `ends_at`."""
    now = state.notifier.clock()
    starts_at = _time("starts_at", body.starts_at) if body.starts_at is not None else now
    ends_at = _time("ends_at", body.ends_at)
    if ends_at <= starts_at:
        raise InvalidRequest("ends_at: must be after starts_at")
    if ends_at <= now:
        raise InvalidRequest("ends_at: must be in the future")
    matchers = _matchers(body.matchers)
    if matchers == Matchers():
        raise InvalidRequest("matchers: name at least one machine, tag, rule, severity or metric")
    silence = Silence(store.new_id(), principal.tenant_id, matchers, starts_at, ends_at)
    stored = store.StoredSilence(silence, body.comment, principal.subject_id, now)
    await verbs.write(state, lambda conn: store.insert_silence(conn, stored))
    return await _silence_out(state, stored)


@silences_router.get("", response_model=list[SilenceOut])
async def list_silences(principal: Viewer, state: State) -> list[SilenceOut]:
    async with state.engine.connect() as conn:
        found = await store.list_silences(conn, tenant_ids=[principal.tenant_id])
    return [await _silence_out(state, s) for s in found]


@silences_router.get("/{silence_id}", response_model=SilenceOut)
async def get_silence(silence_id: str, principal: Viewer, state: State) -> SilenceOut:
    return await _silence_out(state, await verbs.get(state, SILENCES, principal.tenant_id, silence_id))


@silences_router.post("/{silence_id}/expire", response_model=SilenceOut)
async def expire_silence(silence_id: str, principal: Operator, state: State) -> SilenceOut:
    """End a silence now (a future one never starts); it stays listed with the alerts it silenced."""

    async def expire(stored: store.StoredSilence) -> store.StoredSilence:
        s = stored.silence
        ends_at = min(s.ends_at, max(state.notifier.clock(), s.starts_at))
        expired = Silence(s.id, s.tenant_id, s.matchers, s.starts_at, ends_at)
        return store.StoredSilence(expired, stored.comment, stored.created_by, stored.created_at)

    return await _silence_out(state, await verbs.patch(state, SILENCES, principal.tenant_id, silence_id, expire))


@silences_router.delete("/{silence_id}", status_code=204, response_class=Response)
async def delete_silence(silence_id: str, principal: Operator, state: State) -> Response:
    return await verbs.delete(state, SILENCES, principal.tenant_id, silence_id)


# ---- deliveries -----------------------------------------------------------------------------------------------


def _notification_out(d: store.Delivery) -> NotificationOut:
    return NotificationOut(
        id=d.id,
        channel_id=d.channel_id,
        kind=d.kind,
        state=cast("Literal['pending', 'delivered', 'failed']", d.state),
        attempts=d.attempts,
        next_attempt_at=format_micros(d.next_attempt_at) if d.state == "pending" else None,
        last_error=d.last_error,
        created_at=format_micros(d.created_at),
        delivered_at=format_micros(d.delivered_at) if d.delivered_at is not None else None,
        alerts=[
            NotificationAlertOut(
                alert_id=a.alert_id,
                machine_id=a.machine_id,
                machine_name=a.machine_name,
                metric_name=a.metric_name,
                severity=a.severity,
                message=a.message,
                state=a.state,
            )
            for a in d.alerts
        ],
    )


@notifications_router.get("", response_model=NotificationPage)
async def list_notifications(
    principal: Viewer,
    state: State,
    delivery_state: Annotated[Literal["pending", "delivered", "failed"] | None, Query(alias="state")] = None,
    channel_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> NotificationPage:
    """Notifications of the tenant, newest first, with their delivery state and last error."""
    after = None
    if cursor is not None:
        after = cast("tuple[int, str]", tuple(state.cursors.decode(NOTIFICATIONS_CURSOR, cursor, (int, str))))
    channel = None
    if channel_id is not None:
        channel = normalize_uuid(channel_id)
        if channel is None:
            raise InvalidRequest("channel_id: must be a UUID")
    async with state.engine.connect() as conn:
        items = await store.list_deliveries(
            conn, tenant_id=principal.tenant_id, state=delivery_state, channel_id=channel, after=after, limit=limit + 1
        )
    more = len(items) > limit
    items = items[:limit]
    next_cursor = (
        state.cursors.encode(NOTIFICATIONS_CURSOR, (items[-1].created_at, items[-1].id)) if more and items else None
    )
    return NotificationPage(items=[_notification_out(d) for d in items], next_cursor=next_cursor)


@notifications_router.get("/{notification_id}", response_model=NotificationOut)
async def get_notification(notification_id: str, principal: Viewer, state: State) -> NotificationOut:
    async with state.engine.connect() as conn:
        found = await store.get_delivery(
            conn, tenant_id=principal.tenant_id, delivery_id=verbs.parse_id(notification_id, "notification")
        )
    if found is None:
        raise NotFound("notification not found")
    return _notification_out(found)


@alert_status_router.get("/{alert_id}/notification-status", response_model=AlertNotificationStatus)
async def alert_notification_status(alert_id: str, principal: Viewer, state: State) -> AlertNotificationStatus:
    """What became of an alert's changes: routed, silenced (by which silence) or matched by no policy."""
    normalized = verbs.parse_id(alert_id, "alert")
    async with state.engine.connect() as conn:
        changes = await store.changes_of_alert(conn, tenant_id=principal.tenant_id, alert_id=normalized)
    if not changes:
        raise NotFound("no notification record for this alert")
    return AlertNotificationStatus(
        alert_id=normalized,
        silenced=any(change_state == "silenced" for _, _, change_state, _ in changes),
        changes=[
            AlertChangeOut(
                kind=Kind(kind),
                at=format_micros(at),
                state=cast("Literal['new', 'routed', 'silenced', 'unrouted']", change_state),
                silence_id=silence_id,
            )
            for kind, at, change_state, silence_id in changes
        ],
    )
