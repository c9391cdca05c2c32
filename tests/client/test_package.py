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


# Pure policies the SDK shares with the server and the agent, one home each: standard library only (checked below).
SHARED_CORE = ("haltless.core.backoff", "haltless.core.retry_after")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_client_imports_nothing_of_the_server_side() -> None:
    """The SDK ships to plant engineers' machines: it may import haltless.client, the package root (which holds
    nothing but the version, for the User-Agent), the shared pure policies and third-party libraries only."""
    offenders = [
        f"{path.name}: {n}"
        for path in CLIENT.glob("*.py")
        for n in _imports(path)
        if n.startswith("haltless") and n not in ("haltless", *SHARED_CORE) and not n.startswith("haltless.client")
    ]
    assert offenders == []


def test_the_shared_policies_use_the_standard_library_only() -> None:
    for module in SHARED_CORE:
        path = CLIENT.parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
        outside = [n for n in _imports(path) if n.split(".")[0] not in sys.stdlib_module_names | {"__future__"}]
        assert outside == [], module


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


def test_the_machine_status_event_keeps_its_earlier_name() -> None:
    """Renamed so it no longer reads like the server's status enum (haltless.core.models.MachineStatus)."""
    assert haltless.client.MachineStatus is haltless.client.MachineStatusChanged
