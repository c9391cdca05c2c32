"""What the lifespan owns, in one object hung on `app.state.haltless`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection

from haltless.bus import EventBus
from haltless.core.clock import Clock
from haltless.core.cursors import CursorCodec
from haltless.core.tokens import AccessTokenVerifier
from haltless.server.http.api_key_lookup import ApiKeyLookup
from haltless.server.http.login_guard import LoginGuard
from haltless.server.http.user_lookup import UserStatusLookup
from haltless.server.service.changes import Changes
from haltless.server.service.ingest import IngestPipeline
from haltless.server.service.maintenance_windows import WindowScheduler
from haltless.server.service.no_data import NoDataWatcher
from haltless.server.service.notifier import Notifier
from haltless.server.ws.hub import DashboardHub
from haltless.settings import Settings
from haltless.store.checkpoint import WalCheckpointer


@dataclass(slots=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    bus: EventBus
    hub: DashboardHub
    jwt_secret: str
    access_tokens: AccessTokenVerifier  # verifies with jwt_secret
    api_keys: ApiKeyLookup
    users: UserStatusLookup  # whether access tokens' users may still use them
    pipeline: IngestPipeline
    changes: Changes  # the one way to change a tenant's machines, rules and alerts
    clock: Clock  # the one clock; nothing in the server reads the time on the side
    login_guard: LoginGuard
    checkpointer: WalCheckpointer  # SQLite only; idle on PostgreSQL
    cursors: CursorCodec  # signs page cursors with a key derived from jwt_secret
    notifier: Notifier  # notification outbox and dispatcher (server/service/notifier.py)
    no_data: NoDataWatcher | None = None  # opens no_data alerts (server/service/no_data.py)
    windows: WindowScheduler | None = None  # recurring maintenance windows (server/service/maintenance_windows.py)


def app_state(connection: HTTPConnection) -> AppState:
    """The running app's state (a FastAPI dependency for both HTTP and WebSocket routes)."""
    state: AppState = connection.app.state.haltless
    return state


async def request_state(request: Request) -> AppState:
    """The `State` dependency. Async on purpose: FastAPI runs a plain `def` dependency in its thread pool,
    a thread hop per request (measured on ingest: docs/benchmarks.md, "Hot-path choices") to read one attribute."""
    return app_state(request)
