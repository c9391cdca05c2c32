"""The notification pages in a real headless Chromium against `haltless demo`: channels (with "Send test" to a real
webhook receiver on loopback), policies, silences and the notification log, as admin and as the roles that may
only look. With HALTLESS_UPDATE_SCREENSHOTS=1 the screenshot test rewrites the pictures in docs/images/."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import free_port
from tests.dashboard.conftest import Demo, hold_first_answer
from tests.dashboard.test_management import IMAGES, as_role, no_null_text
from tests.notifications.conftest import WebhookReceiver
from tests.notifications.conftest import receiver as receiver

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip("the playwright package is missing: pip install -e '.[dev]'", allow_module_level=True)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

SECRET = "a-signing-secret-of-the-test"


@pytest.fixture(scope="module")
def demo(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A demo whose webhooks may reach loopback, where the tests' receivers listen."""
    root = tmp_path_factory.mktemp("notify-demo")
    started = Demo(
        port=free_port(),
        data_dir=root / "data",
        log_path=root / "demo.log",
        env={"HALTLESS_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"},
    )
    started.start()
    yield started
    started.stop()


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


def webhook_channel(demo: Demo, name: str, url: str) -> dict[str, Any]:
    body = {"name": name, "type": "webhook", "webhook": {"url": url, "secret": SECRET}}
    response = demo.api("POST", "/notification-channels", json=body)
    response.raise_for_status()
    channel: dict[str, Any] = response.json()
    return channel


def machine_id(demo: Demo, name: str) -> str:
    return str(next(m["id"] for m in demo.api("GET", "/machines").json()["items"] if m["name"] == name))


