"""The dashboard's files come from the package and are served at `/` and `/ui/` (no browser needed)."""

from __future__ import annotations

import httpx

from tests.conftest import EVENT_TIMEOUT, RunningServer


def test_page_is_served_at_root_with_a_strict_content_security_policy(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/app.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["cache-control"] == "no-cache"


def test_scripts_styles_and_vendored_chart_library_are_served(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        for path, kind in [
            ("/ui/app.js", "javascript"),
            ("/ui/live.js", "javascript"),
            ("/ui/style.css", "text/css"),
            ("/ui/channels.js", "javascript"),
            ("/ui/notifications.css", "text/css"),
            ("/ui/vendor/uPlot.iife.min.js", "javascript"),
            ("/ui/vendor/uPlot.min.css", "text/css"),
        ]:
            response = http.get(path)
            assert response.status_code == 200, path
            assert kind in response.headers["content-type"], path
            assert response.headers["x-content-type-options"] == "nosniff"
        assert (http.get("/ui/nothing-here.js")).status_code == 404
        assert (http.get("/ui/../settings.py")).status_code == 404


def test_config_tells_the_page_the_servers_heartbeat_interval(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        config = (http.get("/ui/config.json")).json()
    assert config["heartbeat_interval"] == server.settings.ws_heartbeat_interval
    assert "/" not in http_openapi_paths(server)


def http_openapi_paths(server: RunningServer) -> set[str]:
    """The dashboard's routes stay out of the API schema."""
    with httpx.Client(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:  # the first one builds it
        paths: set[str] = set((http.get("/openapi.json")).json()["paths"])
    return paths
