"""A release wheel carries the anomaly detector compiled (pyproject.toml's hatch-mypyc hook), and what it carries
imports and scores as the installed module does.

Built as a release is, `HATCH_BUILD_HOOKS_ENABLE=1 pip wheel`, but without build isolation (hatchling and
hatch-mypyc are dev dependencies), so no package index is needed. From a copy of the sources: the hook compiles
beside the module, and this process has the module loaded from there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from haltless.core.anomaly import AnomalyDetector

ROOT = Path(__file__).resolve().parent.parent
# A periodic series past the warm-up, then a jump: quiet readings and an anomalous one.
VALUES = [50.0 + (i % 7) * 0.1 for i in range(400)] + [50.0, 90.0, 50.0]
SCORE = """
import json, sys
import haltless.core.anomaly as anomaly
values = json.loads(sys.argv[1])
said = anomaly.AnomalyDetector().score_batch(list(range(len(values))), values)
print(json.dumps({"file": anomaly.__file__, "said": [repr(tuple(item)) for item in said]}))
"""


def test_a_release_wheel_carries_the_compiled_detector(tmp_path: Path) -> None:
    sources = tmp_path / "haltless"
    shutil.copytree(ROOT / "src", sources / "src", ignore=shutil.ignore_patterns("*.so", "__pycache__", "build"))
    for name in ("pyproject.toml", "README.md", ".gitignore"):  # .gitignore decides what a wheel leaves out
        shutil.copy(ROOT / name, sources / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(sources)],
        env={**os.environ, "HATCH_BUILD_HOOKS_ENABLE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = tmp_path.glob("haltless-*.whl")
    assert "-none-any" not in wheel.name  # a platform wheel, not a pure one
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        compiled = sorted(n for n in names if n.startswith("haltless/core/anomaly") and not n.endswith(".py"))
        assert [Path(n).name.split(".")[0] for n in compiled] == ["anomaly", "anomaly__mypyc"], names
        assert "haltless/core/anomaly.py" in names  # the source rides along
        archive.extractall(tmp_path / "unpacked")
    ran = subprocess.run(
        [sys.executable, "-c", SCORE, json.dumps(VALUES)],
        env={**os.environ, "PYTHONPATH": str(tmp_path / "unpacked")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(ran.stdout)
    assert result["file"].startswith(str(tmp_path / "unpacked")) and not result["file"].endswith(".py")
    here = AnomalyDetector().score_batch(list(range(len(VALUES))), VALUES)
    assert result["said"] == [repr(tuple(item)) for item in here]
    assert any(item.anomalous for item in here)  # the jump to 90 was scored, not only quiet readings
