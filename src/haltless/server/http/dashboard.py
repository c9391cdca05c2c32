"""The built-in browser dashboard: `/` serves its page, `/ui/` its static files (shipped inside the package).

The dashboard is plain HTML, CSS and ES modules, so serving it needs no Node.js and no build step. It
talks to the server only through the public REST API and the dashboard WebSocket, like any other client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from haltless.settings import Settings

STATIC_DIR = Path(__file__).parent.parent / "static"
UI_PREFIX = "/ui"

# The page loads only its own scripts and styles; the socket and REST calls go to this origin.
# uPlot sizes its elements through the CSSOM (`element.style`), which style-src does not restrict.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# Revalidate on every load (cheap with ETags) so an upgraded server never runs against a stale app.js.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class DashboardFiles(StaticFiles):
    """StaticFiles whose answers are revalidated on each load and never sniffed for another type."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install_dashboard(app: FastAPI, settings: Settings) -> None:
    """Serve the dashboard page at `/`, its files under `/ui/`, and the few settings it needs to know."""

    @app.get("/", include_in_schema=False)
    async def dashboard_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get(f"{UI_PREFIX}/config.json", include_in_schema=False)
    async def dashboard_config() -> JSONResponse:
        # The socket's watchdog waits 3 heartbeat intervals; it must know the server's interval.
        return JSONResponse(
            {"heartbeat_interval": settings.ws_heartbeat_interval, "api_base": "/api/v1"},
            headers={"Cache-Control": "no-store"},
        )

    app.mount(UI_PREFIX, DashboardFiles(directory=STATIC_DIR), name="dashboard")
