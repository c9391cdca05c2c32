"""Notification channels, policies and silences: the rules for creating, changing and showing them, in one place.

The admin API (server/routes/notifications.py) and the command line (`haltless admin channel|policy|silence`,
admin.py) both call these, with the same request bodies (server/schemas/notifications.py) and so the same checks.
Errors are our own (InvalidRequest, NotFound): the API answers them with their status, the CLI prints their detail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.core.notifications import Kind, Matchers, Policy, Silence
from haltless.core.readings import normalize_uuid
from haltless.core.rules import Severity
from haltless.core.secret_box import SecretBox
from haltless.core.timefmt import TimestampError, format_micros, parse_timestamp, to_micros
from haltless.errors import Conflict, InvalidRequest
from haltless.server.schemas.notifications import (
    ChannelCreate,
    ChannelOut,
    ChannelTestResult,
    ChannelUpdate,
    EmailConfigIn,
    EmailConfigOut,
    MatchersIn,
    MatchersOut,
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
from haltless.server.service import resource_verbs as verbs
from haltless.server.service.notifier import Notifier
from haltless.store import notifications as store


@dataclass(frozen=True, slots=True)
class Config:
    """Where the configuration lives and what time it is (the notifier's clock: tests drive it)."""

    engine: AsyncEngine
    clock: Callable[[], int]
    # Seals channels' secrets for the store and opens them (HALTLESS_SECRETS_KEYS, server/keys.py).
    box: SecretBox


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


def _channels(box: SecretBox) -> verbs.Resource[store.Channel]:
    return verbs.Resource(
        "channel",
        read=lambda conn, tenant_id, item_id: store.get_channel(conn, box, tenant_id=tenant_id, channel_id=item_id),
        update=lambda conn, channel: store.update_channel(conn, channel, box),
        delete=lambda conn, channel: store.delete_channel(conn, channel.id),
    )


async def create_channel(where: Config, tenant_id: str, body: ChannelCreate) -> ChannelOut:
    """Create a webhook or email channel; its secret or password can be set but is never shown again."""
    if body.type == "webhook":
        if body.webhook is None or body.email is not None:
            raise InvalidRequest("webhook: required for a webhook channel (and no email settings)")
        config, secrets = _webhook_config(body.webhook, None)
    else:
        if body.email is None or body.webhook is not None:
            raise InvalidRequest("email: required for an email channel (and no webhook settings)")
        config, secrets = _email_config(body.email, None)
    now = where.clock()
    channel = store.Channel(store.new_id(), tenant_id, body.name, body.type, config, secrets, now, now)
    await verbs.write(where.engine, lambda conn: store.insert_channel(conn, channel, where.box))
    return _channel_out(channel)


async def list_channels(where: Config, tenant_id: str) -> list[ChannelOut]:
    async with where.engine.connect() as conn:
        return [_channel_out(c) for c in await store.list_channels(conn, where.box, tenant_id=tenant_id)]


async def get_channel(where: Config, tenant_id: str, channel_id: str) -> ChannelOut:
    return _channel_out(await verbs.get(where.engine, _channels(where.box), tenant_id, channel_id))


async def update_channel(where: Config, tenant_id: str, channel_id: str, body: ChannelUpdate) -> ChannelOut:
    """Rename, or replace the settings of the channel's type (a secret or password left out is kept)."""

    async def change(channel: store.Channel) -> store.Channel:
        if channel.unreadable:
            # Storing it again would replace the secrets no configured key opens with nothing.
            raise Conflict(
                "this channel's secrets cannot be decrypted with the configured keys: add the key they were sealed "
                "with to HALTLESS_SECRETS_KEYS, or delete the channel and create it again"
            )
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
            where.clock(),
        )

    return _channel_out(await verbs.patch(where.engine, _channels(where.box), tenant_id, channel_id, change))


async def delete_channel(where: Config, tenant_id: str, channel_id: str) -> None:
    """Delete a channel and its deliveries; policies that named it go on with their other channels."""
    await verbs.delete(where.engine, _channels(where.box), tenant_id, channel_id)


async def test_channel(where: Config, tenant_id: str, channel_id: str, notifier: Notifier) -> ChannelTestResult:
    """Send a `test` notification now, once, and report how it went."""
    channel = await verbs.get(where.engine, _channels(where.box), tenant_id, channel_id)
    outcome = await notifier.send(channel, store.new_id(), Kind.TEST, tenant_id, (), where.clock())
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


async def _channel_ids(
    where: Config, tenant_id: str, ids: list[str], field_name: str = "channel_ids"
) -> tuple[str, ...]:
    normalized = [normalize_uuid(i) for i in ids]
    async with where.engine.connect() as conn:
        known = await store.existing_channel_ids(conn, tenant_id=tenant_id, ids=[i for i in normalized if i])
    unknown = [raw for raw, n in zip(ids, normalized, strict=True) if n is None or n not in known]
    if unknown:
        raise InvalidRequest(f"{field_name}: no such channel in this tenant: {', '.join(unknown[:5])}")
    return tuple(dict.fromkeys(cast("list[str]", normalized)))


_NULLABLE = {"repeat_interval", "escalate_after", "escalation_severity"}


def _check_escalation(policy: Policy) -> None:
    if policy.escalate_after is not None and not policy.escalation_channel_ids:
        raise InvalidRequest("escalation_channel_ids: name at least one channel to escalate to")
    if policy.escalation_severity is not None and policy.escalate_after is None:
        raise InvalidRequest("escalation_severity: set escalate_after too (the severity is raised on escalation)")


