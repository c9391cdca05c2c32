"""NAB's scoring rules, implemented from their description (Lavin & Ahmad 2015, and the NAB v1.1 wiki).

- Each labelled anomaly has a window around it. A detection is a row whose anomaly score reaches the threshold.
- Inside a window only the earliest detection counts, as a true positive worth `tpWeight * σ(y) / σ(-1)`, where
  `y` runs from -1 at the window's first row to 0 just past its last row, and σ(y) = 2 / (1 + e^{5y}) - 1 is the
  scaled sigmoid: a detection at the first row earns tpWeight, late ones nearly 0. A window without a detection
  costs `fnWeight`.
- Every detection outside windows is a false positive worth `fpWeight * σ(y)` (σ is negative for y > 0): `y` is the
  distance past the end of the preceding window in units of that window's width, so a detection just after a
  window costs little and one far from any window (or before the first) costs the full `fpWeight`.
- The first 15% of each file (at most 750 rows) is a probationary period: its rows are not scored.
- One threshold is chosen for the whole corpus per profile: the one that maximises the summed score.
- The summed score is normalised so that the null detector (never fires) gets 0 and the perfect one (each window
  detected at its first row, worth `tpWeight`) gets 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.nab.dataset import FloatArray, Series

PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 750  # 15% of 5000 rows: long files learn for at most this many rows
FAR_PAST_WINDOW = 3.0  # beyond three window widths a false positive costs the full weight


@dataclass(frozen=True)
class Profile:
    """A cost matrix: what each outcome is worth."""

    tp_weight: float
    fn_weight: float
    fp_weight: float

    @classmethod
    def from_matrix(cls, matrix: dict[str, float]) -> Profile:
        """From NAB's `CostMatrix` (tpWeight, fnWeight, fpWeight)."""
        return cls(matrix["tpWeight"], matrix["fnWeight"], matrix["fpWeight"])


@dataclass(frozen=True)
class CorpusScore:
    """The outcome of scoring a detector on the corpus under one profile."""

    normalized: float
    raw: float
    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int


def probation_rows(length: int) -> int:
    """How many leading rows of a file of `length` rows are not scored."""
    return min(math.floor(PROBATION_FRACTION * length), PROBATION_CAP_ROWS)


def scaled_sigmoid(position: FloatArray) -> FloatArray:
    """σ(y) = 2/(1+e^{5y}) - 1, and -1 for rows more than three window widths past a window."""
    value = 2.0 / (1.0 + np.exp(5.0 * np.minimum(position, 50.0))) - 1.0
    return np.where(position > FAR_PAST_WINDOW, -1.0, value)


# σ(-1): true positives are scaled by it so that a detection at a window's first row is worth exactly tpWeight,
# which is what makes the perfect detector's score tpWeight per window.
EARLIEST_WORTH = float(scaled_sigmoid(np.array([-1.0]))[0])


def row_weights(series: Series, profile: Profile) -> tuple[FloatArray, FloatArray]:
    """Per row: what a detection there is worth (before the earliest-in-window rule), and its window (-1 = none)."""
    length = len(series.values)
    rows = np.arange(length, dtype=np.float64)
    worth = np.full(length, -profile.fp_weight)
    window_of = np.full(length, -1.0)
    for index, (first, last) in enumerate(series.windows):
        width = last - first + 1
        inside = slice(first, last + 1)
        worth[inside] = profile.tp_weight * scaled_sigmoid(-(last - rows[inside] + 1.0) / width) / EARLIEST_WORTH
        window_of[inside] = index
        following_end = series.windows[index + 1][0] if index + 1 < len(series.windows) else length
        after = slice(last + 1, following_end)
        worth[after] = profile.fp_weight * scaled_sigmoid((rows[after] - last) / max(width - 1, 1))
    return worth, window_of


def _threshold_events(
    series: Series, scores: FloatArray, profile: Profile
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per scored row: its anomaly score, the change in total score and TP/FP counts when it becomes a detection.

    As the threshold falls, a row inside a window adds value only if it is earlier than every detection already
    made there, i.e. it raises the window's best worth; the first row to do so also removes the window's miss cost.
    """
    worth, window_of = row_weights(series, profile)
    start = probation_rows(len(scores))
    score = scores[start:]
    worth = worth[start:]
    window_of = window_of[start:]
    delta = np.where(window_of < 0, worth, 0.0)
    tp_delta = np.zeros_like(score)
    for index in range(len(series.windows)):
        members = np.flatnonzero(window_of == index)
        if len(members) == 0:
            continue
        # Descending score; among equal scores any order gives the same sum at that threshold.
        order = members[np.argsort(-score[members], kind="stable")]
        best = np.maximum.accumulate(worth[order])
        previous = np.concatenate(([-profile.fn_weight], best[:-1]))
        delta[order] = best - previous
        tp_delta[order[0]] = 1.0
    fp_delta = (window_of < 0).astype(np.float64)
    return score, delta, tp_delta, fp_delta


def score_corpus(corpus: Sequence[Series], scores: Sequence[FloatArray], profile: Profile) -> CorpusScore:
    """Optimise the threshold over the whole corpus and return the normalised score (null 0, perfect 100)."""
    if len(corpus) != len(scores):
        raise ValueError(f"{len(scores)} score arrays for {len(corpus)} series")
    parts = [
        _threshold_events(series, np.asarray(s, dtype=np.float64), profile)
        for series, s in zip(corpus, scores, strict=True)
    ]
    score = np.concatenate([p[0] for p in parts])
    delta = np.concatenate([p[1] for p in parts])
    tp = np.concatenate([p[2] for p in parts])
    fp = np.concatenate([p[3] for p in parts])
    windows = sum(len(series.windows) for series in corpus)
    null = -profile.fn_weight * windows
    perfect = profile.tp_weight * windows
    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    totals = null + np.cumsum(delta[order])
    # The total at a threshold counts every row whose score reaches it: evaluate at the last row of each tie.
    last_of_tie = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    best = int(np.argmax(totals[last_of_tie])) if len(last_of_tie) else -1
    if best < 0 or totals[last_of_tie[best]] <= null:
        return CorpusScore(0.0, null, math.inf, 0, 0, windows)
    at = int(last_of_tie[best])
    raw = float(totals[at])
    true_positives = int(np.cumsum(tp[order])[at])
    return CorpusScore(
        normalized=100.0 * (raw - null) / (perfect - null),
        raw=raw,
        threshold=float(ranked[at]),
        true_positives=true_positives,
        false_positives=int(np.cumsum(fp[order])[at]),
        false_negatives=windows - true_positives,
    )
