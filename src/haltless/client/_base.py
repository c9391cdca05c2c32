"""I/O-free logic shared by the sync and async clients: request descriptions, response parsing, batching, tokens.

The clients only move bytes: each API method builds a `Call`, the client sends it, and `Call.result` turns the
response into a typed value or the right exception. Nothing here touches a socket, so it is the same code for both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from haltless import __version__
from haltless.client._exceptions import APIError, AuthenticationError, ConnectError, SessionExpired, api_error
from haltless.client._models import Reading
from haltless.core.retry_after import parse_retry_after

T = TypeVar("T")

API_PREFIX = "/api/v1"
DASHBOARD_PATH = "/api/v1/ws/dashboard"
USER_AGENT = f"haltless-client/{__version__}"
# The server's documented per-request limits (10,000 readings, 8 MiB); we stay a little under the byte limit.
MAX_READINGS_PER_REQUEST = 10_000
MAX_INGEST_BODY_BYTES = 8 * 1024 * 1024 - 64 * 1024


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One REST request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    auth: bool = True

    def request_kwargs(self, token: str | None) -> dict[str, Any]:
        """Arguments for `httpx.Client.request`; `token` goes into the Authorization header if the call needs it."""
        headers: dict[str, str] = {}
        if self.auth and token:
            headers["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"params": {k: v for k, v in (self.params or {}).items() if v is not None}}
        if self.content is not None:
            kwargs["content"] = self.content
            headers["Content-Type"] = "application/json"
        elif self.json is not None:
            kwargs["json"] = self.json
        kwargs["headers"] = headers
        return kwargs

    def result(self, response: httpx.Response) -> T:
        """The parsed body, or the APIError that the status calls for."""
        if response.status_code >= 400:
            raise error_from_response(response)
        data = response.json() if response.content else None
        return self.parse(data)


def error_from_response(response: httpx.Response) -> APIError:
    """The APIError for an error response, carrying the server's `detail`."""
    detail: Any = None
    try:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else body
    except ValueError:
        detail = response.text[:500] or response.reason_phrase
    if not isinstance(detail, str):
        detail = orjson.dumps(detail).decode() if detail is not None else response.reason_phrase
    retry_after = parse_retry_after(response.headers.get("retry-after"), time.time_ns() // 1000)
    request = response.request
    return api_error(
        response.status_code, detail, retry_after=retry_after, method=request.method, url=str(request.url.path)
    )


def transport_error(exc: Exception, base_url: str) -> ConnectError:
    """A ConnectError that says which server could not be reached and why."""
    reason = str(exc) or type(exc).__name__
    return ConnectError(f"cannot reach the Haltless server at {base_url}: {reason}")


# Transport failures we translate into ConnectError; anything else is a bug and should surface as is.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, httpx.InvalidURL, OSError)


def normalize_base_url(url: str) -> str:
    """`host:port`, `http://host:port/` and the like as `scheme://host[:port][/prefix]` without a trailing slash."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConnectError(f"not an http(s) URL of a Haltless server: {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def websocket_url(base_url: str) -> str:
    """The dashboard socket's URL for a server's base URL (http → ws, https → wss)."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + DASHBOARD_PATH, "", ""))


class TokenStore:
    """The session's tokens. Refresh is single-flight: callers pass the token that failed, and only the first
    caller to report a given token refreshes it; the others reuse the new one. That matters because refresh
    tokens rotate and presenting a spent one revokes the whole session."""

    def __init__(self, access_token: str | None, refresh_token: str | None) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token

    def stale(self, failed_token: str | None) -> bool:
        """True when `failed_token` is still the current one (so it needs a refresh)."""
        return failed_token == self.access_token

    def update(self, pair: Mapping[str, Any]) -> None:
        self.access_token = str(pair["access_token"])
        self.refresh_token = str(pair["refresh_token"])


def no_credentials() -> AuthenticationError:
    return AuthenticationError(401, "no credentials: pass email and password, or a token, to the client")


def cannot_refresh(detail: str) -> SessionExpired:
    return SessionExpired(401, f"{detail}; the client has no refresh token to renew it")


def login_call(email: str, password: str) -> Call[dict[str, Any]]:
    return Call("POST", f"{API_PREFIX}/auth/login", _as_dict, json={"email": email, "password": password}, auth=False)


def refresh_call(refresh_token: str) -> Call[dict[str, Any]]:
    return Call("POST", f"{API_PREFIX}/auth/refresh", _as_dict, json={"refresh_token": refresh_token}, auth=False)


def logout_call(refresh_token: str) -> Call[None]:
    return Call("POST", f"{API_PREFIX}/auth/logout", _none, json={"refresh_token": refresh_token}, auth=False)


def _as_dict(data: Any) -> dict[str, Any]:
    return dict(data)


def _none(_data: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class IngestBatch:
    """One request's worth of readings: `offset` is the index of its first reading in the caller's list."""

    offset: int
    count: int
    body: bytes = field(repr=False)


def plan_ingest(
    readings: Iterable[Reading | Mapping[str, Any]],
    *,
    max_readings: int = MAX_READINGS_PER_REQUEST,
    max_bytes: int = MAX_INGEST_BODY_BYTES,
) -> Iterator[IngestBatch]:
    """Split readings into request bodies within the server's count and size limits, encoding each reading once."""
    prefix, suffix = b'{"readings":[', b"]}"
    encoded: list[bytes] = []
    size = len(prefix) + len(suffix)
    offset = 0
    for reading in readings:
        item = orjson.dumps(reading.to_json() if isinstance(reading, Reading) else dict(reading))
        if encoded and (len(encoded) >= max_readings or size + len(item) + 1 > max_bytes):
            yield IngestBatch(offset, len(encoded), prefix + b",".join(encoded) + suffix)
            offset += len(encoded)
            encoded, size = [], len(prefix) + len(suffix)
        encoded.append(item)
        size += len(item) + 1
    if encoded:
        yield IngestBatch(offset, len(encoded), prefix + b",".join(encoded) + suffix)
