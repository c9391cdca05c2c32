"""Browser `Origin` policy shared by CORS and the WebSocket upgrade."""

from __future__ import annotations

from urllib.parse import urlsplit


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """No Origin (scripts, agents): allowed. Same origin as the Host: allowed. Else it must be listed."""
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if "*" in allowed or origin in allowed:
        return True
    if host is None:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()
