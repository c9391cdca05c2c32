"""Architecture rules, one per layer: what each package of `haltless` may import (see docs/architecture.md).

Read from the source (static imports, at any depth in the module) so a forbidden import fails here even when no
test runs the code path that makes it. Relative imports stay inside their package and are not checked.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import haltless

PACKAGE = Path(haltless.__file__).parent
OUR_LAYERS = ("core", "store", "bus", "server", "client", "agent", "demo", "admin", "cli", "settings", "errors")
IO_AND_FRAMEWORKS = (
    "asyncio",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "fastapi",
    "starlette",
    "httpx",
    "websockets",
    "uvicorn",
    "socket",
    "redis",
)
WEB_SERVER = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "aiosqlite", "alembic")

# layer → (haltless layers it may import, third-party top-level modules it must not import)
RULES: dict[str, tuple[set[str], tuple[str, ...]]] = {
    # The pure core: state and input in, decisions out. No I/O, no clock, no outer layer.
    "core": ({"errors"}, IO_AND_FRAMEWORKS),
    # Persistence: tables and queries. Knows the core's types, nothing of HTTP or the bus.
    "store": ({"core", "errors"}, ("fastapi", "starlette", "uvicorn", "websockets", "redis", "httpx")),
    # The event bus: memory or Redis. Knows the core's event types only.
    "bus": ({"core"}, ("fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "aiosqlite", "httpx")),
    # The HTTP/WebSocket server: wires core, store and bus together; never the SDK, the agent or the CLI.
    "server": ({"core", "store", "bus", "settings", "errors", "__init__"}, ()),
    # The SDK: speaks only the public API, so it installs and imports without the server's stack
    # (and the two pure policies it shares with the server and agent, standard library only: test_package.py).
    "client": ({"__init__", "core.backoff", "core.retry_after"}, WEB_SERVER),
    # The edge agent: runs beside machines, talks to the server over HTTP only (and reuses the demo's simulator).
    "agent": ({"core", "demo", "__init__"}, WEB_SERVER),
    # (and the core's check of the secrets keys, pure: core/secret_box.py)
    "settings": ({"bus", "core.secret_box"}, ()),
}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _files(layer: str) -> list[Path]:
    folder = PACKAGE / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{layer}.py"]


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    allowed, forbidden = RULES[layer]
    offenders = []
    for path in _files(layer):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "haltless":
                target = parts[1] if len(parts) > 1 else "__init__"
                if target != layer and target not in allowed and ".".join(parts[1:]) not in allowed:
                    offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
            elif parts[0] in forbidden:
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []


def test_every_layer_has_a_rule_or_is_an_entry_point() -> None:
    """A new package under haltless/ must be given its rule here (entry points may import anything)."""
    entry_points = {"cli", "admin", "demo", "errors", "__main__", "__init__"}
    found = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    found -= {"__pycache__", "static", "py"}
    assert sorted(found - set(RULES) - entry_points) == []
    assert set(OUR_LAYERS) >= set(RULES)


def test_the_sdk_imports_without_the_server_stack() -> None:
    """Run in a fresh interpreter: importing haltless.client (and the agent) loads none of the server's libraries."""
    code = (
        "import sys, haltless.client, haltless.agent.runner;"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(WEB_SERVER)!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


# Inside the server: sub-package → (server sub-packages or modules it may import, third-party modules it must not).
# The domain service changes state and knows nothing of HTTP; schemas are plain pydantic; transports sit on top.
SERVER = "haltless.server"
SERVER_RULES: dict[str, tuple[set[str], tuple[str, ...]]] = {
    # The unit of work and every change made through it: no HTTP, no WebSocket. (schemas: the request bodies
    # whose rules the admin API and the CLI share, service/notification_config.py.)
    "service": ({"clock", "schemas"}, ("fastapi", "starlette", "uvicorn", "websockets")),
    # Request and response bodies: pydantic over the core's types, no I/O.
    "schemas": (
        set(),
        ("fastapi", "starlette", "uvicorn", "websockets", "sqlalchemy", "asyncpg", "aiosqlite", "redis"),
    ),
    # HTTP plumbing the routes share (bodies, errors, auth, origins, OpenAPI, the built-in pages).
    "http": ({"clock", "state"}, ("uvicorn", "websockets")),
    # The WebSocket transport: protocol, hub, frames, endpoint; authenticates through http, never a database query.
    "ws": ({"clock", "http", "service", "state"}, ("sqlalchemy", "asyncpg", "aiosqlite")),
    # REST routes: bodies in and out, the service for changes, http for auth.
    "routes": ({"http", "schemas", "service", "state", "ws"}, ()),
}


@pytest.mark.parametrize("sub", sorted(SERVER_RULES))
def test_server_sub_package_imports_only_what_it_may(sub: str) -> None:
    allowed, forbidden = SERVER_RULES[sub]
    offenders = []
    for path in sorted((PACKAGE / "server" / sub).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            other_folder = name.startswith(SERVER + ".") and len(parts) > 2 and parts[2] not in allowed | {sub}
            if other_folder or parts[0] in forbidden:
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []


def test_every_server_sub_package_has_a_rule() -> None:
    """The server's own modules wire the sub-packages together (app, state, runner, clock, logs); every folder
    below it is a layer with a rule here."""
    folders = {p.name for p in (PACKAGE / "server").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert sorted(folders - set(SERVER_RULES)) == []
