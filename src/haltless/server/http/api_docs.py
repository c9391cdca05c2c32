"""`/docs` (Swagger UI) and `/redoc` (ReDoc) with their scripts and styles served by the server itself.

FastAPI's own pages load them from a CDN, so on an air-gapped plant network they stay blank. The files come
from the `fastapi-offline` package (kept up to date with Swagger UI 5 and ReDoc 2 there, never copied into
this repository); the pages are FastAPI's, pointed at this server's copies.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_PREFIX = "/api-docs-assets"
_ASSETS_DIR = str(files("fastapi_offline") / "static")
# Swagger UI would send the schema to an online validator and show its badge; nothing may leave the network.
_SWAGGER_PARAMETERS = {"validatorUrl": None}


def install_api_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI at `docs_url` and ReDoc at `redoc_url` from local assets (create the app with
    `docs_url=None, redoc_url=None` so FastAPI does not add its CDN pages)."""
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_PREFIX}/favicon.png"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=favicon,
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    app.mount(ASSETS_PREFIX, StaticFiles(directory=_ASSETS_DIR), name="api-docs-assets")
