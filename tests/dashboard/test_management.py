"""The management pages in a real headless Chromium against `haltless demo`: machines, users, API keys, alert
history, your account and the rules editor, each as admin, operator and viewer (each sees only what its role may
do). With HALTLESS_UPDATE_SCREENSHOTS=1 the screenshot test rewrites the pictures in docs/images/."""

from __future__ import annotations

import csv
import io
import os
import re
import time
import tomllib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from haltless.agent.config import load_config
from tests.dashboard.conftest import Demo, hold_first_answer, log_in

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip("the playwright package is missing: pip install -e '.[dev]'", allow_module_level=True)

PASSWORD = "a-long-password"
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def new_user(demo: Demo, role: str) -> str:
    """A user of the demo tenant with `role` and PASSWORD; returns the email."""
    email = f"{role}-{uuid.uuid4().hex[:6]}@example.com"
    demo.api("POST", "/users", json={"email": email, "password": PASSWORD, "role": role}).raise_for_status()
    return email


def as_role(page: Page, demo: Demo, role: str) -> None:
    if role == "admin":
        log_in(page, demo)
    else:
        log_in(page, demo, email=new_user(demo, role), password=PASSWORD)
    expect(page.locator("#whoami")).to_contain_text(f"({role})")


def no_null_text(page: Page) -> None:
    assert "null" not in page.locator("#view").inner_text()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_rules_page_shows_no_literal_null(shared_demo: Demo, page_factory: Callable[..., Page], role: str) -> None:
    page = page_factory()
    as_role(page, shared_demo, role)
    page.goto(f"{shared_demo.base_url}/#/rules")
    expect(page.get_by_text("Only admins can change alert rules.")).to_be_visible()
    expect(page.locator("#rules-table")).to_be_visible()
    no_null_text(page)
    expect(page.get_by_role("button", name=re.compile("^Edit"))).to_have_count(0)


def test_admin_edits_a_rule_and_is_warned_about_a_metric_never_reported(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    page = page_factory()
    as_role(page, shared_demo, "admin")
    page.get_by_role("link", name="Alert rules").click()
    expect(page.locator("#rules-table")).to_be_visible()
    no_null_text(page)
    name = f"Hot spindle {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Metric", exact=True).fill("curent")
    warning = page.locator("#rule-metric-warning")
    expect(warning).to_contain_text("No machine has reported “curent”")
    expect(warning).to_contain_text("“curent”")
    warning.get_by_role("button", name="current", exact=True).click()
    expect(page.get_by_label("Metric", exact=True)).to_have_value("current")
    expect(warning).to_be_hidden()
    page.get_by_label("Threshold", exact=True).fill("500")
    page.get_by_role("button", name="Create rule").click()
    row = page.locator("#rules-table tbody tr").filter(has=page.get_by_role("rowheader", name=name))
    expect(row).to_have_count(1)
    row.get_by_role("button", name=re.compile("^Edit")).click()
    expect(page.get_by_role("heading", name=f"Edit rule “{name}”")).to_be_visible()
    page.get_by_label("Threshold", exact=True).fill("600")
    page.get_by_label("Severity", exact=True).select_option("critical")
    page.get_by_role("button", name="Save changes").click()
    expect(row.locator("td.num").first).to_have_text("> 600")
    rule = next(r for r in shared_demo.api("GET", "/alert-rules").json() if r["name"] == name)
    assert (rule["metric_name"], rule["threshold"], rule["severity"]) == ("current", 600.0, "critical")
    shared_demo.api("DELETE", f"/alert-rules/{rule['id']}")


