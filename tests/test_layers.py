"""Architecture rules that keep the core pure."""

from __future__ import annotations

import ast
from pathlib import Path

import haltless

CORE = Path(haltless.__file__).parent / "core"
FORBIDDEN = (
    "haltless.server",
    "haltless.store",
    "haltless.bus",
    "haltless.client",
    "haltless.agent",
    "asyncio",
    "sqlalchemy",
    "fastapi",
    "starlette",
    "httpx",
    "websockets",
    "uvicorn",
    "socket",
    "redis",
)


def test_core_imports_no_io_and_no_outer_layer() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN or n.startswith(FORBIDDEN)]
    assert offenders == []
