"""The clean-room NAB scorer reproduces the published final results from the shipped per-row scores."""

from __future__ import annotations

import numpy as np
import pytest
from bench.nab import dataset, scoring

pytestmark = pytest.mark.skipif(dataset.nab_dir() is None, reason=dataset.missing_reason())

TOLERANCE = 0.5


@pytest.fixture(scope="module")
def corpus() -> list[dataset.Series]:
    return dataset.load_corpus()


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_published_detectors_score_as_published(corpus: list[dataset.Series], detector: str) -> None:
    """numenta standard 70.1, windowedGaussian 39.65, and both on the other two profiles, within ±0.5."""
    scores = dataset.load_published_scores(detector, corpus)
    profiles = dataset.load_profiles()
    published = dataset.load_final_results()[detector]
    for name in dataset.PROFILES:
        result = scoring.score_corpus(corpus, scores, scoring.Profile.from_matrix(profiles[name]))
        assert result.normalized == pytest.approx(published[name], abs=TOLERANCE), name


def test_null_detector_scores_zero_and_perfect_scores_hundred(corpus: list[dataset.Series]) -> None:
    """The normalisation's two ends: never firing is 0, firing on each window's first row only is 100."""
    profile = scoring.Profile(tp_weight=1.0, fn_weight=1.0, fp_weight=0.11)
    null = [np.zeros(len(series.values)) for series in corpus]
    perfect = []
    for series in corpus:
        marks = np.zeros(len(series.values))
        for first, _ in series.windows:
            marks[first] = 1.0
        perfect.append(marks)
    assert scoring.score_corpus(corpus, null, profile).normalized == 0.0
    assert scoring.score_corpus(corpus, perfect, profile).normalized == pytest.approx(100.0)


def test_scaled_sigmoid_shape() -> None:
    """Nearly 1 at a window's start, 0 at its end, negative past it, -1 far past it."""
    values = scoring.scaled_sigmoid(np.array([-1.0, 0.0, 0.5, 3.5]))
    assert values[0] == pytest.approx(0.98661, abs=1e-4)
    assert values[1] == 0.0
    assert -1.0 < values[2] < 0.0
    assert values[3] == -1.0


def test_probation_is_fifteen_percent_capped_at_750_rows() -> None:
    assert scoring.probation_rows(4000) == 600
    assert scoring.probation_rows(20000) == 750
