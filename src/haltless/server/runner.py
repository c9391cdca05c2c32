"""How the server runs under uvicorn: one place for the protocol choices and the log config."""

from __future__ import annotations

from typing import Any

import uvicorn

from haltless.server.app import create_app
from haltless.server.logs import uvicorn_log_config
from haltless.server.ws.protocol import WebSocketProtocol
from haltless.settings import Settings

# Clients send one small auth frame; nothing bigger is ever expected from them.
WS_MAX_INCOMING_BYTES = 1024 * 1024


def uvicorn_config(settings: Settings, *, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """uvloop + httptools + the sans-I/O websockets protocol with our frame sink, no per-message compression."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": uvicorn_log_config(log_level),
        "log_level": log_level,
        # Our protocol on websockets' sans-I/O ServerProtocol, with direct frame writes for dashboards
        # (server/ws/protocol.py, server/ws/socket.py); chosen by
        # docs/benchmarks.md: per-message ASGI send was the fan-out bottleneck.
        "ws": WebSocketProtocol,
        "ws_max_size": WS_MAX_INCOMING_BYTES,
        "ws_per_message_deflate": False,
        "http": "httptools",
        "loop": "uvloop",
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
        # The app believes X-Forwarded-For only from HALTLESS_TRUSTED_PROXIES (server/app.py); uvicorn's own
        # handling would also believe it from any local process.
        "proxy_headers": False,
    }
    return uvicorn.Config(create_app(settings), **options)


def serve(settings: Settings, *, host: str, port: int, log_level: str = "info") -> None:
    """Run the server until interrupted."""
    uvicorn.Server(uvicorn_config(settings, host=host, port=port, log_level=log_level)).run()


def app_from_environment() -> Any:
    """App factory for worker processes: each reads the same HALTLESS_* environment."""
    return create_app(Settings())


def serve_workers(settings: Settings, *, host: str, port: int, workers: int, log_level: str = "info") -> None:
    """Run `workers` server processes on one port (uvicorn's supervisor); needs PostgreSQL and Redis."""
    if not settings.multi_process or settings.effective_database_url.startswith("sqlite"):
        raise ValueError(
            "--workers above 1 needs HALTLESS_BUS_URL=redis://… and HALTLESS_DATABASE_URL=postgresql+asyncpg://… "
            "(processes share events through Redis and state through PostgreSQL)"
        )
    uvicorn.run(
        "haltless.server.runner:app_from_environment",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_config=uvicorn_log_config(log_level),
        log_level=log_level,
        ws=WebSocketProtocol,
        ws_max_size=WS_MAX_INCOMING_BYTES,
        ws_per_message_deflate=False,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
