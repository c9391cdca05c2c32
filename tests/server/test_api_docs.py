"""`/docs` and `/redoc` load nothing from another origin, and the server serves what they load (api_docs.py)."""

from __future__ import annotations

import re

import httpx

from tests.conftest import EVENT_TIMEOUT, RunningServer

# Every URL a page can make the browser fetch: src= and href= attributes, and the schema the script loads.
_REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")
_KIND = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


def _references(page: str) -> list[str]:
    return [first or second for first, second in _REFERENCE.findall(page)]


def test_docs_pages_load_only_same_origin_assets_that_are_served(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        for page_path, needs in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            page = http.get(page_path)
            assert page.status_code == 200, page_path
            assert page.headers["content-type"].startswith("text/html")
            assert "http://" not in page.text
            assert "https://" not in page.text
            assert "//" not in "".join(ref[:2] for ref in _references(page.text))
            references = _references(page.text)
            assert any(ref.endswith(needs) for ref in references), references
            assert "/openapi.json" in references
            for ref in references:
                assert ref.startswith("/"), ref
                asset = http.get(ref)
                assert asset.status_code == 200, ref
                kind = next(kind for suffix, kind in _KIND.items() if ref.endswith(suffix))
                assert kind in asset.headers["content-type"], (ref, asset.headers["content-type"])
                assert asset.content, ref
