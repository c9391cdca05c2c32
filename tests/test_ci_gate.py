"""What CI runs (`.ci/run` on a fresh clone): `make check`'s steps, in its order, with the test settings that make
a red run say something about the commit. Read from the files themselves, so a change to one that drops a step
fails here rather than letting main go red unnoticed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import hypothesis

ROOT = Path(__file__).resolve().parent.parent


def _make_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{target}:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def _ci_commands() -> list[str]:
    text = (ROOT / ".ci" / "run").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_lint_format_types_then_the_readmes_test_command() -> None:
    commands = _ci_commands()
    gate, tests = commands.index("make lint typecheck"), commands.index("make test")
    assert gate < tests
    assert "set -euo pipefail" in commands  # any step failing fails the run
    assert re.search(r"^make test +#", (ROOT / "README.md").read_text(), re.M)  # the README's one test command
    lint = _make_recipe("lint")
    assert "$(BIN)/ruff check src tests bench" in lint
    assert "$(BIN)/ruff format --check src tests bench" in lint
    assert _make_recipe("typecheck") == ["$(BIN)/mypy"]
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["strict"] is True and {"src", "tests"} <= set(mypy["files"])
    assert _make_recipe("check") == [] and re.search(
        r"^check: lint typecheck test$", (ROOT / "Makefile").read_text(), re.M
    )


def test_ci_requires_every_service_and_draws_fixed_examples() -> None:
    commands = _ci_commands()
    tests = commands.index("make test")
    exported = {c.removeprefix("export ") for c in commands[:tests] if c.startswith("export ")}
    assert "HALTLESS_TEST_REQUIRE_SERVICES=1" in exported  # a missing broker fails instead of skipping
    assert "HALTLESS_HYPOTHESIS_PROFILE=haltless-ci" in exported
    ci = hypothesis.settings.get_profile("haltless-ci")
    assert ci.derandomize is True and ci.database is None and ci.deadline is None
