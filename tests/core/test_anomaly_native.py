"""The anomaly detector's module compiled with mypyc against the same module run as pure Python.

`make install` compiles `src/haltless/core/anomaly.py` in place (where a C compiler is found) and Python imports
the extension in its stead, so the rest of the suite tests whichever is installed; release wheels ship it
compiled, a source install runs it as pure Python (docs/anomaly-detection.md, "The compiled detector"). This
file loads the source a second time as a pure module and checks that both say the same of the seeded series
whose scores `test_anomaly_fast` pins, and that CI (`HALTLESS_TEST_REQUIRE_COMPILED=1`) runs the compiled one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from haltless.core import anomaly
from tests.core.test_anomaly_fast import _series

SOURCE = Path(anomaly.__file__ or "").with_name("anomaly.py")
COMPILED = anomaly.compiled()
needs_compiled = pytest.mark.skipif(not COMPILED, reason="the installed module is pure Python: nothing to compare")


@cache
def _pure() -> ModuleType:
    spec = importlib.util.spec_from_file_location("haltless_anomaly_pure", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _said(items: list[Any]) -> list[str]:
    """What a detector said, comparable across the two modules (each has its own `Scored` class)."""
    return [repr(tuple(item)) for item in items]


def test_the_module_knows_whether_it_is_compiled() -> None:
    assert COMPILED is (Path(anomaly.__file__ or "").suffix == ".so")
    assert not _pure().compiled()


def test_ci_runs_the_compiled_module() -> None:
    if os.environ.get("HALTLESS_TEST_REQUIRE_COMPILED") != "1":
        pytest.skip("HALTLESS_TEST_REQUIRE_COMPILED is not set (a checkout without a C compiler runs pure Python)")
    assert COMPILED, f"haltless.core.anomaly is {anomaly.__file__}, not the module compiled by `make install`"


@needs_compiled
def test_the_compiled_module_is_not_older_than_its_source() -> None:
    assert Path(anomaly.__file__ or "").stat().st_mtime >= SOURCE.stat().st_mtime, (
        "src/haltless/core/anomaly.py changed since it was compiled, so the suite would test the old code: "
        "`make install` (or `make test`) compiles it again"
    )


@needs_compiled
def test_compiled_and_pure_say_the_same() -> None:
    """Scores, scans, states and rebuilds of both modules, batch by batch, on one seeded mix of series."""
    pure = _pure()
    assert pure.AnomalyDetector is not anomaly.AnomalyDetector  # really two modules
    rng = random.Random(31)
    anomalous = 0
    for _ in range(50):
        values = _series(rng)
        # Each module has its own Sensitivity (the compiled one checks argument types as annotated).
        level = rng.choice(tuple(anomaly.Sensitivity)).value
        sensitivity, pure_sensitivity = anomaly.Sensitivity(level), pure.Sensitivity(level)
        native, plain = anomaly.AnomalyDetector(sensitivity), pure.AnomalyDetector(pure_sensitivity)
        stamps = list(range(len(values)))
        start = 0
        while start < len(values):
            size = rng.choice((1, 7, 17, 100, 500))
            batch = slice(start, start + size)
            if rng.random() < 0.5:
                said = native.score_batch(stamps[batch], values[batch])
                assert _said(said) == _said(plain.score_batch(stamps[batch], values[batch]))
                anomalous += sum(item.anomalous for item in said)
            else:
                loud, anomalous_on = native.scan_batch(stamps[batch], values[batch])
                plain_loud, plain_anomalous_on = plain.scan_batch(stamps[batch], values[batch])
                assert repr(loud) == repr(plain_loud)
                assert _said(anomalous_on) == _said(plain_anomalous_on)
            assert json.dumps(native.state()) == json.dumps(plain.state())
            start += size
        rebuilt = anomaly.AnomalyDetector.rebuild(stamps, values, sensitivity)
        plain_rebuilt = pure.AnomalyDetector.rebuild(stamps, values, pure_sensitivity)
        assert json.dumps(rebuilt.state()) == json.dumps(plain_rebuilt.state())
        restored = pure.AnomalyDetector.from_state(json.loads(json.dumps(native.state())))
        more = [v * 1.5 for v in values[:40]]
        assert _said(restored.score_batch(stamps[:40], more)) == _said(native.score_batch(stamps[:40], more))
    assert anomalous > 10  # alarms (and the coarsening they cause) were compared, not only quiet readings