def test_admin_makes_a_no_data_rule_and_sets_flap_detection(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    page = page_factory()
    as_role(page, shared_demo, "admin")
    page.get_by_role("link", name="Alert rules").click()
    expect(page.locator("#rules-table")).to_be_visible()
    form = page.locator("#rule-form")
    # no_data: no threshold, and "Must last" is required.
    silent = f"Silent current {uuid.uuid4().hex[:6]}"
    form.get_by_label("Name", exact=True).fill(silent)
    form.get_by_label("Metric", exact=True).fill("current")
    form.get_by_label("Condition", exact=True).select_option("no_data")
    expect(form.get_by_label("Threshold", exact=True)).to_be_hidden()
    form.get_by_label("Must last (s)", exact=True).fill("0")
    form.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rule-form-error")).to_contain_text("Must last")
    form.get_by_label("Must last (s)", exact=True).fill("300")
    form.get_by_label("Detect flapping").uncheck()
    expect(form.get_by_label("Flapping after (alerts)", exact=True)).to_be_hidden()
    form.get_by_role("button", name="Create rule").click()
    row = page.locator("#rules-table tbody tr").filter(has=page.get_by_role("rowheader", name=silent))
    expect(row.locator(".rule-condition")).to_have_text("no data for 300 s")
    expect(row.locator(".rule-flap")).to_have_text("off")
    rule = next(r for r in shared_demo.api("GET", "/alert-rules").json() if r["name"] == silent)
    assert (rule["condition"], rule["threshold"], rule["for_seconds"]) == ("no_data", None, 300.0)
    assert rule["flap_threshold"] is None

    # A threshold rule with its own flap settings, then edited back to the default, then off.
    noisy = f"Noisy current {uuid.uuid4().hex[:6]}"
    form.get_by_label("Name", exact=True).fill(noisy)
    form.get_by_label("Metric", exact=True).fill("current")
    expect(form.get_by_label("Condition", exact=True)).to_have_value(">")
    expect(form.get_by_label("Detect flapping")).to_be_checked()
    form.get_by_label("Threshold", exact=True).fill("500")
    form.get_by_label("Flapping after (alerts)", exact=True).fill("5")
    form.get_by_label("Flap window (min)", exact=True).fill("15")
    form.get_by_role("button", name="Create rule").click()
    row = page.locator("#rules-table tbody tr").filter(has=page.get_by_role("rowheader", name=noisy))
    expect(row.locator(".rule-flap")).to_have_text("more than 5 alerts in 15 min")
    rule = next(r for r in shared_demo.api("GET", "/alert-rules").json() if r["name"] == noisy)
    assert (rule["flap_threshold"], rule["flap_window_seconds"]) == (5, 900.0)
    row.get_by_role("button", name=re.compile("^Edit")).click()
    expect(form.get_by_label("Flapping after (alerts)", exact=True)).to_have_value("5")
    form.get_by_label("Detect flapping").uncheck()
    form.get_by_role("button", name="Save changes").click()
    expect(row.locator(".rule-flap")).to_have_text("off")
    rule = next(r for r in shared_demo.api("GET", "/alert-rules").json() if r["name"] == noisy)
    assert rule["flap_threshold"] is None
    # Anomaly rules have neither no_data nor flap detection.
    form.get_by_label("Kind", exact=True).select_option("anomaly")
    expect(form.get_by_label("Detect flapping")).to_be_hidden()
    form.get_by_label("Kind", exact=True).select_option("threshold")
    expect(form.get_by_label("Detect flapping")).to_be_visible()
    no_null_text(page)
    for name in (silent, noisy):
        rule = next(r for r in shared_demo.api("GET", "/alert-rules").json() if r["name"] == name)
        shared_demo.api("DELETE", f"/alert-rules/{rule['id']}").raise_for_status()


def test_a_login_lockout_says_how_long_to_wait(shared_demo: Demo, page_factory: Callable[..., Page]) -> None:
    email = new_user(shared_demo, "viewer")
    for _ in range(10):
        wrong = httpx.post(f"{shared_demo.base_url}/api/v1/auth/login", json={"email": email, "password": "wrong-one"})
        assert wrong.status_code == 401
    page = page_factory()
    page.goto(f"{shared_demo.base_url}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text(re.compile(r"^Too many failed sign-ins\. Try again in \d+ s\.$"))
    expect(page.get_by_role("button", name="Sign in")).to_be_disabled()


def test_admin_manages_machines(shared_demo: Demo, page_factory: Callable[..., Page], tmp_path: Path) -> None:
    page = page_factory()
    as_role(page, shared_demo, "admin")
    page.get_by_role("link", name="Machines", exact=True).click()
    table = page.locator("#machines-table")
    expect(table.get_by_role("rowheader", name="Lathe 01")).to_be_visible()
    no_null_text(page)
    name = f"Mill {uuid.uuid4().hex[:4]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Location", exact=True).fill("Hall 4")
    page.get_by_label("Tags", exact=True).fill("cnc, line-b")
    page.get_by_role("button", name="Add machine").click()
    row = table.locator("tbody tr").filter(has=page.get_by_role("rowheader", name=name))
    expect(row).to_contain_text("cnc, line-b")
    # A second machine of that name is refused with the server's reason.
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Add machine").click()
    expect(page.locator("#new-machine-error")).to_contain_text("exists already")
    # Rename, move and retag.
    row.get_by_role("button", name=re.compile("^Edit")).click()
    editor = page.locator("#edit-machine-form")
    editor.get_by_label("Name").fill(f"{name} B")
    editor.get_by_label("Location").fill("Hall 5")
    editor.get_by_label("Tags").fill("cnc")
    editor.get_by_role("button", name="Save machine").click()
    row = table.locator("tbody tr").filter(has=page.get_by_role("rowheader", name=f"{name} B"))
    expect(row).to_contain_text("Hall 5")
    machine = next(m for m in shared_demo.api("GET", "/machines").json()["items"] if m["name"] == f"{name} B")
    assert (machine["location"], machine["tags"]) == ("Hall 5", ["cnc"])
    # Maintenance on and off.
    row.get_by_role("button", name=re.compile("^Start maintenance")).click()
    expect(row).to_have_attribute("data-maintenance", "true")
    row.get_by_role("button", name=re.compile("^End maintenance")).click()
    expect(row).to_have_attribute("data-maintenance", "false")
    # The agent config names the machine and loads as a valid agent configuration.
    row.get_by_role("button", name=re.compile("^Agent config")).click()
    snippet = page.locator("#agent-config-text")
    expect(snippet).to_contain_text(machine["id"])
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.read_text() == snippet.inner_text() + ("" if snippet.inner_text().endswith("\n") else "\n")
    config = load_config(saved, {"HALTLESS_AGENT_KEY": "hlk_test"})
    assert list(config.machines.values()) == [machine["id"]]
    assert config.server_url == shared_demo.base_url
    assert tomllib.loads(saved.read_text())["sources"][0]["machines"] == list(config.machines)
    # Delete, after confirming.
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Delete")).click()
    expect(row).to_have_count(0)
    assert shared_demo.api("GET", f"/machines/{machine['id']}").status_code == 404


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_machines_page_offers_only_what_the_role_may_do(
    shared_demo: Demo, page_factory: Callable[..., Page], role: str
) -> None:
    page = page_factory()
    as_role(page, shared_demo, role)
    page.get_by_role("link", name="Machines", exact=True).click()
    row = page.locator("#machines-table tbody tr").filter(has=page.get_by_role("rowheader", name="Lathe 01"))
    expect(row).to_have_count(1)
    no_null_text(page)
    expect(page.locator("#new-machine-form")).to_have_count(0)
    expect(row.get_by_role("button", name=re.compile("^Edit"))).to_have_count(0)
    expect(row.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)
    expect(row.get_by_role("button", name=re.compile("^Agent config"))).to_have_count(1)
    maintenance = row.get_by_role("button", name=re.compile("maintenance"))
    if role == "viewer":
        expect(maintenance).to_have_count(0)
        return
    maintenance.click()
    expect(row).to_have_attribute("data-maintenance", "true")
    row.get_by_role("button", name=re.compile("^End maintenance")).click()
    expect(row).to_have_attribute("data-maintenance", "false")


def test_admin_manages_users(shared_demo: Demo, page_factory: Callable[..., Page]) -> None:
    page = page_factory()
    as_role(page, shared_demo, "admin")
    page.get_by_role("link", name="Users").click()
    expect(page.locator("#users-table")).to_be_visible()
    no_null_text(page)
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    form = page.locator("#new-user-form")
    form.get_by_label("Email").fill(email)
    form.get_by_role("button", name="Generate a password").click()
    first_password = form.get_by_label("First password").input_value()
    assert len(first_password) >= 8
    form.get_by_label("Role").select_option("operator")
    form.get_by_role("button", name="Add user").click()
    expect(page.locator("#shown-password")).to_have_text(first_password)
    assert (
        httpx.post(
            f"{shared_demo.base_url}/api/v1/auth/login", json={"email": email, "password": first_password}
        ).status_code
        == 200
    )
    row = page.locator("#users-table tbody tr").filter(has=page.get_by_role("rowheader", name=email))
    row.get_by_label(f"Role of {email}").select_option("viewer")
    expect(row.get_by_label(f"Role of {email}")).to_have_value("viewer")
    user = next(u for u in shared_demo.api("GET", "/users").json() if u["email"] == email)
    assert user["role"] == "viewer"
    row.get_by_role("button", name=re.compile("^Disable")).click()
    expect(row).to_have_attribute("data-disabled", "true")
    row.get_by_role("button", name=re.compile("^Enable")).click()
    expect(row).to_have_attribute("data-disabled", "false")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Reset password")).click()
    shown = page.locator("#shown-password")
    expect(shown).not_to_have_text(first_password)
    new_password = shown.inner_text()
    assert (
        httpx.post(
            f"{shared_demo.base_url}/api/v1/auth/login", json={"email": email, "password": new_password}
        ).status_code
        == 200
    )
    row.get_by_role("button", name=re.compile("^Sign out everywhere")).click()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Delete")).click()
    expect(row).to_have_count(0)
    assert all(u["email"] != email for u in shared_demo.api("GET", "/users").json())


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_users_and_api_keys_are_for_admins_only(
    shared_demo: Demo, page_factory: Callable[..., Page], role: str
) -> None:
    page = page_factory()
    as_role(page, shared_demo, role)
    expect(page.get_by_role("link", name="Users")).to_be_hidden()
    expect(page.get_by_role("link", name="API keys")).to_be_hidden()
    page.goto(f"{shared_demo.base_url}/#/users")
    expect(page.locator("#users-denied")).to_be_visible()
    expect(page.locator("#users-table")).to_have_count(0)
    page.goto(f"{shared_demo.base_url}/#/api-keys")
    expect(page.locator("#keys-denied")).to_be_visible()
    expect(page.locator("#keys-table")).to_have_count(0)
    no_null_text(page)


def test_admin_creates_copies_and_revokes_an_api_key(shared_demo: Demo, page_factory: Callable[..., Page]) -> None:
    page = page_factory()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    as_role(page, shared_demo, "admin")
    page.get_by_role("link", name="API keys").click()
    name = f"agent hall {uuid.uuid4().hex[:4]}"
    page.get_by_label("Key name").fill(name)
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret")
    expect(secret).to_have_text(re.compile(r"^\S{20,}$"))
    key = secret.inner_text()
    page.get_by_role("button", name="Copy key").click()
    expect(page.locator("#copy-key")).to_have_text("Copied ✓")
    assert page.evaluate("navigator.clipboard.readText()") == key
    lathe = next(m for m in shared_demo.api("GET", "/machines").json()["items"] if m["name"] == "Lathe 01")
    reading = {"readings": [{"machine_id": lathe["id"], "metric_name": "key_check", "value": 1}]}
    sent = httpx.post(f"{shared_demo.base_url}/api/v1/sensor-data", json=reading, headers=Demo.auth(key))
    assert sent.status_code == 202
    row = page.locator("#keys-table tbody tr").filter(has=page.get_by_role("rowheader", name=name))
    expect(row).to_contain_text(key[:6])
    # The secret is not in the list: only its prefix.
    assert key not in page.locator("#keys-table").inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Revoke")).click()
    expect(row).to_have_attribute("data-revoked", "true")
    refused = httpx.post(f"{shared_demo.base_url}/api/v1/sensor-data", json=reading, headers=Demo.auth(key))
    assert refused.status_code == 401


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_alert_history_filters_shows_who_acknowledged_and_exports_csv(
    shared_demo: Demo, page_factory: Callable[..., Page], role: str, tmp_path: Path
) -> None:
    machines = {m["name"]: m["id"] for m in shared_demo.api("GET", "/machines").json()["items"]}
    lathe = machines["Lathe 01"]
    rule = shared_demo.api(
        "POST",
        "/alert-rules",
        json={
            "name": f"history {uuid.uuid4().hex[:6]}",
            "metric_name": "current",
            "machine_id": lathe,
            "condition": ">",
            "threshold": 0,
            "severity": "info",
        },
    ).json()
    try:
        alert = None
        deadline = time.monotonic() + 120  # bounds only a failure: the demo reads Lathe 01 once a second
        while alert is None and time.monotonic() < deadline:
            # The demo's next reading of Lathe 01 opens it (one a second).
            items = shared_demo.api("GET", "/alerts", params={"rule_id": rule["id"]}).json()["items"]
            alert = items[0] if items else None
            time.sleep(0.2)
        assert alert is not None
        shared_demo.api("POST", f"/alerts/{alert['id']}/acknowledge").raise_for_status()
        page = page_factory()
        as_role(page, shared_demo, role)
        page.get_by_role("link", name="Alert history").click()
        no_null_text(page)
        page.get_by_label("Rule").select_option(rule["id"])
        page.get_by_label("Severity").select_option("info")
        row = page.locator(f"#history-table tr[data-alert-id='{alert['id']}']")
        expect(row).to_have_count(1)
        expect(row.locator(".acknowledged")).to_contain_text("demo@haltless.local")
        expect(page.locator("#history-table tbody tr")).to_have_count(1)
        page.get_by_label("State").select_option("resolved")
        expect(page.locator("#history-table tbody")).to_contain_text("No alert matches these filters.")
        page.get_by_label("State").select_option("acknowledged")
        expect(row).to_have_count(1)
        with page.expect_download() as download:
            page.get_by_role("button", name="Export CSV").click()
        saved = tmp_path / "alerts.csv"
        download.value.save_as(saved)
        rows = list(csv.DictReader(io.StringIO(saved.read_text())))
        assert [(r["id"], r["machine_name"], r["acknowledged_by"]) for r in rows] == [
            (alert["id"], "Lathe 01", "demo@haltless.local")
        ]
    finally:
        shared_demo.api("DELETE", f"/alert-rules/{rule['id']}")


def test_alert_history_shows_the_latest_filter_when_an_earlier_answer_arrives_late(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    """The page's first load (every alert) is held back until a filter that matches nothing has been shown; its
    late answer must not replace the filtered table (a slow link, filters changed quickly)."""
    machines = {m["name"]: m["id"] for m in shared_demo.api("GET", "/machines").json()["items"]}
    rule = {"metric_name": "current", "machine_id": machines["Lathe 01"], "condition": ">", "severity": "info"}
    firing = shared_demo.api(
        "POST", "/alert-rules", json={**rule, "name": f"late {uuid.uuid4().hex[:6]}", "threshold": 0}
    )
    never = shared_demo.api(
        "POST", "/alert-rules", json={**rule, "name": f"never {uuid.uuid4().hex[:6]}", "threshold": 1e12}
    )
    try:
        deadline = time.monotonic() + 120  # bounds only a failure: the demo reads Lathe 01 once a second
        while not shared_demo.api("GET", "/alerts", params={"rule_id": firing.json()["id"]}).json()["items"]:
            assert time.monotonic() < deadline, "the demo never opened an alert"
            time.sleep(0.2)
        page = page_factory()
        as_role(page, shared_demo, "admin")
        held = hold_first_answer(page, re.compile(r"/api/v1/alerts\?"))
        page.get_by_role("link", name="Alert history").click()
        held.wait_held()
        page.get_by_label("Rule").select_option(never.json()["id"])
        table = page.locator("#history-table tbody")
        expect(table).to_contain_text("No alert matches these filters.")
        expect(table).to_have_attribute("data-answers", "1")  # the filter's answer; the first is still held
        held.release()
        # The page has handled both answers, the filter's and then the held one: only now does the table say
        # whether the late answer was dropped (shown, it would replace the table a moment after it arrived).
        expect(table).to_have_attribute("data-answers", "2")
        expect(table).to_contain_text("No alert matches these filters.")
        expect(page.locator("#history-count")).to_have_text("0 alerts")
    finally:
        shared_demo.api("DELETE", f"/alert-rules/{firing.json()['id']}")
        shared_demo.api("DELETE", f"/alert-rules/{never.json()['id']}")


def test_a_user_changes_their_password_then_signs_out_everywhere(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    email = new_user(shared_demo, "viewer")
    page = page_factory()
    log_in(page, shared_demo, email=email, password=PASSWORD)
    page.locator("#whoami").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    no_null_text(page)
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("another-long-password")
    page.get_by_label("New password again").fill("another-long-password")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-done")).to_contain_text("Password changed")
    # This session goes on with the new tokens.
    page.get_by_role("link", name="Machines", exact=True).click()
    expect(page.locator("#machines-table tbody tr").first).to_be_visible()
    page.locator("#whoami").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.locator("#login-error")).to_have_text("You are signed out everywhere. Sign in again.")
    log_in(page, shared_demo, email=email, password="another-long-password")


def test_screenshots_of_the_management_pages(
    shared_demo: Demo, page_factory: Callable[..., Page], tmp_path: Path
) -> None:
    """Small pictures of each new page for docs/dashboard.md (rewritten with HALTLESS_UPDATE_SCREENSHOTS=1)."""
    target = IMAGES if os.environ.get("HALTLESS_UPDATE_SCREENSHOTS") == "1" else tmp_path
    # An acknowledged alert, so the history shows who acknowledged it.
    lathe = next(m for m in shared_demo.api("GET", "/machines").json()["items"] if m["name"] == "Lathe 01")
    rule = shared_demo.api(
        "POST",
        "/alert-rules",
        json={
            "name": "Current high",
            "metric_name": "current",
            "machine_id": lathe["id"],
            "condition": ">",
            "threshold": 0,
            "severity": "warning",
        },
    ).json()
    deadline = time.monotonic() + 120  # bounds only a failure: the demo reads Lathe 01 once a second
    alerts: list[dict[str, str]] = []
    while not alerts and time.monotonic() < deadline:
        alerts = shared_demo.api("GET", "/alerts", params={"rule_id": rule["id"]}).json()["items"]
        time.sleep(0.2)
    assert alerts
    shared_demo.api("POST", f"/alerts/{alerts[0]['id']}/acknowledge").raise_for_status()
    page = page_factory(width=1100, height=700)
    as_role(page, shared_demo, "admin")
    shots = {
        "machines": ("#/machines", "#machines-table tbody tr"),
        "users": ("#/users", "#users-table tbody tr"),
        "api-keys": ("#/api-keys", "#new-key-form"),
        "alert-history": ("#/history", "#history-table tbody tr"),
        "rules": ("#/rules", "#rules-table tbody tr"),
        "account": ("#/account", "#password-form"),
    }
    for name, (hash_, ready) in shots.items():
        page.goto(f"{shared_demo.base_url}/{hash_}")
        expect(page.locator(ready).first).to_be_visible()
        path = target / f"{name}.png"
        page.screenshot(path=str(path), scale="css")
        assert path.stat().st_size < 400_000
    shared_demo.api("DELETE", f"/alert-rules/{rule['id']}")


def test_charts_draw_thresholds_alert_markers_bands_gaps_and_say_when_a_range_has_no_data(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    """A machine that reported for an hour, paused two hours, reported half an hour and stopped 90 min ago."""
    name = f"Oven {uuid.uuid4().hex[:4]}"
    machine = shared_demo.api("POST", "/machines", json={"name": name}).json()
    rule = shared_demo.api(
        "POST",
        "/alert-rules",
        json={
            "name": "Oven hot",
            "metric_name": "temperature",
            "machine_id": machine["id"],
            "condition": ">",
            "threshold": 55,
            "severity": "warning",
        },
    ).json()
    now = datetime.now(UTC)
    minutes = [*range(300, 240, -1), *range(120, 90, -1)]
    readings = [
        {
            "machine_id": machine["id"],
            "metric_name": "temperature",
            "value": 40 + (300 - m) / 3 if m > 240 else 40,
            "unit": "celsius",
            "timestamp": (now - timedelta(minutes=m)).isoformat(),
        }
        for m in minutes
    ]
    try:
        assert shared_demo.api("POST", "/sensor-data", json={"readings": readings}).json()["accepted"] == len(minutes)
        page = page_factory()
        as_role(page, shared_demo, "viewer")
        # The fleet card says how old the value is, though the machine "reported" just now.
        oven_card = page.locator("article.machine-card").filter(has=page.get_by_role("heading", name=name))
        expect(oven_card.locator(".metric[data-metric='temperature']")).to_have_attribute("data-stale", "true")
        expect(oven_card.locator(".metric-age")).to_have_text(" (1 h old)")
        page.goto(f"{shared_demo.base_url}/#/machines/{machine['id']}")
        chart = page.locator("figure.chart[data-metric='temperature']")
        page.get_by_role("button", name="6 h").click()
        fleet_wide = [
            r
            for r in shared_demo.api("GET", "/alert-rules").json()
            if r["metric_name"] == "temperature" and r["enabled"] and r["machine_id"] is None
        ]
        expect(chart).to_have_attribute("data-thresholds", str(1 + len(fleet_wide)))
        expect(chart).to_have_attribute("data-markers", "1")
        expect(chart).to_have_attribute("data-gaps", "1")
        expect(chart).to_have_attribute("data-empty", "false")
        expect(chart.locator(".u-legend")).to_contain_text("max")
        page.get_by_role("button", name="15 min").click()
        expect(chart).to_have_attribute("data-empty", "true")
        expect(chart.get_by_text("No data in this range")).to_be_visible()
    finally:
        shared_demo.api("DELETE", f"/alert-rules/{rule['id']}")
        shared_demo.api("DELETE", f"/machines/{machine['id']}")
