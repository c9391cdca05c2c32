"""Channels' secrets sealed at rest (HALTLESS_SECRETS_KEYS): the raw row holds no plaintext, delivery still works,
keys rotate with `haltless admin rotate-secrets`, and a server whose keys open nothing refuses to start."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from typing import Any

import httpx
import orjson
import pytest

from haltless.admin import create_tenant
from haltless.core.clock import ManualClock
from haltless.core.secret_box import SecretBox, new_key
from haltless.server.app import create_app
from haltless.server.keys import UnreadableSecrets
from haltless.settings import Settings
from tests.conftest import (
    EVENT_TIMEOUT,
    PASSWORD,
    RunningServer,
    Tenant,
    free_port,
    login,
    query_database,
    start_server,
)
from tests.notifications.conftest import SMTP_PASSWORD, MailRelay, WebhookReceiver, run_cycle
from tests.notifications.test_delivery import SECRET, _email, _policy, _reading, _rule, _verification_recipe, _webhook

KEY_A, KEY_B = new_key(), new_key()


def _stored_secrets(settings: Settings) -> dict[str, Any]:
    """Each channel's `secrets` column as the database holds it, read with plain SQL."""
    rows = query_database(settings, "SELECT id, secrets FROM notification_channels")
    return {row[0]: row[1] if isinstance(row[1], dict) else json.loads(row[1]) for row in rows}


