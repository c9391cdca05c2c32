"""`create_app(settings)`: the FastAPI application and the lifespan that owns engine, bus and hub."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from haltless import __version__
from haltless.bus import create_bus
from haltless.core.secrets import new_secret
from haltless.core.tokens import AccessTokenVerifier
from haltless.server.api_key_lookup import ApiKeyLookup
from haltless.server.dashboard import install_dashboard
from haltless.server.errors import install_error_handlers
from haltless.server.hub import DashboardHub
from haltless.server.ingest import IngestPipeline
from haltless.server.login_guard import create_login_guard
from haltless.server.monitor import Monitor
from haltless.server.routes import alerts, api_keys, auth, machines, sensor_data, sensor_history, users
from haltless.server.state import AppState
from haltless.server.ws import router as ws_router
from haltless.settings import Settings
from haltless.store.checkpoint import WalCheckpointer
from haltless.store.database import create_engine, migrate
from haltless.store.retention import RetentionPruner


def load_or_create_jwt_secret(settings: Settings) -> str:
    """HALTLESS_JWT_SECRET, or a secret generated once and kept (mode 0600) in the data dir."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path: Path = settings.data_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = new_secret()
    # O_EXCL: when two processes start at once, exactly one writes; the other reads its secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


class HaltlessAPI(FastAPI):
    """FastAPI, with one fast path: readings posted without CORS go straight to the ingest handler.

    Hot path (bench M4): ingestion is most of what a busy server does, and FastAPI's middleware stack,
    router and dependencies cost ~1 ms of the ~7 ms a 500-reading batch takes on the event loop.
    `sensor_data.serve_ingest` runs the route's own code; the route stays for OpenAPI and for requests
    that need the CORS middleware. Middleware added to the app does not see the fast path: give
    `serve_ingest` whatever it must do too.
    """

    def __init__(self, *, fast_ingest: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast_ingest = fast_ingest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._fast_ingest
            and scope["type"] == "http"
            and scope["path"] == sensor_data.INGEST_PATH
            and scope["method"] == "POST"
        ):
            scope["app"] = self
            await sensor_data.serve_ingest(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The whole server as an ASGI app."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.effective_database_url)
        await migrate(engine)
        bus = create_bus(settings.bus_url, prefix=settings.bus_prefix, history_size=settings.event_history)
        hub = DashboardHub(max_pending=settings.ws_max_pending)
        bus.subscribe(hub.deliver)
        bus.on_gap(hub.resync)
        await bus.start()
        # Several processes share state only through PostgreSQL and Redis; see Monitor's docstring.
        shared = settings.multi_process and engine.dialect.name == "postgresql"
        monitor = Monitor(engine, bus, offline_after=settings.offline_after, shared=shared)
        await monitor.load()
        # Announce `offline` within about a second of the deadline (sooner for short test windows).
        monitor.start(tick=min(0.5, settings.offline_after / 4))
        login_guard = create_login_guard(settings)
        jwt_secret = load_or_create_jwt_secret(settings)
        checkpointer = WalCheckpointer(engine)
        app.state.haltless = AppState(
            settings=settings,
            engine=engine,
            bus=bus,
            hub=hub,
            jwt_secret=jwt_secret,
            access_tokens=AccessTokenVerifier(jwt_secret),
            api_keys=ApiKeyLookup(engine),
            pipeline=IngestPipeline(settings, engine, monitor),
            monitor=monitor,
            login_guard=login_guard,
            checkpointer=checkpointer,
        )
        pruner = RetentionPruner(engine, retention_days=settings.retention_days) if settings.retention_days else None
        if pruner is not None:
            pruner.start()
        checkpointer.start()
        try:
            yield
        finally:
            await checkpointer.stop()
            if pruner is not None:
                await pruner.stop()
            await monitor.stop()
            await login_guard.close()
            hub.close_all()
            await bus.stop()
            await engine.dispose()

    app = HaltlessAPI(
        # Browsers' cross-origin requests need the CORS middleware's headers: those take the full stack.
        fast_ingest=not settings.allowed_origins,
        title="Haltless",
        version=__version__,
        description="Sensor ingestion, alerting and live dashboards for industrial machines.",
        lifespan=lifespan,
    )
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
    # (matching it behind the other ~40 routes cost ~4% of a 500-reading batch, bench M4).
    for router in (
        sensor_data.router,
        auth.router,
        users.router,
        api_keys.router,
        machines.router,
        sensor_history.router,
        alerts.rules_router,
        alerts.alerts_router,
        ws_router,
    ):
        app.include_router(router)
    install_dashboard(app, settings)

    @app.get("/api/v1/health", tags=["health"])
    async def health() -> dict[str, object]:
        """Liveness, and how many dashboard sockets this process serves."""
        state: AppState = app.state.haltless
        return {"status": "ok", "version": __version__, "websockets": state.hub.connection_count()}

    return app