def signed_by(secret: str, request_headers: dict[str, str], body: bytes) -> bool:
    timestamp = request_headers["x-haltless-timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return request_headers["x-haltless-signature"] == f"sha256={expected}"


def row_named(page: Page, table: str, name: str) -> Any:
    return page.locator(f"#{table} tbody tr").filter(has=page.get_by_role("rowheader", name=name))


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until `check()` is truthy (bounded); its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_admin_adds_tests_edits_and_deletes_channels(
    demo: Demo, page_factory: Callable[..., Page], receiver: WebhookReceiver
) -> None:
    page = page_factory()
    as_role(page, demo, "admin")
    page.get_by_role("link", name="Channels").click()
    expect(page.get_by_role("heading", name="Notification channels")).to_be_visible()
    no_null_text(page)
    name = unique("Ops hook")
    form = page.locator("#new-channel-form")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("URL", exact=True).fill(receiver.url)
    form.get_by_label("Format", exact=True).select_option("haltless")
    form.get_by_label("Signing secret", exact=True).fill(SECRET)
    form.get_by_role("button", name="Add channel").click()
    row = row_named(page, "channels-table", name)
    expect(row.locator(".channel-target")).to_have_text(receiver.url)
    expect(row.locator(".channel-settings")).to_contain_text("secret set")
    expect(form.get_by_label("Signing secret", exact=True)).to_have_value("")
    [channel] = [c for c in demo.api("GET", "/notification-channels").json() if c["name"] == name]
    assert SECRET not in json.dumps(channel)

    # Send test: the receiver gets a signed `test` notification, and the page says it was delivered.
    row.get_by_role("button", name=re.compile("^Send test")).click()
    outcome = page.locator("#channel-test-result")
    expect(outcome).to_have_attribute("data-ok", "true")
    expect(outcome).to_contain_text(f"{name}: the test notification was delivered")
    [first] = receiver.requests
    assert json.loads(first.body)["kind"] == "test"
    assert signed_by(SECRET, first.headers, first.body)
    # A receiver that fails: the page shows the reason.
    receiver.status = 503
    row.get_by_role("button", name=re.compile("^Send test")).click()
    expect(outcome).to_have_attribute("data-ok", "false")
    expect(outcome).to_contain_text("failed: webhook answered 503")
    receiver.status = 200

    # Edit: rename and switch to Slack's format; the secret left empty is kept.
    row.get_by_role("button", name=re.compile("^Edit")).click()
    editor = page.locator("#edit-channel-form")
    expect(editor.get_by_label("Signing secret", exact=True)).to_have_value("")
    editor.get_by_label("Name", exact=True).fill(f"{name} B")
    editor.get_by_label("Format", exact=True).select_option("slack")
    editor.get_by_role("button", name="Save channel").click()
    row = row_named(page, "channels-table", f"{name} B")
    expect(row.locator(".channel-settings")).to_contain_text("Slack")
    edited = demo.api("GET", f"/notification-channels/{channel['id']}").json()
    assert (edited["name"], edited["webhook"]["format"], edited["webhook"]["has_secret"]) == (
        f"{name} B",
        "slack",
        True,
    )
    row.get_by_role("button", name=re.compile("^Send test")).click()
    expect(outcome).to_have_attribute("data-ok", "true")
    last = receiver.requests[-1]
    assert "text" in json.loads(last.body)
    assert signed_by(SECRET, last.headers, last.body)
    # A new secret, generated in the form: the next test is signed with it.
    row.get_by_role("button", name=re.compile("^Edit")).click()
    editor.get_by_role("button", name="Generate a secret").click()
    generated = editor.get_by_label("Signing secret", exact=True).input_value()
    assert len(generated) == 32 and generated != SECRET
    editor.get_by_role("button", name="Save channel").click()
    expect(editor).to_have_count(0)
    assert generated not in page.locator("#view").inner_text()
    sent = len(receiver.requests)
    row.get_by_role("button", name=re.compile("^Send test")).click()
    expect(outcome).to_contain_text("delivered")
    wait_for(lambda: len(receiver.requests) > sent, "the test notification")
    newest = receiver.requests[-1]
    assert signed_by(generated, newest.headers, newest.body)
    assert not signed_by(SECRET, newest.headers, newest.body)

    # An email channel: every SMTP setting arrives; the password is only "set".
    mail = unique("Night shift")
    form.get_by_label("Name", exact=True).fill(mail)
    form.get_by_label("Type", exact=True).select_option("email")
    expect(form.get_by_label("URL", exact=True)).to_be_hidden()
    form.get_by_label("SMTP host", exact=True).fill("127.0.0.1")
    form.get_by_label("Port", exact=True).fill("2525")
    form.get_by_label("Security", exact=True).select_option("none")
    form.get_by_label("Username", exact=True).fill("haltless")
    form.get_by_label("Password", exact=True).fill("an-smtp-password")
    form.get_by_label("From", exact=True).fill("haltless@plant.example")
    form.get_by_label("To", exact=True).fill("oncall@plant.example, lead@plant.example")
    form.get_by_role("button", name="Add channel").click()
    mail_row = row_named(page, "channels-table", mail)
    expect(mail_row.locator(".channel-settings")).to_contain_text("password set")
    [email] = [c["email"] for c in demo.api("GET", "/notification-channels").json() if c["name"] == mail]
    assert email == {
        "host": "127.0.0.1",
        "port": 2525,
        "security": "none",
        "username": "haltless",
        "from_address": "haltless@plant.example",
        "to_addresses": ["oncall@plant.example", "lead@plant.example"],
        "has_password": True,
    }
    assert "an-smtp-password" not in page.locator("#view").inner_text()
    # A bad setting is refused with the server's reason.
    form.get_by_label("Name", exact=True).fill(unique("Broken"))
    form.get_by_label("URL", exact=True).fill(receiver.url)
    form.get_by_label("Signing secret", exact=True).fill("short")
    form.get_by_role("button", name="Add channel").click()
    expect(page.locator("#new-channel-error")).to_contain_text("secret")

    for doomed in (row, mail_row):
        page.once("dialog", lambda dialog: dialog.accept())
        doomed.get_by_role("button", name=re.compile("^Delete")).click()
        expect(doomed).to_have_count(0)
    assert demo.api("GET", f"/notification-channels/{channel['id']}").status_code == 404


def test_admin_routes_groups_repeats_and_escalates_with_a_policy(demo: Demo, page_factory: Callable[..., Page]) -> None:
    for leftover in demo.api("GET", "/notification-channels").json():
        demo.api("DELETE", f"/notification-channels/{leftover['id']}").raise_for_status()
    page = page_factory()
    as_role(page, demo, "admin")
    page.get_by_role("link", name="Policies").click()
    expect(page.get_by_role("heading", name="Notification policies")).to_be_visible()
    # Without channels the form says to add one first, and links there.
    expect(page.locator("#new-policy-no-channels").get_by_role("link", name="add a channel")).to_be_visible()
    first = webhook_channel(demo, unique("Hall A hook"), "https://hooks.example.com/a")
    second = webhook_channel(demo, unique("Escalation hook"), "https://hooks.example.com/b")
    lathe = machine_id(demo, "Lathe 01")
    page.reload()
    expect(page.locator("#new-policy-channels").get_by_label(first["name"])).to_be_visible()
    expect(page.locator("#new-policy-no-channels")).to_have_count(0)
    no_null_text(page)
    name = unique("Critical presses")
    form = page.locator("#new-policy-form")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Position", exact=True).fill("5")
    form.locator("#new-policy-channels").get_by_label(first["name"]).check()
    form.get_by_label("Machines", exact=True).select_option(label=["Lathe 01"])
    form.get_by_label("Tags", exact=True).fill("press, no-such-tag")
    form.locator("#new-policy-match-severities").get_by_label("Critical", exact=True).check()
    form.locator("#new-policy-match-kinds").get_by_label("Firing", exact=True).check()
    form.locator("#new-policy-match-kinds").get_by_label("Resolved", exact=True).check()
    form.get_by_label("Group by", exact=True).select_option("machine")
    form.get_by_label("Group wait (s)", exact=True).fill("10")
    form.get_by_label("Group interval (s)", exact=True).fill("120")
    form.get_by_label("Remind every (min)", exact=True).fill("60")
    # Raising the severity is offered only with an escalation.
    expect(form.get_by_label("Raise severity to", exact=True)).to_be_hidden()
    form.get_by_label("Escalate after (min)", exact=True).fill("15")
    form.get_by_label("Raise severity to", exact=True).select_option("critical")
    # Escalation without a channel to escalate to is caught before it is sent.
    form.get_by_role("button", name="Add policy").click()
    expect(page.locator("#new-policy-error")).to_contain_text("escalate to")
    form.locator("#new-policy-escalation-channels").get_by_label(second["name"]).check()
    form.get_by_role("button", name="Add policy").click()
    row = row_named(page, "policies-table", name)
    expect(row.locator(".policy-matches")).to_have_text(
        "severity critical · machine Lathe 01 · tag press or no-such-tag · firing or resolved changes"
    )
    expect(row.locator(".policy-channels")).to_have_text(first["name"])
    expect(row.locator(".policy-grouping")).to_have_text("by machine; wait 10 s, then every 2 min")
    expect(row.locator(".policy-repeat")).to_have_text("every 1 h")
    expect(row.locator(".policy-escalation")).to_have_text(f"after 15 min to {second['name']}, raising to critical")
    [policy] = [p for p in demo.api("GET", "/notification-policies").json() if p["name"] == name]
    assert policy["matchers"] == {
        "machine_ids": [lathe],
        "tags": ["press", "no-such-tag"],
        "rule_ids": [],
        "severities": ["critical"],
        "metric_names": [],
        "kinds": ["firing", "resolved"],
    }
    assert (policy["position"], policy["is_default"], policy["channel_ids"]) == (5, False, [first["id"]])
    assert (policy["group_by"], policy["group_wait"], policy["group_interval"]) == ("machine", 10.0, 120.0)
    assert (policy["repeat_interval"], policy["escalate_after"]) == (3600.0, 900.0)
    assert (policy["escalation_channel_ids"], policy["escalation_severity"]) == ([second["id"]], "critical")

    # Edit: no more reminders, everything in one group, also to the second channel; the rest stays.
    row.get_by_role("button", name=re.compile("^Edit")).click()
    editor = page.locator("#edit-policy-form")
    expect(editor.get_by_label("Remind every (min)", exact=True)).to_have_value("60")
    expect(editor.get_by_label("Raise severity to", exact=True)).to_have_value("critical")
    editor.get_by_label("Raise severity to", exact=True).select_option("warning")
    expect(editor.locator("#edit-policy-match-severities").get_by_label("Critical", exact=True)).to_be_checked()
    editor.get_by_label("Remind every (min)", exact=True).fill("")
    editor.get_by_label("Group by", exact=True).select_option("none")
    editor.locator("#edit-policy-channels").get_by_label(second["name"]).check()
    editor.get_by_label("Default policy").check()
    editor.get_by_role("button", name="Save policy").click()
    expect(row.locator(".policy-repeat")).to_have_text("never")
    expect(row).to_have_attribute("data-default", "true")
    edited = demo.api("GET", f"/notification-policies/{policy['id']}").json()
    assert (edited["repeat_interval"], edited["group_by"], edited["is_default"]) == (None, "none", True)
    assert edited["channel_ids"] == [first["id"], second["id"]]
    assert (edited["matchers"], edited["escalate_after"]) == (policy["matchers"], 900.0)
    assert edited["escalation_severity"] == "warning"
    # No more escalation: the severity raise goes with it (the server would refuse it alone).
    row.get_by_role("button", name=re.compile("^Edit")).click()
    editor.get_by_label("Escalate after (min)", exact=True).fill("")
    expect(editor.get_by_label("Raise severity to", exact=True)).to_be_hidden()
    editor.get_by_role("button", name="Save policy").click()
    expect(row.locator(".policy-escalation")).to_have_text("never")
    edited = demo.api("GET", f"/notification-policies/{policy['id']}").json()
    assert (edited["escalate_after"], edited["escalation_severity"]) == (None, None)

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Delete")).click()
    expect(row).to_have_count(0)
    assert demo.api("GET", f"/notification-policies/{policy['id']}").status_code == 404
    for channel in (first, second):
        demo.api("DELETE", f"/notification-channels/{channel['id']}")


def local_input(page: Page, at: datetime) -> str:
    """`at` as a datetime-local value in the browser's time zone."""
    value: str = page.evaluate(
        """ms => { const d = new Date(ms); const p = n => String(n).padStart(2, "0");
        return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`; }""",
        at.timestamp() * 1000,
    )
    return value


def parsed(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_silences_start_now_or_later_and_end_early(demo: Demo, page_factory: Callable[..., Page], role: str) -> None:
    page = page_factory()
    as_role(page, demo, role)
    page.get_by_role("link", name="Silences").click()
    expect(page.get_by_role("heading", name="Silences", exact=True)).to_be_visible()
    no_null_text(page)
    tag = f"rebuild-{uuid.uuid4().hex[:6]}"  # on no machine: these silences hold back nothing of the demo's
    form = page.locator("#new-silence-form")
    # No matcher: refused with the server's reason.
    form.get_by_label("Comment", exact=True).fill("nothing named")
    form.get_by_role("button", name="Create silence").click()
    expect(page.locator("#new-silence-error")).to_contain_text("matchers")

    # One for a future hour.
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)
    later = unique("planned rebuild")
    form.get_by_label("Machines", exact=True).select_option(label=["Lathe 01"])
    form.get_by_label("Tags", exact=True).fill(tag)
    form.locator("#new-silence-severities").get_by_label("Warning", exact=True).check()
    form.get_by_label("Starts", exact=True).fill(local_input(page, start))
    form.get_by_label("Ends", exact=True).fill(local_input(page, start + timedelta(hours=2)))
    form.get_by_label("Comment", exact=True).fill(later)
    form.get_by_role("button", name="Create silence").click()
    upcoming = page.locator("#silences-upcoming tbody tr").filter(has_text=later)
    expect(upcoming).to_have_count(1)
    expect(upcoming).to_contain_text(f"machine Lathe 01 · tag {tag}")
    [stored] = [s for s in demo.api("GET", "/silences").json() if s["comment"] == later]
    assert (parsed(stored["starts_at"]), parsed(stored["ends_at"])) == (start, start + timedelta(hours=2))
    assert stored["matchers"]["machine_ids"] == [machine_id(demo, "Lathe 01")]
    assert (stored["matchers"]["tags"], stored["matchers"]["severities"]) == ([tag], ["warning"])
    assert stored["active"] is False

    # One from now (Starts left empty) until the default end.
    form = page.locator("#new-silence-form")
    now = unique("line stop")
    form.get_by_label("Tags", exact=True).fill(tag)
    form.get_by_label("Comment", exact=True).fill(now)
    form.get_by_role("button", name="Create silence").click()
    active = page.locator("#silences-active tbody tr").filter(has_text=now)
    expect(active).to_have_count(1)
    expect(active).to_contain_text("you (")

    # Ending early: the active one now, the upcoming one before it starts; both are listed as expired.
    active.get_by_role("button", name=re.compile("^Expire now")).click()
    expect(page.locator("#silences-expired tbody tr").filter(has_text=now)).to_have_count(1)
    upcoming.get_by_role("button", name=re.compile("^Cancel silence")).click()
    expect(page.locator("#silences-expired tbody tr").filter(has_text=later)).to_contain_text(
        "cancelled before it started"
    )
    expect(page.locator("#silences-active tbody tr").filter(has_text=now)).to_have_count(0)
    for silence in demo.api("GET", "/silences").json():
        if silence["comment"] in (now, later):
            assert silence["active"] is False
    [cancelled] = [s for s in demo.api("GET", "/silences").json() if s["comment"] == later]
    assert cancelled["ends_at"] == cancelled["starts_at"]


def test_viewers_see_silences_and_the_log_but_change_nothing(demo: Demo, page_factory: Callable[..., Page]) -> None:
    comment = unique("inspection")
    ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    silence = demo.api(
        "POST", "/silences", json={"matchers": {"tags": ["viewer-check"]}, "ends_at": ends, "comment": comment}
    ).json()
    page = page_factory()
    as_role(page, demo, "viewer")
    for hidden in ("Channels", "Policies"):
        expect(page.get_by_role("link", name=hidden)).to_be_hidden()
    page.get_by_role("link", name="Silences").click()
    row = page.locator("#silences-active tbody tr").filter(has_text=comment)
    expect(row).to_contain_text("tag viewer-check")
    expect(page.locator("#new-silence-form")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^(Expire now|Cancel silence)"))).to_have_count(0)
    no_null_text(page)
    page.get_by_role("link", name="Notification log").click()
    expect(page.locator("#deliveries-table")).to_be_visible()
    expect(page.get_by_label("Channel", exact=True)).to_have_count(0)
    page.goto(f"{demo.base_url}/#/channels")
    expect(page.locator("#channels-denied")).to_be_visible()
    expect(page.locator("#channels-table, #new-channel-form")).to_have_count(0)
    page.goto(f"{demo.base_url}/#/policies")
    expect(page.locator("#policies-denied")).to_be_visible()
    expect(page.locator("#policies-table, #new-policy-form")).to_have_count(0)
    no_null_text(page)
    demo.api("POST", f"/silences/{silence['id']}/expire").raise_for_status()


@contextmanager
def a_failed_notification(demo: Demo, receiver: WebhookReceiver) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    """A channel whose webhook refuses (400) and the failed notification(s) of an alert routed to it; removed after."""
    receiver.status = 400  # a permanent refusal: the notification fails at once
    channel = webhook_channel(demo, unique("Refusing hook"), receiver.url)
    lathe = machine_id(demo, "Lathe 01")
    rule = demo.api(
        "POST",
        "/alert-rules",
        json={
            "name": unique("log check"),
            "metric_name": "current",
            "machine_id": lathe,
            "condition": ">",
            "threshold": 0,
            "severity": "info",
            "enabled": False,  # enabled once the policy names it: its alert is routed, not "unrouted"
        },
    ).json()
    policy = demo.api(
        "POST",
        "/notification-policies",
        json={
            "name": unique("log check"),
            "channel_ids": [channel["id"]],
            "matchers": {"rule_ids": [rule["id"]]},
            "group_wait": 0,
        },
    ).json()
    try:
        demo.api("PATCH", f"/alert-rules/{rule['id']}", json={"enabled": True}).raise_for_status()
        # The demo's next reading of Lathe 01 opens the alert; its notification is refused.
        failed = wait_for(
            lambda: demo.api("GET", "/notifications", params={"state": "failed", "channel_id": channel["id"]}).json()[
                "items"
            ],
            "a failed notification",
        )
        yield channel, failed
    finally:
        demo.api("DELETE", f"/alert-rules/{rule['id']}")
        demo.api("DELETE", f"/notification-policies/{policy['id']}")
        demo.api("DELETE", f"/notification-channels/{channel['id']}")


@pytest.mark.parametrize("role", ["viewer", "admin"])
def test_the_log_shows_a_failed_delivery_with_its_reason(
    demo: Demo, page_factory: Callable[..., Page], receiver: WebhookReceiver, role: str
) -> None:
    with a_failed_notification(demo, receiver) as (channel, failed):
        assert failed[0]["last_error"] == "webhook answered 400"
        page = page_factory()
        as_role(page, demo, role)
        page.get_by_role("link", name="Notification log").click()
        expect(page.get_by_role("heading", name="Notification log")).to_be_visible()
        no_null_text(page)
        page.get_by_label("State", exact=True).select_option("failed")
        row = page.locator(f"#deliveries-table tr[data-notification-id='{failed[0]['id']}']")
        expect(row).to_have_attribute("data-state", "failed")
        expect(row.locator(".delivery-outcome")).to_have_text("webhook answered 400")
        expect(row.locator(".delivery-alerts")).to_contain_text("Lathe 01 · current (info)")
        expect(row).to_contain_text("firing")
        shown = "channel " + channel["id"][:8] if role == "viewer" else channel["name"]
        expect(row.locator(".delivery-channel")).to_have_text(shown)
        expect(page.locator("#deliveries-table tbody tr[data-state='delivered']")).to_have_count(0)
        if role == "admin":
            page.get_by_label("Channel", exact=True).select_option(label=channel["name"])
            expect(page.locator("#deliveries-table tbody tr")).to_have_count(len(failed))


def test_the_log_shows_the_latest_filter_when_an_earlier_answer_arrives_late(
    demo: Demo, page_factory: Callable[..., Page], receiver: WebhookReceiver
) -> None:
    """The log's first load (every notification, at least one) is held back until a filter that matches nothing
    has been shown; its late answer must not replace the filtered table (a slow link, filters changed quickly)."""
    with a_failed_notification(demo, receiver):
        quiet = webhook_channel(demo, unique("Quiet hook"), receiver.url)  # never notified: its log is empty
        try:
            page = page_factory()
            as_role(page, demo, "admin")
            held = hold_first_answer(page, re.compile(r"/api/v1/notifications\?"))
            page.get_by_role("link", name="Notification log").click()
            held.wait_held()
            page.get_by_label("Channel", exact=True).select_option(label=quiet["name"])
            rows = page.locator("#deliveries-table tbody")
            expect(rows).to_contain_text("No notifications here.")
            expect(rows).to_have_attribute("data-answers", "1")  # the filter's answer; the first is still held
            held.release()
            # The page has handled both answers, the filter's and then the held one: only now does the table say
            # whether the late answer was dropped (shown, it would replace the table a moment after it arrived).
            expect(rows).to_have_attribute("data-answers", "2")
            expect(rows).to_contain_text("No notifications here.")
            expect(page.locator("#deliveries-table tbody tr[data-notification-id]")).to_have_count(0)
        finally:
            demo.api("DELETE", f"/notification-channels/{quiet['id']}")


def test_screenshots_of_the_notification_pages(
    demo: Demo, page_factory: Callable[..., Page], receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Pictures of the four pages for docs/dashboard.md (rewritten with HALTLESS_UPDATE_SCREENSHOTS=1)."""
    target = IMAGES if os.environ.get("HALTLESS_UPDATE_SCREENSHOTS") == "1" else tmp_path
    receiver.status = 503
    hook = webhook_channel(demo, "Maintenance team hook", receiver.url)
    # Cloud metadata's address: refused by the network policy, so its notification fails at once.
    metadata = webhook_channel(demo, "Misconfigured hook", "http://169.254.169.254/hook")
    demo.api(
        "POST",
        "/notification-channels",
        json={
            "name": "Night shift",
            "type": "email",
            "email": {
                "host": "smtp.plant.example",
                "from_address": "haltless@plant.example",
                "to_addresses": ["oncall@plant.example"],
            },
        },
    ).raise_for_status()
    lathe = machine_id(demo, "Lathe 01")
    policy = demo.api(
        "POST",
        "/notification-policies",
        json={
            "name": "Warnings of Lathe 01",
            "channel_ids": [hook["id"], metadata["id"]],
            "matchers": {"machine_ids": [lathe], "severities": ["warning", "critical"]},
            "group_wait": 0,
            "repeat_interval": 3600,
        },
    ).json()
    rule = demo.api(
        "POST",
        "/alert-rules",
        json={"name": "Current high", "metric_name": "current", "machine_id": lathe, "condition": ">", "threshold": 0},
    ).json()
    start = datetime.now(UTC) + timedelta(days=1)
    demo.api(
        "POST",
        "/silences",
        json={
            "matchers": {"machine_ids": [lathe]},
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=4)).isoformat(),
            "comment": "spindle rebuild",
        },
    ).raise_for_status()
    wait_for(lambda: len(demo.api("GET", "/notifications").json()["items"]) >= 2, "a try on both channels")
    page = page_factory(width=1100, height=700)
    as_role(page, demo, "admin")
    shots = {
        "channels": ("#/channels", "#channels-table tbody tr"),
        "policies": ("#/policies", "#policies-table tbody tr"),
        "silences": ("#/silences", "#silences-upcoming tbody tr"),
        "notification-log": ("#/notifications", "#deliveries-table tbody tr[data-notification-id]"),
    }
    try:
        for name, (hash_, ready) in shots.items():
            page.goto(f"{demo.base_url}/{hash_}")
            expect(page.locator(ready).first).to_be_visible()
            path = target / f"{name}.png"
            page.screenshot(path=str(path), scale="css")
            assert path.stat().st_size < 400_000
    finally:
        demo.api("DELETE", f"/alert-rules/{rule['id']}")
        demo.api("DELETE", f"/notification-policies/{policy['id']}")
