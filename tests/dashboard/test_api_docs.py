"""`/docs` and `/redoc` render in a browser that can reach nothing but the server (an air-gapped plant)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.dashboard.conftest import Demo

# ReDoc's sidebar shows Redocly's logo from their CDN and removes the image when it cannot load (its onError):
# the one request allowed to fail, decoration only.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route


def _offline(page: Page, demo: Demo) -> list[str]:
    """Abort every request that leaves the server's origin; returns the URLs that tried."""
    blocked: list[str] = []

    def handle(route: Route) -> None:
        if route.request.url.startswith(f"{demo.base_url}/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return blocked


def test_swagger_ui_and_redoc_render_without_internet(shared_demo: Demo, page_factory: Any) -> None:
    page = page_factory()
    blocked = _offline(page, shared_demo)
    page.goto(f"{shared_demo.base_url}/docs")
    page.wait_for_selector(".swagger-ui .info .title:has-text('Haltless')")
    page.wait_for_selector(".opblock-tag:has-text('sensor data')")
    page.goto(f"{shared_demo.base_url}/redoc")
    page.wait_for_selector("h1:has-text('Haltless')")
    page.get_by_text("/api/v1/sensor-data").first.wait_for()
    page.locator("img[alt='redocly logo']").wait_for(state="detached")
    assert set(blocked) <= {REDOCLY_LOGO}, blocked
