"""NAB: our anomaly detector over the Numenta Anomaly Benchmark, scored beside the published detectors.

Runs `haltless.core.anomaly.AnomalyDetector` exactly as the server does (batches of readings of one series through
`score_batch`), over all 58 files, each from scratch with the same parameters and no look-ahead, once per
sensitivity. A reading the detector calls anomalous counts as a detection with its score; every other reading
scores 0. Also reports the detector's cost per reading per series on one core.
"""

from __future__ import annotations

import time

import numpy as np

from bench.nab import dataset, scoring
from haltless.core.anomaly import AnomalyDetector, Sensitivity, compiled

# The server sees ~500 readings per request spread over ~40 series: about a dozen per series per call.
BATCH = 12


def detector_build() -> str:
    """How the anomaly detector measured runs: compiled by `make install` (mypyc), or as pure Python."""
    return "compiled with mypyc" if compiled() else "run as pure Python (not compiled: see .venv/mypyc.log)"


def detector_scores(series: dataset.Series, sensitivity: Sensitivity) -> tuple[dataset.FloatArray, float]:
    """Per-row NAB scores of one file and the CPU seconds spent in `score_batch`."""
    detector = AnomalyDetector(sensitivity)
    stamps = series.timestamps_us.tolist()
    values = series.values.tolist()
    scores = np.zeros(len(values))
    spent = 0.0
    for start in range(0, len(values), BATCH):
        # CPU time, not wall time: on a shared machine the wall clock also counts other processes' turns.
        began = time.process_time()
        scored = detector.score_batch(stamps[start : start + BATCH], values[start : start + BATCH])
        spent += time.process_time() - began
        for offset, item in enumerate(scored):
            if item.anomalous:
                scores[start + offset] = item.score
    return scores, spent


def run() -> str:
    """Score every sensitivity and return the markdown table."""
    folder = dataset.nab_dir()
    if folder is None:
        return f"skipped: {dataset.missing_reason()}"
    corpus = dataset.load_corpus(folder)
    profiles = {name: scoring.Profile.from_matrix(m) for name, m in dataset.load_profiles(folder).items()}
    rows: list[tuple[str, dict[str, float], str]] = []
    cost: dict[Sensitivity, float] = {}
    readings = sum(len(series.values) for series in corpus)
    for sensitivity in Sensitivity:
        results = [detector_scores(series, sensitivity) for series in corpus]
        cost[sensitivity] = sum(spent for _, spent in results) / readings
        scores = [s for s, _ in results]
        outcome = {name: scoring.score_corpus(corpus, scores, profile) for name, profile in profiles.items()}
        standard = outcome["standard"]
        note = f"TP {standard.true_positives}, FP {standard.false_positives}, FN {standard.false_negatives}"
        rows.append((f"**haltless anomaly, {sensitivity.value}**", {k: v.normalized for k, v in outcome.items()}, note))
    for name, published in dataset.load_final_results(folder).items():
        rows.append((name, published, "published"))
    rows.sort(key=lambda row: -row[1]["standard"])
    lines = [
        "| detector | standard | reward low FP | reward low FN | |",
        "|---|---:|---:|---:|---|",
    ]
    for name, values, note in rows:
        cells = " | ".join(f"{values[p]:.1f}" for p in dataset.PROFILES)
        lines.append(f"| {name} | {cells} | {note} |")
    lines.append("")
    lines.append(
        f"Cost per reading per series (CPU time on one core), {BATCH} readings per `score_batch` call, "
        f"{readings} readings: " + ", ".join(f"{s.value} {cost[s] * 1e6:.2f} µs" for s in Sensitivity) + "; "
        f"the detector {detector_build()}."
    )
    return "\n".join(lines)
