"""`create_app(settings)`: the FastAPI application and the lifespan that owns engine, bus and hub."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from haltless import __version__
from haltless.bus import create_bus
from haltless.core.clock import Clock
from haltless.core.cursors import CursorCodec
from haltless.core.readings import MAX_INGEST_BODY_BYTES
from haltless.core.tokens import AccessTokenVerifier
from haltless.server.clock import SystemClock
from haltless.server.http.api_contract import install_api_contract
from haltless.server.http.api_docs import install_api_docs
from haltless.server.http.api_key_lookup import ApiKeyLookup
from haltless.server.http.body_guard import BodyGuard
from haltless.server.http.dashboard import install_dashboard
from haltless.server.http.errors import install_error_handlers
from haltless.server.http.login_guard import create_login_guard
from haltless.server.http.user_lookup import UserStatusLookup
from haltless.server.keys import check_secrets_readable, load_or_create_jwt_secret, load_secret_box
from haltless.server.routes import (
    alerts,
    api_keys,
    auth,
    machines,
    maintenance_windows,
    notifications,
    sensor_data,
    sensor_derived,
    sensor_history,
    users,
)
from haltless.server.service.background import every
from haltless.server.service.changes import Changes
from haltless.server.service.ingest import IngestPipeline
from haltless.server.service.lifecycle import apply_escalations
from haltless.server.service.maintenance_windows import WindowScheduler
from haltless.server.service.no_data import NoDataWatcher
from haltless.server.service.notifier import Notifier
from haltless.server.service.offline import OfflineWatcher
from haltless.server.state import AppState
from haltless.server.ws.endpoint import router as ws_router
from haltless.server.ws.hub import DashboardHub
from haltless.server.ws.session_sweep import RevokedSessionSweeper
from haltless.settings import Settings
from haltless.store.checkpoint import WalCheckpointer
from haltless.store.database import create_engine, make_private_dir, migrate
from haltless.store.retention import RetentionPruner

# The one BodyGuard configuration, for the middleware stack and the ingest fast path alike: each route's body
# limit where it is not body_guard.JSON_BODY_LIMIT, the routes that read a body without a credential, and the one
# that decodes its own body (ingest: an invalid reading is refused alone, so it parses item by item).
BODY_GUARD_OPTIONS: dict[str, Any] = {
    "limits": {sensor_data.INGEST_PATH: MAX_INGEST_BODY_BYTES},
    "open_paths": auth.OPEN_BODY_PATHS,
    "raw_paths": {sensor_data.INGEST_PATH},
}


class HaltlessAPI(FastAPI):
    """FastAPI, with one fast path: readings posted without CORS go straight to the ingest handler.

    Hot path (bench M4): ingestion is most of what a busy server does, and FastAPI's middleware stack,
    router and dependencies cost ~1 ms of the ~7 ms a 500-reading batch takes on the event loop.
    `sensor_data.serve_ingest` runs the route's own code; the route stays for OpenAPI and for requests
    that need the CORS middleware. Middleware added to the app does not see the fast path: give
    `serve_ingest` whatever it must do too (it runs behind the same `BodyGuard` as every route).
    """

    def __init__(self, *, fast_ingest: bool, trusted_proxies: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast_ingest = fast_ingest
        self._serve_ingest = BodyGuard(sensor_data.serve_ingest, **BODY_GUARD_OPTIONS)
        # The client address from X-Forwarded-For, believed only from HALTLESS_TRUSTED_PROXIES: applied here,
        # before the fast path, so every request and WebSocket sees it whichever server runs the app.
        self._entry: ASGIApp = self._dispatch
        if trusted_proxies:
            # (uvicorn types ASGI scopes as TypedDicts, Starlette as plain mappings: the same objects.)
            middleware = ProxyHeadersMiddleware(cast(Any, self._dispatch), trusted_hosts=trusted_proxies)
            self._entry = cast(ASGIApp, middleware)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._fast_ingest
            and scope["type"] == "http"
            and scope["path"] == sensor_data.INGEST_PATH
            and scope["method"] == "POST"
        ):
            scope["app"] = self
            await self._serve_ingest(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The whole server as an ASGI app; `clock` (tests) replaces the system clock everywhere in it."""
    settings = settings or Settings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Owner only: the data dir holds the JWT secret and, with SQLite, every tenant's data.
        make_private_dir(settings.data_dir)
        box = load_secret_box(settings)
        engine = create_engine(settings.effective_database_url)
        await migrate(engine)
        try:
            await check_secrets_readable(engine, box)
        except BaseException:
            await engine.dispose()
            raise
        bus = create_bus(settings.bus_url, prefix=settings.bus_prefix, history_size=settings.event_history)
        hub = DashboardHub(
            max_pending=settings.ws_max_pending, heartbeat_interval=settings.ws_heartbeat_interval, clock=clock
        )
        bus.subscribe(hub.deliver)
        bus.on_gap(hub.resync)
        await bus.start()
        # Several processes share state only through PostgreSQL and Redis; see server/service/changes.py.
        shared = settings.multi_process and engine.dialect.name == "postgresql"
        changes = Changes(engine, bus, clock, offline_after=settings.offline_after, shared=shared)
        await changes.load()
        notifier = Notifier(engine, settings, box=box, clock=clock.now_us)
        changes.notifier = notifier
        notifier.on_escalated = functools.partial(apply_escalations, changes)
        # Announce `offline` within about a second of the deadline (sooner for short test windows).
        offline = OfflineWatcher(changes, tick=min(0.5, settings.offline_after / 4))
        offline.start()
        no_data = NoDataWatcher(changes, tick=0.5)
        no_data.start()
        windows = WindowScheduler(changes, tick=0.5)
        windows.start()
        login_guard = create_login_guard(settings, clock)
        jwt_secret = load_or_create_jwt_secret(settings)
        checkpointer = WalCheckpointer(engine)
        user_statuses = UserStatusLookup(engine)
        sweeper = RevokedSessionSweeper(hub, user_statuses)
        app.state.haltless = AppState(
            settings=settings,
            engine=engine,
            bus=bus,
            hub=hub,
            jwt_secret=jwt_secret,
            access_tokens=AccessTokenVerifier(jwt_secret),
            api_keys=ApiKeyLookup(engine),
            users=user_statuses,
            pipeline=IngestPipeline(settings, changes),
            changes=changes,
            clock=clock,
            login_guard=login_guard,
            checkpointer=checkpointer,
            cursors=CursorCodec.from_secret(jwt_secret),
            notifier=notifier,
            no_data=no_data,
            windows=windows,
        )
        pruner = (
            RetentionPruner(engine, clock, retention_days=settings.retention_days) if settings.retention_days else None
        )
        retention = every(pruner.period, pruner.prune_pass, name="retention pass", at_start=True) if pruner else None
        checkpointer.start()
        sweeper.start()
        notifier.start()
        try:
            yield
        finally:
            await notifier.stop()
            await sweeper.stop()
            await checkpointer.stop()
            if retention is not None:
                await retention.stop()
            await offline.stop()
            await no_data.stop()
            await windows.stop()
            await login_guard.close()
            hub.close_all()
            await bus.stop()
            await engine.dispose()

    app = HaltlessAPI(
        # Browsers' cross-origin requests need the CORS middleware's headers: those take the full stack.
        fast_ingest=not settings.allowed_origins,
        trusted_proxies=settings.trusted_proxies,
        title="Haltless",
        version=__version__,
        description="Sensor ingestion, alerting and live dashboards for industrial machines.",
        lifespan=lifespan,
        # FastAPI's pages load their assets from a CDN; install_api_docs serves them from this server.
        docs_url=None,
        redoc_url=None,
    )
    # Added first, so it runs inside CORS: its refusals (401, 413, 415) carry CORS headers a browser can read.
    app.add_middleware(BodyGuard, **BODY_GUARD_OPTIONS)
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            max_age=600,
        )
    install_error_handlers(app)
    # Routes are matched in this order, one after the other: ingestion, the busiest, comes first
    # (matching it behind the other routes was a measured cost per batch: docs/benchmarks.md, "Hot-path choices").
    for router in (
        sensor_data.router,
        auth.router,
        users.router,
        api_keys.router,
        machines.router,
        sensor_history.router,
        sensor_derived.router,
        alerts.rules_router,
        alerts.alerts_router,
        notifications.channels_router,
        notifications.policies_router,
        notifications.silences_router,
        notifications.notifications_router,
        notifications.alert_status_router,
        maintenance_windows.router,
        ws_router,
    ):
        app.include_router(router)
    install_dashboard(app, settings)
    install_api_docs(app)
    install_api_contract(app)

    @app.get("/api/v1/health", tags=["health"])
    async def health() -> dict[str, object]:
        """Liveness, and how many dashboard sockets this process serves."""
        state: AppState = app.state.haltless
        return {"status": "ok", "version": __version__, "websockets": state.hub.connection_count()}

    return app
