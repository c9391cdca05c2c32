"""The alert page's lifecycle in a real headless Chromium against `haltless demo`: acknowledge with a comment,
who acknowledged, shelve and unshelve, and the alert's history."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.dashboard.conftest import DEMO_EMAIL, Demo, log_in
from tests.dashboard.test_dashboard import forced_alert, machine_ids

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip("the playwright package is missing: pip install -e '.[dev]'", allow_module_level=True)

__all__ = ["forced_alert"]  # the fixture, shared with test_dashboard.py


def test_an_operator_acknowledges_with_a_comment_shelves_and_reads_the_history(
    shared_demo: Demo, page_factory: Callable[..., Page], forced_alert: Callable[[str, str], dict[str, Any]]
) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    page.get_by_role("link", name=re.compile("^Alerts")).click()
    expect(page.get_by_role("heading", name="Open alerts")).to_be_visible()
    mill = machine_ids(shared_demo)["Mill 01"]
    forced_alert(mill, f"lifecycle {uuid.uuid4().hex[:6]}")
    item = page.locator(f"li.alert-item:has(a[href='#/machines/{mill}'])")
    expect(item).to_have_count(1, timeout=15_000)
    alert_id = item.get_attribute("data-alert-id")
    item = page.locator(f"li.alert-item[data-alert-id='{alert_id}']")

    item.get_by_label("Comment").fill("coolant pump checked")
    item.get_by_role("button", name="Acknowledge").click()
    expect(item).to_have_attribute("data-state", "acknowledged")
    expect(item.locator(".acknowledged-by")).to_contain_text(f"Acknowledged by {DEMO_EMAIL}")
    expect(item.locator(".acknowledged-by .comment")).to_have_text("coolant pump checked")
    expect(item.get_by_label("Comment")).to_have_value("")

    item.get_by_label("Shelve for").select_option("14400")
    item.get_by_label("Comment").fill("waiting for the spare")
    item.get_by_role("button", name="Shelve").click()
    expect(item).to_have_attribute("data-shelved", "true")
    expect(item).to_contain_text("Shelved until")
    shown = shared_demo.api("GET", f"/alerts/{alert_id}").json()
    assert shown["shelved_until"] is not None and shown["acknowledge_comment"] == "coolant pump checked"

    item.get_by_role("button", name="History").click()
    entries = item.locator(".alert-history li")
    expect(entries).to_have_count(3)
    expect(entries.nth(0)).to_contain_text("Opened")
    expect(entries.nth(0)).to_contain_text("System")
    expect(entries.nth(1)).to_contain_text(f"Acknowledged · {DEMO_EMAIL}")
    expect(entries.nth(1)).to_contain_text("coolant pump checked")
    expect(entries.nth(2)).to_contain_text("Shelved")
    expect(entries.nth(2)).to_contain_text("waiting for the spare")

    # The open history follows live changes; unshelving adds its entry.
    item.get_by_role("button", name="Unshelve").click()
    expect(item).to_have_attribute("data-shelved", "false")
    expect(entries).to_have_count(4)
    expect(entries.nth(3)).to_contain_text("Unshelved")
    item.get_by_role("button", name="Hide history").click()
    expect(item.locator(".alert-history")).to_be_hidden()


def test_a_flapping_alert_carries_a_badge_live_and_after_a_reload(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    page.get_by_role("link", name=re.compile("^Alerts")).click()
    expect(page.get_by_role("heading", name="Open alerts")).to_be_visible()
    mill = machine_ids(shared_demo)["Mill 01"]
    metric = f"flap_load_{uuid.uuid4().hex[:6]}"  # a metric of this test only: no simulated reading crosses it
    rule = shared_demo.api(
        "POST",
        "/alert-rules",
        json={
            "name": f"flap {metric}",
            "metric_name": metric,
            "machine_id": mill,
            "condition": ">",
            "threshold": 50,
            "severity": "warning",
            "flap_threshold": 1,
            "flap_window_seconds": 600,
            "message": "{metric_name} at {value}",
        },
    )
    rule.raise_for_status()
    rule_id = rule.json()["id"]
    try:
        # Over, back, over again: the second alert opens while one already opened within the window, so it flaps.
        start = datetime.now(UTC) - timedelta(seconds=30)
        readings = [
            {
                "machine_id": mill,
                "metric_name": metric,
                "value": value,
                "timestamp": (start + timedelta(seconds=i)).isoformat(),
            }
            for i, value in enumerate((60.0, 40.0, 60.0))
        ]
        shared_demo.api("POST", "/sensor-data", json={"readings": readings}).raise_for_status()
        flapping = page.locator("li.alert-item[data-flapping='true']").filter(has_text=metric)
        expect(flapping).to_have_count(1, timeout=15_000)
        expect(flapping.locator(".badge.flapping")).to_have_text("≋Flapping")
        alert_id = flapping.get_attribute("data-alert-id")
        assert shared_demo.api("GET", f"/alerts/{alert_id}").json()["flapping"] is True
        # The first alert of the flap has no badge; loaded over REST, the flapping one keeps its badge.
        page.reload()
        expect(page.locator(f"li.alert-item[data-alert-id='{alert_id}'] .badge.flapping")).to_be_visible()
        expect(page.locator("li.alert-item[data-flapping='false']").filter(has_text=metric)).to_have_count(0)
        # The alert history lists it with the badge too.
        page.get_by_role("link", name="Alert history").click()
        expect(page.locator(f"tr[data-alert-id='{alert_id}'] .badge.flapping")).to_be_visible()
    finally:
        shared_demo.api("DELETE", f"/alert-rules/{rule_id}")
