"""The built-in dashboard in a real headless Chromium against `haltless demo`: what an operator sees and does."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.dashboard.conftest import Demo, log_in

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:
    if os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip("the playwright package is missing: pip install -e '.[dev]'", allow_module_level=True)

# The demo's first degrading machine warns within ~15 s and goes critical within ~40 s.
STATUS_CHANGE_TIMEOUT_MS = 75_000


def card(page: Page, name: str) -> Locator:
    return page.locator("article.machine-card").filter(has=page.get_by_role("heading", name=name))


def machine_ids(demo: Demo) -> dict[str, str]:
    items = demo.api("GET", "/machines").json()["items"]
    return {item["name"]: item["id"] for item in items}


@pytest.fixture
def forced_alert(shared_demo: Demo) -> Iterator[Callable[[str, str], dict[str, Any]]]:
    """Make a machine breach at its next reading: a critical rule `current > 0` for just that machine."""
    created: list[str] = []

    def make(machine_id: str, name: str) -> dict[str, Any]:
        response = shared_demo.api(
            "POST",
            "/alert-rules",
            json={
                "name": name,
                "metric_name": "current",
                "machine_id": machine_id,
                "condition": ">",
                "threshold": 0,
                "severity": "critical",
                "message": "Test: {metric_name} {value} over {threshold}",
            },
        )
        response.raise_for_status()
        rule: dict[str, Any] = response.json()
        created.append(rule["id"])
        return rule

    yield make
    for rule_id in created:
        shared_demo.api("DELETE", f"/alert-rules/{rule_id}")


def test_login_shows_the_fleet_with_values_that_change(shared_demo: Demo, page_factory: Callable[..., Page]) -> None:
    page = page_factory()
    page.goto(f"{shared_demo.base_url}/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    log_in(page, shared_demo)
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("article.machine-card")).to_have_count(3)
    press = card(page, "Press 01")
    temperature = press.locator(".metric[data-metric='temperature'] .value")
    first = temperature.inner_text()
    assert re.fullmatch(r"-?\d+(\.\d+)?", first), first
    expect(temperature).not_to_have_text(first, timeout=10_000)
    expect(press.locator(".metric[data-metric='temperature'] .unit")).to_have_text("°C")
    expect(press.locator(".ago")).to_have_text(re.compile(r"\d+ s ago"))
    # Filtering and sorting work from the keyboard-reachable controls.
    page.get_by_label("Filter", exact=True).fill("lathe")
    expect(page.locator("article.machine-card:visible")).to_have_count(1)
    expect(card(page, "Lathe 01")).to_be_visible()
    page.get_by_label("Filter", exact=True).fill("")
    page.get_by_label("Sort by", exact=True).select_option("name")
    names = page.locator("article.machine-card h2").all_inner_texts()
    assert names == sorted(names)


def test_status_changes_live_with_colour_icon_and_word(shared_demo: Demo, page_factory: Callable[..., Page]) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    press = card(page, "Press 01")
    expect(press).to_have_attribute("data-status", re.compile(r"\w+"))
    before = press.get_attribute("data-status")
    expect(press).not_to_have_attribute("data-status", before or "", timeout=STATUS_CHANGE_TIMEOUT_MS)
    after = press.get_attribute("data-status")
    assert after in {"healthy", "warning", "critical"}
    badge = press.locator(".badge")
    # Never colour alone: the badge carries an icon and the status in words.
    expect(badge.locator(".text")).to_have_text(after.capitalize())
    expect(badge.locator(".icon")).not_to_be_empty()
    expect(page.locator("#fleet-summary")).to_contain_text(after)


def test_alert_appears_live_and_an_operator_acknowledges_then_resolves_it(
    shared_demo: Demo, page_factory: Callable[..., Page], forced_alert: Callable[[str, str], dict[str, Any]]
) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    page.get_by_role("link", name=re.compile("^Alerts")).click()
    expect(page.get_by_role("heading", name="Open alerts")).to_be_visible()
    mill = machine_ids(shared_demo)["Mill 01"]
    forced_alert(mill, f"test alert {uuid.uuid4().hex[:6]}")
    item = page.locator(f"li.alert-item[data-state='active']:has(a[href='#/machines/{mill}'])")
    expect(item).to_have_count(1, timeout=15_000)
    expect(item.locator(".badge")).to_have_text(re.compile("Critical"))
    expect(item).to_contain_text("Test: current")
    alert_id = item.get_attribute("data-alert-id")
    item.get_by_role("button", name="Acknowledge").click()
    acknowledged = page.locator(f"li.alert-item[data-alert-id='{alert_id}']")
    expect(acknowledged).to_have_attribute("data-state", "acknowledged")
    expect(acknowledged).to_contain_text("Acknowledged")
    expect(acknowledged.get_by_role("button", name="Acknowledge")).to_have_count(0)
    assert shared_demo.api("GET", f"/alerts/{alert_id}").json()["state"] == "acknowledged"
    acknowledged.get_by_role("button", name="Resolve").click()
    expect(acknowledged).to_have_count(0)
    assert shared_demo.api("GET", f"/alerts/{alert_id}").json()["state"] == "resolved"


def test_a_viewer_sees_alerts_without_action_buttons_or_rule_admin(
    shared_demo: Demo, page_factory: Callable[..., Page], forced_alert: Callable[[str, str], dict[str, Any]]
) -> None:
    email = f"viewer-{uuid.uuid4().hex[:6]}@example.com"
    shared_demo.api("POST", "/users", json={"email": email, "password": "viewer-password", "role": "viewer"})
    lathe = machine_ids(shared_demo)["Lathe 01"]
    forced_alert(lathe, f"viewer test {uuid.uuid4().hex[:6]}")
    page = page_factory()
    log_in(page, shared_demo, email=email, password="viewer-password")
    expect(page.locator("#whoami")).to_contain_text("(viewer)")
    expect(page.get_by_role("link", name="Alert rules")).to_be_hidden()
    page.get_by_role("link", name=re.compile("^Alerts")).click()
    expect(page.locator(f"li.alert-item:has(a[href='#/machines/{lathe}'])")).to_have_count(1, timeout=15_000)
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.get_by_role("button", name="Resolve")).to_have_count(0)


def test_admin_creates_disables_and_deletes_a_rule(shared_demo: Demo, page_factory: Callable[..., Page]) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    page.get_by_role("link", name="Alert rules").click()
    expect(page.locator("#rules-table tbody tr").first).to_be_visible()
    name = f"Spindle stalled {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Metric", exact=True).fill("spindle_speed")
    page.get_by_label("Condition", exact=True).select_option("<")
    page.get_by_label("Threshold", exact=True).fill("100")
    page.get_by_label("Severity", exact=True).select_option("critical")
    page.get_by_role("button", name="Create rule").click()
    row = page.locator("#rules-table tbody tr").filter(has=page.get_by_role("rowheader", name=name))
    expect(row).to_have_attribute("data-enabled", "true")
    rule = next(r for r in shared_demo.api("GET", "/alert-rules").json() if r["name"] == name)
    assert (rule["condition"], rule["threshold"], rule["severity"]) == ("<", 100.0, "critical")
    row.get_by_role("button", name=re.compile("^Disable")).click()
    expect(row).to_have_attribute("data-enabled", "false")
    expect(row.locator(".rule-state")).to_have_text(re.compile("Disabled"))
    assert shared_demo.api("GET", f"/alert-rules/{rule['id']}").json()["enabled"] is False
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Delete")).click()
    expect(row).to_have_count(0)
    assert shared_demo.api("GET", f"/alert-rules/{rule['id']}").status_code == 404


def test_machine_page_charts_history_then_live_points_and_ranges(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    card(page, "Lathe 01").get_by_role("link", name="Lathe 01").click()
    expect(page.get_by_role("heading", name="Lathe 01", level=1)).to_be_visible()
    charts = page.locator("figure.chart")
    expect(charts).to_have_count(4)
    temperature = page.locator("figure.chart[data-metric='temperature']")
    expect(temperature.locator("canvas")).to_have_count(1)
    expect(page.locator(".interval-note")).to_have_text("one point per 2s")
    points = int(temperature.get_attribute("data-points") or 0)
    assert points > 0
    # Live readings extend the chart (2 s buckets, one reading a second).
    expect(temperature).not_to_have_attribute("data-points", str(points), timeout=10_000)
    hour = page.get_by_role("button", name="1 h")
    hour.click()
    expect(hour).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".interval-note")).to_have_text("one point per 10s")
    # Drag to zoom stops following live time; the reset button brings it back.
    plot = temperature.locator(".u-over")
    box = plot.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    follow = page.get_by_role("button", name="Reset zoom (follow live)")
    expect(follow).to_be_visible()
    follow.click()
    expect(follow).to_be_hidden()


def test_a_burst_of_readings_is_rendered_in_a_few_frames(shared_demo: Demo, page_factory: Callable[..., Page]) -> None:
    """3,000 sensor_update events at once are folded into the page per animation frame, not one render each."""
    page = page_factory()
    log_in(page, shared_demo)
    mill = machine_ids(shared_demo)["Mill 01"]
    before = page.evaluate("({...window.__haltless.stats})")
    now = time.time()
    readings = [
        {
            "machine_id": mill,
            "metric_name": "burst_load",
            "value": float(i),
            "unit": "percent",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 3000 + i)) + "Z",
        }
        for i in range(3000)
    ]
    token = shared_demo.login()
    response = httpx.post(
        f"{shared_demo.base_url}/api/v1/sensor-data",
        json={"readings": readings},
        headers=shared_demo.auth(token),
        timeout=60,
    )
    assert response.json()["accepted"] == 3000
    value = card(page, "Mill 01").locator(".metric[data-metric='burst_load'] .value")
    expect(value).to_have_text("2999", timeout=20_000)
    after = page.evaluate("({...window.__haltless.stats})")
    messages = after["messages"] - before["messages"]
    flushes = after["flushes"] - before["flushes"]
    assert messages >= 3000
    assert flushes * 10 < messages, (messages, flushes)


def test_page_recovers_by_itself_after_the_server_is_killed_and_restarted(
    demo_factory: Callable[[], Demo], page_factory: Callable[..., Page]
) -> None:
    demo = demo_factory()
    page = page_factory()
    log_in(page, demo)
    page.evaluate("window.__notReloaded = true")
    indicator = page.locator("#connection")
    demo.kill()
    expect(indicator).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    expect(indicator).to_contain_text("Reconnecting")
    time.sleep(3)  # stay down across a few reconnect attempts
    demo.start()
    expect(indicator).to_have_attribute("data-state", "live", timeout=45_000)
    expect(indicator).to_have_text("Live")
    assert page.evaluate("window.__notReloaded") is True
    value = card(page, "Lathe 01").locator(".metric[data-metric='temperature'] .value")
    first = value.inner_text()
    expect(value).not_to_have_text(first, timeout=10_000)

    # A server that stops answering without closing anything: the heartbeat watchdog (3 × 1 s here) notices.
    demo.signal(signal.SIGSTOP)
    try:
        expect(indicator).to_have_attribute("data-state", "reconnecting", timeout=15_000)
    finally:
        demo.signal(signal.SIGCONT)
    expect(indicator).to_have_attribute("data-state", "live", timeout=45_000)
    first = value.inner_text()
    expect(value).not_to_have_text(first, timeout=10_000)


FORCE_RECONNECT_WITH = """(token) => {
    const live = window.__haltless.live;
    // An access token the page believes good for an hour, so neither its refresh timer nor its
    // about-to-expire check replaces it before the server has seen (and refused) it.
    clearTimeout(live.api.refreshTimer);
    live.api.session.expires_at = Date.now() + 3600_000;
    live.api.session.access_token = token.access;
    if (token.refresh !== null) live.api.session.refresh_token = token.refresh;
    live.ws.close(4000, "test: reconnect");
}"""


def test_a_refused_token_is_refreshed_and_the_socket_comes_back(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    before = page.evaluate(
        "({...window.__haltless.live.stats, refresh: window.__haltless.live.api.session.refresh_token})"
    )
    # The next connect sends a token the server refuses (4001): the page refreshes it and connects again.
    page.evaluate(FORCE_RECONNECT_WITH, {"access": "not-a-token", "refresh": None})
    deadline = time.monotonic() + 60  # (wait_for_function would need eval, which the page's CSP forbids)
    while page.evaluate("window.__haltless.live.stats.refused") == before["refused"] and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=10_000)
    after = page.evaluate(
        "({...window.__haltless.live.stats, refresh: window.__haltless.live.api.session.refresh_token})"
    )
    assert after["refresh"] != before["refresh"]  # refresh tokens rotate: a refresh really happened
    assert after["refused"] == before["refused"] + 1
    value = card(page, "Lathe 01").locator(".metric[data-metric='temperature'] .value")
    first = value.inner_text()
    expect(value).not_to_have_text(first, timeout=10_000)


def test_a_refused_token_that_cannot_be_refreshed_asks_to_sign_in_again(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    page.evaluate(FORCE_RECONNECT_WITH, {"access": "not-a-token", "refresh": "not-a-refresh-token"})
    expect(page.get_by_text("Your session has ended. Sign in again.")).to_be_visible(timeout=10_000)
    expect(page.locator("#connection")).to_have_attribute("data-state", "disconnected")
    assert page.evaluate("window.__haltless.live.stats.refused") == 1