POLICIES: verbs.Resource[store.StoredPolicy] = verbs.Resource(
    "policy",
    read=lambda conn, tenant_id, item_id: store.get_policy(conn, tenant_id=tenant_id, policy_id=item_id),
    update=store.update_policy,
    delete=lambda conn, stored: store.delete_policy(conn, stored.policy.id),
)


async def create_policy(where: Config, tenant_id: str, body: PolicyCreate) -> PolicyOut:
    """Route matching alert changes to channels; a default policy takes what no other policy matches."""
    now = where.clock()
    policy = Policy(
        id=store.new_id(),
        tenant_id=tenant_id,
        matchers=_matchers(body.matchers),
        channel_ids=await _channel_ids(where, tenant_id, body.channel_ids),
        is_default=body.is_default,
        group_by=body.group_by,
        group_wait=body.group_wait,
        group_interval=body.group_interval,
        position=body.position,
        repeat_interval=body.repeat_interval,
        escalate_after=body.escalate_after,
        escalation_channel_ids=await _channel_ids(
            where, tenant_id, body.escalation_channel_ids, "escalation_channel_ids"
        ),
        escalation_severity=body.escalation_severity.value if body.escalation_severity else None,
    )
    _check_escalation(policy)
    stored = store.StoredPolicy(policy, body.name, now, now)
    await verbs.write(where.engine, lambda conn: store.insert_policy(conn, stored))
    return _policy_out(stored)


async def list_policies(where: Config, tenant_id: str) -> list[PolicyOut]:
    async with where.engine.connect() as conn:
        return [_policy_out(p) for p in await store.list_policies(conn, tenant_ids=[tenant_id])]


async def get_policy(where: Config, tenant_id: str, policy_id: str) -> PolicyOut:
    return _policy_out(await verbs.get(where.engine, POLICIES, tenant_id, policy_id))


async def update_policy(where: Config, tenant_id: str, policy_id: str, body: PolicyUpdate) -> PolicyOut:
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
                await _channel_ids(where, tenant_id, body.channel_ids)
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
                await _channel_ids(where, tenant_id, body.escalation_channel_ids, "escalation_channel_ids")
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
        return store.StoredPolicy(policy, body.name or old.name, old.created_at, where.clock())

    return _policy_out(await verbs.patch(where.engine, POLICIES, tenant_id, policy_id, change))


async def delete_policy(where: Config, tenant_id: str, policy_id: str) -> None:
    """Delete a policy; changes waiting in its groups are dropped."""
    await verbs.delete(where.engine, POLICIES, tenant_id, policy_id)


# ---- silences -------------------------------------------------------------------------------------------------


def _time(field_name: str, text: str) -> int:
    try:
        return to_micros(parse_timestamp(text))
    except TimestampError as exc:
        raise InvalidRequest(f"{field_name}: {exc}") from None


async def _silence_out(where: Config, stored: store.StoredSilence) -> SilenceOut:
    s = stored.silence
    async with where.engine.connect() as conn:
        alert_ids = await store.alerts_silenced_by(conn, silence_id=s.id)
    now = where.clock()
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


SILENCES: verbs.Resource[store.StoredSilence] = verbs.Resource(
    "silence",
    read=lambda conn, tenant_id, item_id: store.get_silence(conn, tenant_id=tenant_id, silence_id=item_id),
    # A silence changes only by expiring: its end is all there is to store.
    update=lambda conn, stored: store.update_silence_end(conn, stored.silence.id, stored.silence.ends_at),
    delete=lambda conn, stored: store.delete_silence(conn, stored.silence.id),
)


async def create_silence(where: Config, tenant_id: str, body: SilenceCreate, *, created_by: str) -> SilenceOut:
    """Silence matching alerts from `starts_at` (default now, may be in the future) until `ends_at`."""
    now = where.clock()
    starts_at = _time("starts_at", body.starts_at) if body.starts_at is not None else now
    ends_at = _time("ends_at", body.ends_at)
    if ends_at <= starts_at:
        raise InvalidRequest("ends_at: must be after starts_at")
    if ends_at <= now:
        raise InvalidRequest("ends_at: must be in the future")
    matchers = _matchers(body.matchers)
    if matchers == Matchers():
        raise InvalidRequest("matchers: name at least one machine, tag, rule, severity or metric")
    silence = Silence(store.new_id(), tenant_id, matchers, starts_at, ends_at)
    stored = store.StoredSilence(silence, body.comment, created_by, now)
    await verbs.write(where.engine, lambda conn: store.insert_silence(conn, stored))
    return await _silence_out(where, stored)


async def list_silences(where: Config, tenant_id: str) -> list[SilenceOut]:
    async with where.engine.connect() as conn:
        found = await store.list_silences(conn, tenant_ids=[tenant_id])
    return [await _silence_out(where, s) for s in found]


async def get_silence(where: Config, tenant_id: str, silence_id: str) -> SilenceOut:
    return await _silence_out(where, await verbs.get(where.engine, SILENCES, tenant_id, silence_id))


async def expire_silence(where: Config, tenant_id: str, silence_id: str) -> SilenceOut:
    """End a silence now (a future one never starts); it stays listed with the alerts it silenced."""

    async def expire(stored: store.StoredSilence) -> store.StoredSilence:
        s = stored.silence
        ends_at = min(s.ends_at, max(where.clock(), s.starts_at))
        expired = Silence(s.id, s.tenant_id, s.matchers, s.starts_at, ends_at)
        return store.StoredSilence(expired, stored.comment, stored.created_by, stored.created_at)

    return await _silence_out(where, await verbs.patch(where.engine, SILENCES, tenant_id, silence_id, expire))


async def delete_silence(where: Config, tenant_id: str, silence_id: str) -> None:
    await verbs.delete(where.engine, SILENCES, tenant_id, silence_id)
