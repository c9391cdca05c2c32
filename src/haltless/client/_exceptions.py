"""The client's one exception hierarchy. Every error the SDK raises on purpose is a HaltlessClientError.

HaltlessClientError            base; `str(exc)` is a readable message (also importable as HaltlessError)
├── APIError                   the server answered with an error status; `.status`, `.detail` (the server's words)
│   ├── BadRequest             400
│   ├── AuthenticationError    401: bad credentials, or a token the server refused
│   │   └── SessionExpired     the refresh token is revoked or expired: log in again
│   ├── PermissionDenied       403: the role does not allow this
│   ├── NotFound               404: no such resource in your tenant
│   ├── Conflict               409
│   ├── PayloadTooLarge        413
│   ├── ValidationError        422: the request's content is wrong
│   ├── RateLimited            429; `.retry_after` seconds when the server said so
│   └── ServerError            5xx
├── ConnectError               the server could not be reached (refused, DNS, TLS, timeout, bad URL)
└── StreamError                the live stream cannot go on
    └── StreamClosed           the server refused the socket in a way retrying cannot fix (e.g. HTTP 403 Origin)

A stream that runs out of `max_attempts` raises ConnectError; one whose session ended raises SessionExpired.
"""

from __future__ import annotations


class HaltlessClientError(Exception):
    """Base of every error the client raises on purpose."""


# The root's former name, kept for code written against it (the server's `haltless.errors` has its own
# HaltlessError, a different class: the client's root has its own name so the two are never confused).
HaltlessError = HaltlessClientError


class APIError(HaltlessClientError):
    """The server answered with an error status; `detail` is the server's own explanation."""

    def __init__(self, status: int, detail: str, *, method: str = "", url: str = "") -> None:
        where = f" ({method} {url})" if method else ""
        super().__init__(f"{status}: {detail}{where}")
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url


class BadRequest(APIError):
    """400."""


class AuthenticationError(APIError):
    """401: bad credentials or a refused token."""


class SessionExpired(AuthenticationError):
    """The refresh token is revoked or expired, so no new access token can be had: log in again."""


class PermissionDenied(APIError):
    """403: authenticated, but the role does not allow this."""


class NotFound(APIError):
    """404: the resource does not exist in your tenant."""


class Conflict(APIError):
    """409: the request clashes with existing data."""


class PayloadTooLarge(APIError):
    """413: the body or batch exceeds a server limit."""


class ValidationError(APIError):
    """422: the request is well-formed but its content is wrong."""


class RateLimited(APIError):
    """429: too many requests; wait `retry_after` seconds (None when the server did not say)."""

    def __init__(
        self, status: int, detail: str, *, retry_after: float | None = None, method: str = "", url: str = ""
    ) -> None:
        super().__init__(status, detail, method=method, url=url)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server failed; the request may be retried later."""


class ConnectError(HaltlessClientError):
    """The server could not be reached: connection refused, unknown host, TLS failure, timeout or a bad URL."""


class StreamError(HaltlessClientError):
    """The live stream cannot go on."""


class StreamClosed(StreamError):
    """The server refused the socket in a way that retrying cannot fix."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
}


def api_error(
    status: int, detail: str, *, retry_after: float | None = None, method: str = "", url: str = ""
) -> APIError:
    """The APIError subclass for `status`."""
    if status == 429:
        return RateLimited(status, detail, retry_after=retry_after, method=method, url=url)
    if status >= 500:
        return ServerError(status, detail, method=method, url=url)
    return _BY_STATUS.get(status, APIError)(status, detail, method=method, url=url)
