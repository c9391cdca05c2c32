"""The NAB v1.1 corpus on disk: series, label windows, scoring profiles and published results.

The data is not part of the project: it is read from `shared/datasets/nab` beside the project root (where it sits
beside a worktree or a CI clone) or beside the nearest folder above it that has one (a clone one level deeper),
unless `HALTLESS_NAB_DIR` names another folder.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

ENV_VAR = "HALTLESS_NAB_DIR"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_PART = Path("shared") / "datasets" / "nab"
DEFAULT_DIR = PROJECT_ROOT.parent / SHARED_PART
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _is_corpus(folder: Path) -> bool:
    return (folder / "labels" / "combined_windows.json").is_file()


def nab_dir() -> Path | None:
    """The corpus folder, or None when it is not there (callers skip with `missing_reason()`)."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured) if _is_corpus(Path(configured)) else None
    for above in PROJECT_ROOT.parents:
        if _is_corpus(above / SHARED_PART):
            return above / SHARED_PART
    return None


def missing_reason() -> str:
    """Why the corpus cannot be found, for a skip message."""
    configured = os.environ.get(ENV_VAR)
    where = configured if configured else f"{DEFAULT_DIR} or beside any folder above it"
    return f"NAB corpus not found at {where} (set {ENV_VAR} to the folder holding labels/ data/ config/ results/)"


def require_dir() -> Path:
    """The corpus folder; a clear error when it is absent."""
    folder = nab_dir()
    if folder is None:
        raise FileNotFoundError(missing_reason())
    return folder


@dataclass(frozen=True)
class Series:
    """One NAB file: its name (`category/file.csv`), timestamps in µs since the epoch and values."""

    name: str
    timestamps_us: IntArray
    values: FloatArray
    # Label windows as (first, last) row indices, inclusive, in time order.
    windows: tuple[tuple[int, int], ...]


def _parse_us(text: str) -> int:
    moment = datetime.fromisoformat(text)
    # NAB timestamps are naive; read them as UTC so that the arithmetic is plain.
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1_000_000)


def _read_columns(path: Path, value_column: str) -> tuple[list[str], FloatArray]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["timestamp"] for row in rows], np.array([float(row[value_column]) for row in rows])


def _window_rows(stamps: list[str], spans: list[list[str]]) -> tuple[tuple[int, int], ...]:
    """Map each window's (start, end) timestamps to the first and last row inside it."""
    moments = np.array([_parse_us(s) for s in stamps], dtype=np.int64)
    rows: list[tuple[int, int]] = []
    for start, end in spans:
        first = int(np.searchsorted(moments, _parse_us(start), side="left"))
        last = int(np.searchsorted(moments, _parse_us(end), side="right")) - 1
        if last >= first:
            rows.append((first, last))
    return tuple(rows)


def load_windows(folder: Path) -> dict[str, list[list[str]]]:
    """The label windows per file, as NAB ships them (timestamp strings)."""
    windows: dict[str, list[list[str]]] = json.loads((folder / "labels" / "combined_windows.json").read_text())
    return windows


def load_corpus(folder: Path | None = None) -> list[Series]:
    """All 58 series with their windows, in a stable order."""
    folder = folder or require_dir()
    windows = load_windows(folder)
    corpus: list[Series] = []
    for name in sorted(windows):
        stamps, values = _read_columns(folder / "data" / name, "value")
        moments = np.array([_parse_us(s) for s in stamps], dtype=np.int64)
        corpus.append(Series(name, moments, values, _window_rows(stamps, windows[name])))
    return corpus


def load_published_scores(detector: str, corpus: list[Series], folder: Path | None = None) -> list[FloatArray]:
    """A published detector's per-row anomaly scores, one array per series of `corpus`, same row order."""
    folder = folder or require_dir()
    scores: list[FloatArray] = []
    for series in corpus:
        category, file_name = series.name.split("/")
        _, values = _read_columns(folder / "results" / detector / category / f"{detector}_{file_name}", "anomaly_score")
        if len(values) != len(series.values):
            raise ValueError(
                f"{detector} scores for {series.name} have {len(values)} rows, the data {len(series.values)}"
            )
        scores.append(values)
    return scores


def load_profiles(folder: Path | None = None) -> dict[str, dict[str, float]]:
    """Cost matrix per profile: tpWeight, fnWeight, fpWeight, tnWeight."""
    folder = folder or require_dir()
    raw = json.loads((folder / "config" / "profiles.json").read_text())
    return {name: {k: float(v) for k, v in raw[name]["CostMatrix"].items()} for name in PROFILES}


def load_final_results(folder: Path | None = None) -> dict[str, dict[str, float]]:
    """Published normalised score per detector and profile."""
    folder = folder or require_dir()
    results: dict[str, dict[str, float]] = json.loads((folder / "results" / "final_results.json").read_text())
    return results
