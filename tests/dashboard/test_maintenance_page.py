"""The maintenance windows page in a real headless Chromium against `haltless demo`: operators create (daily and
weekly, per machine or per tag, in an IANA time zone), edit and delete windows; viewers only read them."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.dashboard.conftest import Demo
from tests.dashboard.test_management import as_role, no_null_text
from tests.dashboard.test_notification_pages import machine_id, row_named, wait_for

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip("the playwright package is missing: pip install -e '.[dev]'", allow_module_level=True)


def stored(demo: Demo, name: str) -> dict[str, Any]:
    [window] = [w for w in demo.api("GET", "/maintenance-windows").json() if w["name"] == name]
    return dict(window)


def test_operator_creates_edits_and_deletes_maintenance_windows(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    page = page_factory()
    as_role(page, shared_demo, "operator")
    page.get_by_role("link", name="Maintenance").click()
    expect(page.get_by_role("heading", name="Maintenance windows")).to_be_visible()
    no_null_text(page)
    form = page.locator("#new-window-form")
    # The time zones are the browser's IANA list.
    zones = form.get_by_label("Time zone", exact=True).locator("option")
    assert zones.count() > 100
    expect(zones.filter(has_text=re.compile("^America/New_York$"))).to_have_count(1)

    # Weekly, one machine, Berlin time; a weekly window without weekdays is caught first.
    weekend = f"Weekend service {uuid.uuid4().hex[:6]}"
    form.get_by_label("Name", exact=True).fill(weekend)
    form.get_by_label("Machine", exact=True).select_option(label="Lathe 01")
    form.get_by_label("Repeats", exact=True).select_option("weekly")
    form.get_by_label("Starts at", exact=True).fill("22:00")
    form.get_by_label("Lasts (h)", exact=True).fill("6")
    form.get_by_label("Time zone", exact=True).select_option("Europe/Berlin")
    form.get_by_label("Comment", exact=True).fill("lubrication")
    form.get_by_role("button", name="Add window").click()
    expect(page.locator("#new-window-error")).to_contain_text("weekdays")
    form.locator("#new-window-days").get_by_label("Sat", exact=True).check()
    form.locator("#new-window-days").get_by_label("Sun", exact=True).check()
    form.get_by_role("button", name="Add window").click()
    row = row_named(page, "maintenance-table", weekend)
    expect(row.locator(".window-covers")).to_have_text("machine Lathe 01")
    expect(row.locator(".window-when")).to_have_text("weekly on sat, sun at 22:00 Europe/Berlin for 6 h")
    window = stored(shared_demo, weekend)
    assert (window["machine_id"], window["tag"]) == (machine_id(shared_demo, "Lathe 01"), None)
    assert (window["frequency"], window["days"], window["start_time"]) == ("weekly", ["sat", "sun"], "22:00")
    assert (window["duration_seconds"], window["timezone"], window["comment"]) == (
        21600,
        "Europe/Berlin",
        "lubrication",
    )

    # Daily, by tag, starting a minute ago in UTC: it is on now (a tag no demo machine has: nothing changes).
    form = page.locator("#new-window-form")
    expect(form.get_by_label("Name", exact=True)).to_have_value("")
    expect(form.locator("#new-window-days")).to_be_visible()
    nightly = f"Nightly check {uuid.uuid4().hex[:6]}"
    tag = f"nightly-{uuid.uuid4().hex[:6]}"
    started = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%H:%M")
    form.get_by_label("Name", exact=True).fill(nightly)
    form.get_by_label("Covers", exact=True).select_option("tag")
    expect(form.get_by_label("Machine", exact=True)).to_be_hidden()
    form.get_by_label("Tag", exact=True).fill(tag)
    form.get_by_label("Repeats", exact=True).select_option("daily")
    expect(form.locator("#new-window-days")).to_be_hidden()
    form.get_by_label("Starts at", exact=True).fill(started)
    form.get_by_label("Lasts (h)", exact=True).fill("2")
    form.get_by_label("Time zone", exact=True).select_option("UTC")
    form.get_by_role("button", name="Add window").click()
    daily = row_named(page, "maintenance-table", nightly)
    expect(daily.locator(".window-covers")).to_have_text(f"tag {tag}")
    window = stored(shared_demo, nightly)
    assert (window["machine_id"], window["tag"], window["frequency"], window["days"]) == (None, tag, "daily", [])
    wait_for(lambda: stored(shared_demo, nightly)["active"], "the window to be on")
    page.reload()
    expect(daily.locator(".window-state")).to_have_text("🔧 On now")

    # Edit: the weekly window moves to a tag and to Thursdays, 01:30 New York time, for 90 minutes.
    row.get_by_role("button", name=re.compile("^Edit")).click()
    editor = page.locator("#edit-window-form")
    expect(editor.get_by_label("Time zone", exact=True)).to_have_value("Europe/Berlin")
    expect(editor.locator("#edit-window-days").get_by_label("Sat", exact=True)).to_be_checked()
    editor.get_by_label("Covers", exact=True).select_option("tag")
    editor.get_by_label("Tag", exact=True).fill(tag)
    for day, on in (("Sat", False), ("Sun", False), ("Thu", True)):
        editor.locator("#edit-window-days").get_by_label(day, exact=True).set_checked(on)
    editor.get_by_label("Starts at", exact=True).fill("01:30")
    editor.get_by_label("Lasts (h)", exact=True).fill("1.5")
    editor.get_by_label("Time zone", exact=True).select_option("America/New_York")
    editor.get_by_role("button", name="Save window").click()
    expect(editor).to_have_count(0)
    expect(row.locator(".window-when")).to_have_text("weekly on thu at 01:30 America/New_York for 1 h 30 min")
    window = stored(shared_demo, weekend)
    assert (window["machine_id"], window["tag"], window["days"]) == (None, tag, ["thu"])
    assert (window["start_time"], window["duration_seconds"], window["timezone"]) == ("01:30", 5400, "America/New_York")
    # Bad input: the server's reason is shown.
    row.get_by_role("button", name=re.compile("^Edit")).click()
    editor.get_by_label("Lasts (h)", exact=True).fill("0")
    editor.get_by_role("button", name="Save window").click()
    expect(page.locator("#edit-window-error")).to_contain_text("duration_seconds")
    editor.get_by_role("button", name="Cancel").click()

    for doomed in (row, daily):
        page.once("dialog", lambda dialog: dialog.accept())
        doomed.get_by_role("button", name=re.compile("^Delete")).click()
        expect(doomed).to_have_count(0)
    assert not [w for w in shared_demo.api("GET", "/maintenance-windows").json() if w["name"] in (weekend, nightly)]


def test_viewers_see_maintenance_windows_but_change_nothing(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    name = f"Die change {uuid.uuid4().hex[:6]}"
    window = shared_demo.api(
        "POST",
        "/maintenance-windows",
        json={
            "name": name,
            "tag": "viewer-check",
            "frequency": "daily",
            "start_time": "02:00",
            "duration_seconds": 1800,
            "timezone": "America/New_York",
        },
    )
    window.raise_for_status()
    page = page_factory()
    as_role(page, shared_demo, "viewer")
    page.get_by_role("link", name="Maintenance").click()
    row = row_named(page, "maintenance-table", name)
    expect(row.locator(".window-when")).to_have_text("daily at 02:00 America/New_York for 30 min")
    expect(row.locator(".window-next")).not_to_have_text("–")
    expect(page.locator("#new-window-form")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^(Edit|Delete)"))).to_have_count(0)
    no_null_text(page)
    shared_demo.api("DELETE", f"/maintenance-windows/{window.json()['id']}").raise_for_status()


def test_the_maintenance_page_follows_windows_starting_and_ending_live(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    """No reload: the scheduler moving a machine into and out of maintenance reaches the open page over the socket."""
    tag = f"live-{uuid.uuid4().hex[:6]}"
    name = f"Spare press {uuid.uuid4().hex[:6]}"
    machine = shared_demo.api("POST", "/machines", json={"name": name, "tags": [tag]})
    machine.raise_for_status()
    page = page_factory()
    as_role(page, shared_demo, "viewer")
    page.get_by_role("link", name="Maintenance").click()
    now_list = page.locator("#maintenance-now")
    expect(now_list).not_to_contain_text(name)

    window_name = f"Live window {uuid.uuid4().hex[:6]}"
    created = shared_demo.api(
        "POST",
        "/maintenance-windows",
        json={
            "name": window_name,
            "tag": tag,
            "frequency": "daily",
            "start_time": (datetime.now(UTC) - timedelta(minutes=1)).strftime("%H:%M"),
            "duration_seconds": 7200,
            "timezone": "UTC",
        },
    )
    created.raise_for_status()
    # The page was not told of the new window; the machine entering maintenance brings it, already on.
    expect(now_list.get_by_role("link", name=name)).to_be_visible()
    row = row_named(page, "maintenance-table", window_name)
    expect(row.locator(".window-state")).to_have_text("🔧 On now")

    window_id = created.json()["id"]
    shared_demo.api("PATCH", f"/maintenance-windows/{window_id}", json={"enabled": False}).raise_for_status()
    expect(now_list).not_to_contain_text(name)
    expect(row.locator(".window-state")).to_have_text("⏸ Disabled")
    no_null_text(page)
    shared_demo.api("DELETE", f"/maintenance-windows/{window_id}").raise_for_status()
    shared_demo.api("DELETE", f"/machines/{machine.json()['id']}").raise_for_status()
