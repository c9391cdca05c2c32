"""Every HTTP client and WebSocket connection a test opens says how long it may wait.

httpx waits 5 s by default and websockets' handshake 10 s: on a loaded CI machine a login (a deliberately slow
password hash) took longer than 5 s and a green test went red (CI, test_machine_names_are_unique_per_tenant).
A test's timeout only bounds a failure, so each one is EVENT_TIMEOUT (tests/conftest.py), said where it is used.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent

# (module name as written, callable) -> the keyword that bounds its wait
BOUNDED = {
    ("httpx", "AsyncClient"): "timeout",
    ("httpx", "Client"): "timeout",
    ("websockets", "connect"): "open_timeout",
}


def _imports_websockets_connect(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "websockets.asyncio.client"
        and any(alias.name == "connect" and alias.asname is None for alias in node.names)
        for node in tree.body
    )


def unbounded_calls(source: str) -> list[int]:
    """Line numbers of client constructions in `source` that leave their timeout to the library's default."""
    tree = ast.parse(source)
    bare_connect = _imports_websockets_connect(tree)
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        keyword = None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            keyword = BOUNDED.get((func.value.id, func.attr))
        elif bare_connect and isinstance(func, ast.Name) and func.id == "connect":
            keyword = "open_timeout"
        if keyword is None:
            continue
        passes_kwargs = any(k.arg is None for k in node.keywords)  # **kwargs: the caller's helper decides
        if not passes_kwargs and all(k.arg != keyword for k in node.keywords):
            lines.append(node.lineno)
    return lines


def test_the_check_finds_a_default_timeout() -> None:
    source = (
        "import httpx\nfrom websockets.asyncio.client import connect\n"
        "httpx.AsyncClient(base_url='x')\nhttpx.Client(timeout=1)\nconnect('ws://x')\nconnect('ws://x', open_timeout=3)\n"
    )
    assert unbounded_calls(source) == [3, 5]


def test_every_client_in_the_tests_bounds_its_wait() -> None:
    found = {
        f"{path.relative_to(TESTS)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in unbounded_calls(path.read_text(encoding="utf-8"))
    }
    assert not found, f"pass timeout=EVENT_TIMEOUT (or open_timeout=) to these clients: {sorted(found)}"
