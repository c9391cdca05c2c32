"""The one place where exceptions become HTTP responses: always JSON `{"detail": ...}`, never a trace."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from haltless.core.names import shown
from haltless.errors import AuthenticationError, HaltlessError, TooManyRequests
from haltless.server.http.api_contract import allowed_methods

log = logging.getLogger("haltless.server")


def _location(loc: tuple[object, ...] | list[object]) -> str:
    # A client's own field names come back here: escaped when they hold what no JSON answer should carry.
    parts = [shown(str(p)) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


def validation_detail(errors: Sequence[Any]) -> str:
    """The `detail` of a 422 for pydantic's errors: "field.path: message; ..." (also the CLI's message)."""
    message = "; ".join(f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)
    return message or "invalid request"


def error_response(exc: HaltlessError) -> JSONResponse:
    """Our own errors: their status, their detail, and the headers the status calls for."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's and FastAPI's HTTPException (routing's 404/405, `body_guard.BodyTooLarge`) as our JSON body."""
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def unexpected_error_response(request: Request) -> JSONResponse:
    """A bug: logged with its trace (call from the `except` block), answered without one."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


class UnexpectedErrorMiddleware:
    """Answers a bug with the 500 of `unexpected_error_response` and keeps the connection open.

    Starlette's own last resort (the `Exception` handler, run by ServerErrorMiddleware) sends that answer and
    then raises the error again, so the server sees a failed response and closes the keep-alive connection:
    the client's next request fails too. Here the error ends with the answer. Only when the response had
    already begun (a streamed export) is it raised on, for then closing the connection is the only way to say
    the body is cut short.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            response = unexpected_error_response(Request(scope))
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to its JSON answer; call after adding other middleware (this one wraps them)."""
    app.add_middleware(UnexpectedErrorMiddleware)

    @app.exception_handler(HaltlessError)
    async def _haltless(_request: Request, exc: HaltlessError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path; a path served by several
            # routes (GET and POST /machines) has more.
            allow = allowed_methods(app, request.url.path)
            if allow is not None:
                exc.headers = {**(exc.headers or {}), "Allow": allow}
        return http_error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(request)
