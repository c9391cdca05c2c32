"""Predictive rules in the dashboard (headless Chromium against `haltless demo`): the rules form takes a kind and
its parameters, and a machine chart shows the forecast of the demo's forecast rule."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable

import pytest

from tests.dashboard.conftest import Demo, log_in

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip("the playwright package is missing: pip install -e '.[dev]'", allow_module_level=True)


def test_admin_creates_an_anomaly_rule_in_the_form(shared_demo: Demo, page_factory: Callable[..., Page]) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    page.get_by_role("link", name="Alert rules").click()
    name = f"Odd current {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Metric", exact=True).fill("current")
    page.get_by_label("Kind", exact=True).select_option("anomaly")
    expect(page.get_by_label("Threshold", exact=True)).to_be_hidden()
    page.get_by_label("Sensitivity", exact=True).select_option("low")
    page.get_by_role("button", name="Create rule").click()
    row = page.locator("#rules-table tbody tr").filter(has=page.get_by_role("rowheader", name=name))
    expect(row).to_contain_text("unusual (low sensitivity)")
    rule = next(r for r in shared_demo.api("GET", "/alert-rules").json() if r["name"] == name)
    assert (rule["kind"], rule["sensitivity"], rule["threshold"]) == ("anomaly", "low", None)
    shared_demo.api("DELETE", f"/alert-rules/{rule['id']}")


def test_machine_chart_shows_the_forecast_of_a_forecast_rule(
    shared_demo: Demo, page_factory: Callable[..., Page]
) -> None:
    page = page_factory()
    log_in(page, shared_demo)
    page.get_by_role("link", name="Press 01").first.click()
    temperature = page.locator("figure.chart[data-metric='temperature']")
    expect(temperature).to_have_attribute("data-predictive", "forecast", timeout=30_000)
    expect(temperature.locator(".forecast-note")).to_have_text(re.compile(r"^Forecast: "), timeout=30_000)
