"""The SDK's shape: a curated public surface, and no dependency on the server side of the package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import haltless.client
from haltless.client import _exceptions

CLIENT = Path(haltless.client.__file__).parent


def test_public_names_are_exactly_the_curated_all() -> None:
    public = {name for name in vars(haltless.client) if not name.startswith("_") and name != "annotations"}
    assert set(haltless.client.__all__) == public
    assert sorted(haltless.client.__all__) == sorted(set(haltless.client.__all__))
    for name in ("HaltlessClient", "AsyncHaltlessClient", "DashboardStream", "SensorUpdate", "SessionExpired"):
        assert name in haltless.client.__all__


def test_client_modules_are_private() -> None:
    modules = {path.stem for path in CLIENT.glob("*.py")} - {"__init__"}
    assert modules and all(name.startswith("_") for name in modules)


def test_client_imports_nothing_of_the_server_side() -> None:
    """The SDK ships to plant engineers' machines: it may import haltless.client, the package root (which holds
    nothing but the version, for the User-Agent) and third-party libraries only."""
    offenders = []
    for path in CLIENT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.startswith("haltless") and n != "haltless" and not n.startswith("haltless.client")
            ]
    assert offenders == []


def test_importing_the_client_loads_no_server_code() -> None:
    code = (
        "import sys, haltless.client;"
        "bad = [m for m in sys.modules if m.startswith(('haltless.server', 'haltless.store', 'haltless.bus',"
        " 'fastapi', 'sqlalchemy', 'uvicorn', 'starlette'))];"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""


def test_every_exception_is_in_the_one_documented_tree() -> None:
    doc = _exceptions.__doc__ or ""
    exported = [getattr(haltless.client, n) for n in haltless.client.__all__]
    errors = [obj for obj in exported if isinstance(obj, type) and issubclass(obj, Exception)]
    assert len(errors) >= 10
    for error in errors:
        assert issubclass(error, haltless.client.HaltlessClientError)
        assert error.__name__ in doc, error.__name__
