"""The one exception hierarchy of the server. `server/http/errors.py` maps it to HTTP responses.

HaltlessError
├── NotFound            404: the resource does not exist in the caller's tenant
├── Conflict            409: the request clashes with existing data (e.g. a taken email)
├── AuthenticationError 401: missing, invalid or expired credentials
├── PermissionDenied    403: authenticated, but the role does not allow this
├── InvalidRequest      422: the request is well-formed but its content is wrong
├── PayloadTooLarge     413: the body or batch exceeds a documented limit
├── UnsupportedMediaType 415: a request body that is not JSON (`Content-Type: application/json`)
└── TooManyRequests     429: slow down; `retry_after` seconds
"""

from __future__ import annotations


class HaltlessError(Exception):
    """Base of every error this package raises on purpose; `detail` is safe to show to clients."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(HaltlessError):
    status_code = 404


class Conflict(HaltlessError):
    status_code = 409


class AuthenticationError(HaltlessError):
    status_code = 401


class PermissionDenied(HaltlessError):
    status_code = 403


class InvalidRequest(HaltlessError):
    status_code = 422


class PayloadTooLarge(HaltlessError):
    status_code = 413


class UnsupportedMediaType(HaltlessError):
    status_code = 415


class TooManyRequests(HaltlessError):
    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