def _haltless(settings: Settings, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    """`haltless ARGS` on the server's host and database, with `env_extra` (HALTLESS_SECRETS_KEYS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    env["HALTLESS_DATA_DIR"] = str(settings.data_dir)
    env["HALTLESS_JWT_SECRET"] = str(settings.jwt_secret)
    if settings.database_url:
        env["HALTLESS_DATABASE_URL"] = settings.database_url
    env |= env_extra
    return subprocess.run(
        [sys.executable, "-m", "haltless", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _restart(server: RunningServer, clock: ManualClock, keys: list[str]) -> RunningServer:
    """The same server (settings, port: the tenant's client still reaches it) with other secrets keys."""
    server.stop()
    again = start_server(server.settings.model_copy(update={"secrets_keys": keys}), port=server.port)
    again.state.notifier.clock = clock.now_us
    return again


async def _fire(tenant: Tenant, server: RunningServer, value: float) -> None:
    machine = await tenant.add_machine()
    await tenant.ingest([_reading(machine, value)])
    await run_cycle(server)


async def test_stored_secrets_hold_no_plaintext_and_channels_still_deliver(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver, smtp_relay: MailRelay
) -> None:
    hook = await _webhook(tenant, receiver)
    mail = await _email(tenant, smtp_relay)
    stored = _stored_secrets(server.settings)
    assert set(stored) == {hook, mail}
    for value in stored.values():
        assert list(value) == ["fernet"]
        assert SECRET not in json.dumps(value) and SMTP_PASSWORD not in json.dumps(value)
    # No HALTLESS_SECRETS_KEYS: one key, generated into the data dir, the owner's alone.
    key_file = server.settings.data_dir / "secrets_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    await _policy(tenant, [hook, mail], group_wait=0)
    await _rule(tenant)
    await _fire(tenant, server, 95.0)
    (request,) = receiver.delivered()
    assert _verification_recipe()["verify"](SECRET, request.headers, request.body)
    assert len(smtp_relay.messages) == 1  # the relay accepted the login with the stored password
    listed = await tenant.http.get("/api/v1/notification-channels")
    by_id = {c["id"]: c for c in listed.json()}
    assert (by_id[hook]["webhook"]["has_secret"], by_id[mail]["email"]["has_password"]) == (True, True)
    assert "fernet" not in listed.text and SECRET not in listed.text and SMTP_PASSWORD not in listed.text


async def _tenant_on(server: RunningServer) -> Tenant:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    tenant_id, _ = await create_tenant(server.settings, name="Plant", email=email, password=PASSWORD)
    pair = await login(server.base_url, email)
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    http = httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=EVENT_TIMEOUT)
    return Tenant(tenant_id, email, pair, http)


async def test_keys_rotate_without_losing_a_channel(
    server_factory: Any, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    """Key A; then "B,A" and rotate-secrets; then B alone still delivers. A alone then refuses to start."""
    first = server_factory(secrets_keys=[KEY_A], webhook_allow_networks="127.0.0.0/8")
    first.state.notifier.clock = clock.now_us
    tenant = await _tenant_on(first)
    try:
        await _rotate_keys(first, tenant, clock, receiver)
    finally:
        await tenant.http.aclose()


async def _rotate_keys(first: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver) -> None:
    hook = await _webhook(tenant, receiver)
    await _policy(tenant, [hook], group_wait=0)
    await _rule(tenant)

    both = _restart(first, clock, [KEY_B, KEY_A])
    try:
        rotated = _haltless(both.settings, "admin", "rotate-secrets", HALTLESS_SECRETS_KEYS=f"{KEY_B},{KEY_A}")
        assert rotated.returncode == 0, rotated.stderr
        assert json.loads(rotated.stdout) == {
            "resealed": 1,
            "current": 0,
            "old_key": 1,
            "plaintext": 0,
            "unreadable": 0,
        }
        again = _haltless(both.settings, "admin", "rotate-secrets", HALTLESS_SECRETS_KEYS=f"{KEY_B},{KEY_A}")
        assert json.loads(again.stdout)["resealed"] == 0 and json.loads(again.stdout)["current"] == 1
        assert KEY_A not in rotated.stdout + rotated.stderr + again.stdout + again.stderr
    finally:
        both.stop()

    only_b = _restart(both, clock, [KEY_B])
    try:
        await _fire(tenant, only_b, 97.0)
        (request,) = receiver.delivered()
        assert _verification_recipe()["verify"](SECRET, request.headers, request.body)
    finally:
        only_b.stop()

    # The key the secrets are sealed with is gone: `haltless serve` says so and why, and starts nothing.
    refused = _haltless(only_b.settings, "serve", "--port", str(free_port()), HALTLESS_SECRETS_KEYS=KEY_A)
    assert refused.returncode == 2, refused.stderr
    assert "1 notification channel's secrets cannot be decrypted" in refused.stderr
    assert "HALTLESS_SECRETS_KEYS" in refused.stderr
    assert KEY_A not in refused.stderr and KEY_B not in refused.stderr
    # The server's own start-up (the lifespan) refuses too, whoever starts it (uvicorn, several workers).
    app = create_app(only_b.settings.model_copy(update={"secrets_keys": [KEY_A]}))
    with pytest.raises(UnreadableSecrets, match="1 notification channel's secrets cannot be decrypted"):
        async with app.router.lifespan_context(app):
            pass


async def test_a_legacy_plaintext_row_is_read_and_then_sealed_by_rotate_secrets(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    hook = await _webhook(tenant, receiver)
    legacy = orjson.dumps({"secret": SECRET}).decode()
    # As rows were written before secrets were sealed.
    query_database(server.settings, f"UPDATE notification_channels SET secrets = '{legacy}' WHERE id = '{hook}'")
    assert _stored_secrets(server.settings)[hook] == {"secret": SECRET}
    shown = await tenant.http.get(f"/api/v1/notification-channels/{hook}")
    assert shown.json()["webhook"]["has_secret"] is True

    # A group per machine: each firing below is sent at once.
    await _policy(tenant, [hook], group_wait=0, group_by="machine")
    await _rule(tenant)
    await _fire(tenant, server, 95.0)
    assert _verification_recipe()["verify"](SECRET, receiver.delivered()[0].headers, receiver.delivered()[0].body)

    rotated = _haltless(server.settings, "admin", "rotate-secrets")
    assert rotated.returncode == 0, rotated.stderr
    counts = json.loads(rotated.stdout)
    assert (counts["plaintext"], counts["resealed"]) == (1, 1)
    sealed = _stored_secrets(server.settings)[hook]
    assert list(sealed) == ["fernet"] and SECRET not in json.dumps(sealed)

    await _fire(tenant, server, 96.0)
    assert len(receiver.delivered()) == 2
    assert _verification_recipe()["verify"](SECRET, receiver.delivered()[1].headers, receiver.delivered()[1].body)


def test_a_bad_secrets_key_is_refused_by_position(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path / "data", jwt_secret="x" * 32)
    result = _haltless(settings, "admin", "rotate-secrets", HALTLESS_SECRETS_KEYS=f"{KEY_A},not-a-fernet-key")
    assert result.returncode == 2
    assert "HALTLESS_SECRETS_KEYS: key 2 of 2 is not a Fernet key" in result.stderr
    assert "not-a-fernet-key" not in result.stderr and KEY_A not in result.stderr


async def test_a_channel_sealed_with_a_key_this_server_lacks_fails_clearly(
    server: RunningServer, tenant: Tenant, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    """As when another host with other keys wrote it: its deliveries fail saying why, and a PATCH (which would
    store it again without its secret) is a 409."""
    hook = await _webhook(tenant, receiver)
    foreign = orjson.dumps(SecretBox([KEY_B]).seal({"secret": SECRET}, 0)).decode()
    query_database(server.settings, f"UPDATE notification_channels SET secrets = '{foreign}' WHERE id = '{hook}'")

    patched = await tenant.http.patch(f"/api/v1/notification-channels/{hook}", json={"name": "Renamed"})
    assert patched.status_code == 409
    assert "HALTLESS_SECRETS_KEYS" in patched.json()["detail"]
    assert _stored_secrets(server.settings)[hook] == orjson.loads(foreign)  # left as it was

    await _policy(tenant, [hook], group_wait=0)
    await _rule(tenant)
    await _fire(tenant, server, 95.0)
    assert receiver.requests == []
    (notification,) = (await tenant.http.get("/api/v1/notifications")).json()["items"]
    assert notification["state"] == "pending"  # retried: the operator may yet configure the key
    assert "cannot be decrypted with the configured HALTLESS_SECRETS_KEYS" in notification["last_error"]


def test_a_damaged_generated_key_file_is_named_not_shown(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path / "data", jwt_secret="x" * 32)
    settings.data_dir.mkdir(mode=0o700)
    (settings.data_dir / "secrets_key").write_text("half-a-key-damaged")
    result = _haltless(settings, "admin", "rotate-secrets")
    assert result.returncode == 2, result.stderr
    assert "secrets_key: key 1 of 1 is not a Fernet key" in result.stderr
    assert "half-a-key" not in result.stderr and "Traceback" not in result.stderr
