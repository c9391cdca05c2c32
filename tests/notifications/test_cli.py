"""`haltless admin notifications|channel|policy|silence`: from the server's host, without a token, on its database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from haltless.core.clock import ManualClock
from tests.conftest import RunningServer, Tenant
from tests.notifications.conftest import SMTP_PASSWORD, SMTP_USER, MailRelay, WebhookReceiver, run_cycle
from tests.notifications.test_delivery import (
    _email,
    _notifications,
    _policy,
    _reading,
    _rule,
    _verification_recipe,
)


async def test_failed_deliveries_are_listed_with_their_reason(
    server: RunningServer, tenant: Tenant, clock: ManualClock, smtp_relay: MailRelay
) -> None:
    bad = await _email(tenant, smtp_relay, password="wrong-password-123")
    await _policy(tenant, [bad], group_wait=0)
    await _rule(tenant)
    machine = await tenant.add_machine("Boiler")
    await tenant.ingest([_reading(machine, 99.0)])
    await run_cycle(server)
    assert [n["state"] for n in await _notifications(tenant)] == ["failed"]

    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    env["HALTLESS_DATA_DIR"] = str(server.settings.data_dir)
    if server.settings.database_url:
        env["HALTLESS_DATABASE_URL"] = server.settings.database_url
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "haltless",
            "admin",
            "notifications",
            "--tenant-id",
            tenant.tenant_id,
            "--state",
            "failed",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["channel_id"], r["state"], r["kind"]) for r in rows] == [(bad, "failed", "firing")]
    assert rows[0]["last_error"].startswith("SMTP authentication failed: 535")
    assert "wrong-password-123" not in result.stdout


# ---- `haltless admin channel|policy|silence`: the same rules as the admin API, on the server's database -----------

SECRET = "cli-signing-secret-0123"


def _haltless(server: RunningServer, *args: str, stdin: str = "", **env_extra: str) -> subprocess.CompletedProcess[str]:
    """`haltless admin ARGS` on the server's host: its database, no token. Secrets come in by `stdin` or `env_extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    env["HALTLESS_DATA_DIR"] = str(server.settings.data_dir)
    if server.settings.database_url:
        env["HALTLESS_DATABASE_URL"] = server.settings.database_url
    env |= env_extra
    return subprocess.run(
        [sys.executable, "-m", "haltless", "admin", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _printed(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


LOOPBACK = {"HALTLESS_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}


async def test_a_webhook_channel_is_created_tested_changed_and_deleted_from_the_command_line(
    server: RunningServer, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    t = ("--tenant-id", tenant.tenant_id)
    created = _haltless(
        server,
        "channel",
        "create-webhook",
        *t,
        "--name",
        "Ops hook",
        "--url",
        receiver.url,
        "--secret-env",
        "OPS_HOOK_SECRET",
        OPS_HOOK_SECRET=SECRET,
    )
    channel = _printed(created)
    assert channel["webhook"] == {"url": receiver.url, "format": "haltless", "has_secret": True}
    assert SECRET not in created.stdout + created.stderr
    # The running server serves what the command wrote.
    served = await tenant.http.get(f"/api/v1/notification-channels/{channel['id']}")
    assert served.json() == channel
    listed = _haltless(server, "channel", "list", *t)
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [channel["id"]]

    tested = _haltless(server, "channel", "test", channel["id"], *t, **LOOPBACK)
    assert _printed(tested) == {"ok": True, "error": None}
    [request] = receiver.requests
    assert orjson.loads(request.body)["kind"] == "test"
    verify = _verification_recipe()["verify"]
    assert verify(SECRET, request.headers, request.body)

    # A changed format keeps the stored secret; the test goes out signed with it.
    changed = _printed(_haltless(server, "channel", "update", channel["id"], *t, "--format", "slack", "--name", "Chat"))
    assert (changed["name"], changed["webhook"]["format"], changed["webhook"]["has_secret"]) == ("Chat", "slack", True)
    assert _haltless(server, "channel", "test", channel["id"], *t, **LOOPBACK).returncode == 0
    assert verify(SECRET, receiver.requests[1].headers, receiver.requests[1].body)
    assert "text" in orjson.loads(receiver.requests[1].body)  # Slack's incoming-webhook shape

    # The command line sends from this host under the server's network rule: loopback is refused by default.
    refused = _haltless(server, "channel", "test", channel["id"], *t)
    assert refused.returncode == 1
    assert _printed_anyway(refused)["ok"] is False
    assert len(receiver.requests) == 2

    assert _haltless(server, "channel", "delete", channel["id"], *t).returncode == 0
    assert (await tenant.http.get(f"/api/v1/notification-channels/{channel['id']}")).status_code == 404
    gone = _haltless(server, "channel", "test", channel["id"], *t)
    assert (gone.returncode, gone.stderr.strip()) == (1, "error: channel not found")


def _printed_anyway(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


async def test_an_email_channel_takes_its_password_from_stdin_and_a_wrong_one_fails_the_test(
    server: RunningServer, tenant: Tenant, smtp_relay: MailRelay
) -> None:
    t = ("--tenant-id", tenant.tenant_id)
    created = _haltless(
        server,
        "channel",
        "create-email",
        *t,
        "--name",
        "Ops mail",
        "--host",
        "127.0.0.1",
        "--port",
        str(smtp_relay.port),
        "--security",
        "none",
        "--username",
        SMTP_USER,
        "--password-stdin",
        "--from",
        "haltless@plant.example",
        "--to",
        "oncall@plant.example",
        "--to",
        "lead@plant.example",
        stdin=SMTP_PASSWORD + "\n",
    )
    channel = _printed(created)
    assert channel["email"]["has_password"] is True
    assert channel["email"]["to_addresses"] == ["oncall@plant.example", "lead@plant.example"]
    assert _printed(_haltless(server, "channel", "test", channel["id"], *t, **LOOPBACK_SMTP))["ok"] is True
    assert [envelope[1] for envelope in smtp_relay.envelopes] == [["oncall@plant.example", "lead@plant.example"]]

    wrong = _haltless(server, "channel", "update", channel["id"], *t, "--password-env", "P", P="not-the-password")
    assert _printed(wrong)["email"]["host"] == "127.0.0.1"  # the other settings are kept
    failed = _haltless(server, "channel", "test", channel["id"], *t, **LOOPBACK_SMTP)
    assert failed.returncode == 1
    assert _printed_anyway(failed)["error"].startswith("SMTP authentication failed: 535")
    assert "not-the-password" not in failed.stdout + failed.stderr
    assert len(smtp_relay.messages) == 1


LOOPBACK_SMTP = {"HALTLESS_SMTP_ALLOW_NETWORKS": "127.0.0.0/8"}


async def test_the_command_line_refuses_what_the_api_refuses_with_the_same_detail(
    server: RunningServer, tenant: Tenant
) -> None:
    t = ("--tenant-id", tenant.tenant_id)
    body = {"name": "Bad", "type": "webhook", "webhook": {"url": "ftp://example.com/x", "secret": SECRET}}
    api = await tenant.http.post("/api/v1/notification-channels", json=body)
    assert api.status_code == 422
    cli = _haltless(
        server,
        "channel",
        "create-webhook",
        *t,
        "--name",
        "Bad",
        "--url",
        "ftp://example.com/x",
        "--secret-stdin",
        stdin=SECRET,
    )
    assert (cli.returncode, cli.stderr.strip()) == (1, f"error: {api.json()['detail']}")

    # A rule of the shared code (not of the body's schema): escalation without a channel to escalate to.
    hook = _printed(
        _haltless(
            server,
            "channel",
            "create-webhook",
            *t,
            "--name",
            "Hook",
            "--url",
            "https://example.com/hook",
            "--secret-stdin",
            stdin=SECRET,
        )
    )["id"]
    api = await tenant.http.post(
        "/api/v1/notification-policies", json={"name": "P", "channel_ids": [hook], "escalate_after": 60}
    )
    assert api.status_code == 422
    cli = _haltless(server, "policy", "create", *t, "--name", "P", "--channel", hook, "--escalate-after", "60")
    assert (cli.returncode, cli.stderr.strip()) == (1, f"error: {api.json()['detail']}")

    short = _haltless(
        server,
        "channel",
        "create-webhook",
        *t,
        "--name",
        "S",
        "--url",
        "https://example.com/h",
        "--secret-stdin",
        stdin="too-short\n",
    )
    assert (short.returncode, short.stderr.strip()) == (
        1,
        "error: webhook.secret: String should have at least 16 characters",
    )
    unset = _haltless(
        server,
        "channel",
        "create-webhook",
        *t,
        "--name",
        "S",
        "--url",
        "https://example.com/h",
        "--secret-env",
        "NOT_SET_ANYWHERE",
    )
    assert unset.returncode == 2 and "NOT_SET_ANYWHERE is not set" in unset.stderr
    nobody = _haltless(server, "channel", "list", "--tenant-id", "00000000-0000-4000-8000-000000000000")
    assert (nobody.returncode, nobody.stderr.strip()) == (
        1,
        "error: no tenant with id 00000000-0000-4000-8000-000000000000",
    )
    assert [c["name"] for c in (await tenant.http.get("/api/v1/notification-channels")).json()] == ["Hook"]


async def test_policies_and_silences_from_the_command_line(server: RunningServer, tenant: Tenant) -> None:
    t = ("--tenant-id", tenant.tenant_id)
    hook = _printed(
        _haltless(
            server,
            "channel",
            "create-webhook",
            *t,
            "--name",
            "Hook",
            "--url",
            "https://example.com/hook",
            "--secret-stdin",
            stdin=SECRET,
        )
    )["id"]
    policy = _printed(
        _haltless(
            server,
            "policy",
            "create",
            *t,
            "--name",
            "Critical",
            "--channel",
            hook,
            "--severity",
            "critical",
            "--group-wait",
            "0",
            "--escalate-after",
            "600",
            "--escalation-channel",
            hook,
        )
    )
    assert (policy["matchers"]["severities"], policy["group_wait"], policy["group_by"]) == (["critical"], 0.0, "rule")
    assert (await tenant.http.get("/api/v1/notification-policies")).json() == [policy]
    listed = _haltless(server, "policy", "list", *t)
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [policy]

    machine = await tenant.add_machine("Press 2")
    ends_at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    silence = _printed(
        _haltless(
            server,
            "silence",
            "create",
            *t,
            "--machine",
            machine,
            "--ends-at",
            ends_at,
            "--comment",
            "Bearing swap",
            "--created-by",
            tenant.admin_email,
        )
    )
    me = (await tenant.http.get("/api/v1/auth/me")).json()
    assert (silence["created_by"], silence["active"], silence["matchers"]["machine_ids"]) == (
        me["user_id"],
        True,
        [machine],
    )
    no_matcher = _haltless(
        server, "silence", "create", *t, "--ends-at", ends_at, "--comment", "x", "--created-by", tenant.admin_email
    )
    assert no_matcher.returncode == 1 and "matchers: name at least one" in no_matcher.stderr
    assert _printed(_haltless(server, "silence", "expire", silence["id"], *t))["active"] is False
    assert _haltless(server, "silence", "delete", silence["id"], *t).returncode == 0
    assert (await tenant.http.get("/api/v1/silences")).json() == []
    assert _haltless(server, "policy", "delete", policy["id"], *t).returncode == 0
    assert (await tenant.http.get("/api/v1/notification-policies")).json() == []


async def test_a_policy_is_updated_from_the_command_line_as_the_api_patches_it(
    server: RunningServer, tenant: Tenant
) -> None:
    t = ("--tenant-id", tenant.tenant_id)
    hooks = [
        _printed(
            _haltless(
                server,
                "channel",
                "create-webhook",
                *t,
                "--name",
                name,
                "--url",
                "https://example.com/hook",
                "--secret-stdin",
                stdin=SECRET,
            )
        )["id"]
        for name in ("Hook", "Boss")
    ]
    policy = _printed(_haltless(server, "policy", "create", *t, "--name", "All", "--channel", hooks[0]))
    pid = policy["id"]

    changed = _printed(
        _haltless(
            server,
            "policy",
            "update",
            pid,
            *t,
            "--name",
            "Critical",
            "--severity",
            "critical",
            "--group-wait",
            "5",
            "--repeat-interval",
            "3600",
            "--escalate-after",
            "600",
            "--escalation-channel",
            hooks[1],
            "--escalation-severity",
            "critical",
        )
    )
    assert (await tenant.http.get(f"/api/v1/notification-policies/{pid}")).json() == changed
    assert (changed["name"], changed["matchers"]["severities"], changed["group_wait"]) == ("Critical", ["critical"], 5)
    assert (changed["repeat_interval"], changed["escalate_after"], changed["escalation_channel_ids"]) == (
        3600,
        600,
        [hooks[1]],
    )
    assert changed["channel_ids"] == [hooks[0]]  # what was not given is kept

    # The shared rules, with the API's detail.
    api = await tenant.http.patch(f"/api/v1/notification-policies/{pid}", json={"escalation_channel_ids": ["nope"]})
    assert api.status_code == 422
    assert api.json()["detail"] == "escalation_channel_ids: no such channel in this tenant: nope"
    cli = _haltless(server, "policy", "update", pid, *t, "--escalation-channel", "nope")
    assert (cli.returncode, cli.stderr.strip()) == (1, f"error: {api.json()['detail']}")

    cleared = _printed(
        _haltless(server, "policy", "update", pid, *t, "--no-repeat", "--no-escalation", "--match-everything")
    )
    assert (cleared["repeat_interval"], cleared["escalate_after"], cleared["escalation_channel_ids"]) == (
        None,
        None,
        [],
    )
    assert (cleared["escalation_severity"], cleared["matchers"]["severities"], cleared["name"]) == (
        None,
        [],
        "Critical",
    )

    clash = _haltless(server, "policy", "update", pid, *t, "--no-repeat", "--repeat-interval", "60")
    assert clash.returncode == 2 and "--no-repeat and --repeat-interval" in clash.stderr
    nothing = _haltless(server, "policy", "update", pid, *t)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    unknown = _haltless(server, "policy", "update", "00000000-0000-4000-8000-000000000000", *t, "--name", "X")
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "error: policy not found")


async def test_an_email_channel_stops_logging_in_with_no_username(
    server: RunningServer, tenant: Tenant, smtp_relay: MailRelay
) -> None:
    t = ("--tenant-id", tenant.tenant_id)
    channel = await _email(tenant, smtp_relay)
    assert _printed(_haltless(server, "channel", "test", channel, *t, **LOOPBACK_SMTP))["ok"] is True
    assert smtp_relay.logged_in == [True]  # with a username, the channel logs in
    clash = _haltless(server, "channel", "update", channel, *t, "--no-username", "--username", "someone")
    assert clash.returncode == 2 and "--no-username" in clash.stderr

    changed = _printed(_haltless(server, "channel", "update", channel, *t, "--no-username"))
    assert (changed["email"]["username"], changed["email"]["has_password"]) == (None, False)
    assert changed["email"]["host"] == "127.0.0.1"  # the other settings are kept
    assert (await tenant.http.get(f"/api/v1/notification-channels/{channel}")).json() == changed
    # Sent without logging in (the test relay accepts that too); the password is gone, not just unused.
    assert _printed(_haltless(server, "channel", "test", channel, *t, **LOOPBACK_SMTP))["ok"] is True
    assert smtp_relay.logged_in == [True, False]
    again = _printed(
        _haltless(
            server,
            "channel",
            "update",
            channel,
            *t,
            "--username",
            SMTP_USER,
            "--password-stdin",
            stdin=SMTP_PASSWORD + "\n",
        )
    )
    assert again["email"]["has_password"] is True
    assert _printed(_haltless(server, "channel", "test", channel, *t, **LOOPBACK_SMTP))["ok"] is True
