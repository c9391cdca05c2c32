"""What `/openapi.json` says each operation answers, derived in this one place from what the operation is.

FastAPI documents a route's success and a 422 of its own shape (`detail` a list), while every error of ours
is `{"detail": "<what is wrong>"}` (server/http/errors.py). The schema FastAPI generates is rewritten once:

- every documented error, 422 included, has the `Error` body;
- an authenticated operation (its `security` lists the bearer scheme, see `security.BEARER_SCHEME`) answers
  401 (no, bad, expired or revoked credential) and 403 (too low a role, or an API key where only users may);
- an operation with path parameters answers 404 (no such object in the caller's tenant) and 422;
- one with a request body answers 413 (over its limit, server/http/body_guard.py), 415 (not JSON) and 422;
- one with query parameters answers 422;
- what a handler answers because of what it does (409, 429) is listed in `DECLARED`, beside why.

The 405 of a path names every method the path has (`allowed_methods`), not only those of the first route
that matched. tests/contract/ checks the whole document against the running server with schemathesis.
"""

from __future__ import annotations

import re
from typing import Any
from weakref import WeakKeyDictionary

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA_NAME = "Error"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
_ERROR_SCHEMA = {
    "title": ERROR_SCHEMA_NAME,
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail", "description": "What is wrong, for a person."}},
    "required": ["detail"],
}
# FastAPI's own 422 schemas, replaced by `Error` wherever they are referenced.
_FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")

_WHY = {
    401: "Missing, invalid, expired or revoked credential",
    403: "The caller's role may not do this (or an API key, which may only ingest)",
    404: "No such object in the caller's tenant",
    413: "Request body larger than this route's limit",
    415: "Request body is not JSON (Content-Type: application/json)",
    422: "A parameter or body field is invalid; `detail` says which and why",
}

# Answers a handler gives because of what it does: (METHOD, path) -> {status: why}.
_MACHINE_404 = {404: "machine_id names no machine of the caller's tenant"}
DECLARED: dict[tuple[str, str], dict[int, str]] = {
    ("POST", "/api/v1/auth/login"): {
        401: "Wrong email or password, or the user is disabled",
        409: "The email and password belong to users of several tenants: log in with tenant_id",
        429: "Too many failed logins for this account or address; wait the seconds in Retry-After",
    },
    ("POST", "/api/v1/auth/refresh"): {401: "The refresh token is invalid, expired, reused or its session ended"},
    ("POST", "/api/v1/auth/logout"): {401: "The refresh token is invalid or expired"},
    ("GET", "/api/v1/sensor-data"): _MACHINE_404,
    ("GET", "/api/v1/sensor-data/export"): _MACHINE_404,
    ("GET", "/api/v1/sensor-data/derived"): _MACHINE_404,
    ("POST", "/api/v1/auth/password"): {429: "Too many wrong current passwords; wait the seconds in Retry-After"},
    ("POST", "/api/v1/users"): {409: "A user with this email already exists in this tenant"},
    ("PATCH", "/api/v1/users/{user_id}"): {409: "The change would leave the tenant without an active admin"},
    ("DELETE", "/api/v1/users/{user_id}"): {409: "Deleting would leave the tenant without an active admin"},
    ("POST", "/api/v1/machines"): {409: "A machine of this name exists in this tenant (names are unique)"},
    ("PATCH", "/api/v1/machines/{machine_id}"): {409: "Another machine of this tenant has this name"},
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): {409: "The alert is already resolved"},
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): {409: "The alert is already resolved"},
    ("PATCH", "/api/v1/notification-channels/{channel_id}"): {
        409: "No configured secrets key (HALTLESS_SECRETS_KEYS) opens the channel's stored secrets"
    },
}

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def install_api_contract(app: FastAPI) -> None:
    """Make `app.openapi()` return the schema with every answer documented (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                servers=app.servers,
            )
            document_answers(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_answers(schema: dict[str, Any]) -> None:
    """Rewrite FastAPI's `schema` in place so that every operation lists each status it can answer."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_ERROR_SCHEMAS:
        schemas.pop(name, None)
    schemas[ERROR_SCHEMA_NAME] = _ERROR_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is not None:
                responses = operation.setdefault("responses", {})
                for status, why in sorted(errors_of(method.upper(), path, operation).items()):
                    responses[str(status)] = {
                        "description": why,
                        "content": {"application/json": {"schema": _ERROR_REF}},
                    }


def errors_of(method: str, path: str, operation: dict[str, Any]) -> dict[int, str]:
    """The error statuses an operation can answer, each with why."""
    errors: dict[int, str] = {}
    if operation.get("security"):
        errors[401] = _WHY[401]
        errors[403] = _WHY[403]
    places = {parameter.get("in") for parameter in operation.get("parameters", [])}
    if "path" in places:
        errors[404] = _WHY[404]
    if "requestBody" in operation:
        errors[413] = _WHY[413]
        errors[415] = _WHY[415]
    if places or "requestBody" in operation:
        errors[422] = _WHY[422]
    errors.update(DECLARED.get((method, path), {}))
    return errors


_ALLOW_INDEX: WeakKeyDictionary[FastAPI, list[tuple[re.Pattern[str], str]]] = WeakKeyDictionary()


def allowed_methods(app: FastAPI, path: str) -> str | None:
    """The `Allow` value for a request path: every documented method of the operation path it matches."""
    index = _ALLOW_INDEX.get(app)
    if index is None:
        index = _ALLOW_INDEX[app] = [
            (_template_pattern(template), _allow_value(item)) for template, item in app.openapi()["paths"].items()
        ]
    for pattern, allow in index:
        if pattern.fullmatch(path):
            return allow
    return None


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts))


def _allow_value(item: dict[str, Any]) -> str:
    methods = [method.upper() for method in _METHODS if method in item]
    if "GET" in methods and "HEAD" not in methods:
        methods.append("HEAD")  # Starlette answers HEAD wherever it answers GET
    return ", ".join(methods)
