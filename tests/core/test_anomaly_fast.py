"""The detector's hot loop (`AnomalyDetector._score_warm`, tuned for bench M4, issue 18) against what it replaced.

Results must not move when the loop is made faster: the scores of seeded random series (noise, steps, spikes,
periodic, levels, stuck stretches, huge values), batch sizes and sensitivities are pinned by a digest taken from
the plain loop of main before the tuning (0e78ee8). Each value is hashed at 12 significant digits (a platform's
last-bit difference in log2 must not fail it); the flags exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import random

from haltless.core.anomaly import REBUILD_READINGS, WARMUP_READINGS, AnomalyDetector, Scored, Sensitivity

SENSITIVITIES = tuple(Sensitivity)
# From main's plain loop (0e78ee8), `_digest(18, 120)`.
DIGEST = "0f585984a7a140f676e0dba1ab4083dc4290f075072a506d5b93839ca566de50"
ANOMALIES = 144


def _series(rng: random.Random) -> list[float]:
    n = rng.randrange(1, 2500)
    kind = rng.randrange(6)
    if kind == 0:  # noise at a random scale
        scale = rng.choice((0.001, 1.0, 1000.0))
        return [rng.random() * scale for _ in range(n)]
    if kind == 1:  # the bench's periodic series
        return [70.0 + (i % 7) * 0.1 for i in range(n)]
    if kind == 2:  # few levels
        return [float(rng.randrange(5)) for _ in range(n)]
    if kind == 3:  # noise with spikes
        values = [10.0 + rng.random() for _ in range(n)]
        for _ in range(rng.randrange(10)):
            values[rng.randrange(n)] += rng.choice((50.0, -50.0, 1e6, 3.0))
        return values
    if kind == 4:  # steps, stuck stretches and noise
        values, level = [], 0.0
        for _ in range(n):
            if rng.random() < 0.01:
                level += (rng.random() - 0.5) * 20.0
            values.append(level if rng.random() < 0.9 else level + rng.random())
        return values
    # extremes now and then
    return [
        rng.choice((0.0, 1.0, 1e300, -1e300, 5e-324, 1.5)) if rng.random() < 0.05 else rng.random() for _ in range(n)
    ]


def _line(item: Scored) -> str:
    numbers = (item.score, item.expected, item.low, item.high)
    return f"{item.value:.12g} {' '.join(f'{x:.12g}' for x in numbers)} {item.warming_up:d}{item.anomalous:d}"


def _digest(seed: int, runs: int) -> tuple[str, int]:
    rng = random.Random(seed)
    sha = hashlib.sha256()
    anomalies = 0
    for _ in range(runs):
        values = _series(rng)
        detector = AnomalyDetector(rng.choice(SENSITIVITIES))
        stamps = list(range(len(values)))
        start = 0
        while start < len(values):
            size = rng.choice((1, 7, 17, 100, 500))
            for item in detector.score_batch(stamps[start : start + size], values[start : start + size]):
                sha.update(_line(item).encode())
                anomalies += item.anomalous
            start += size
    return sha.hexdigest(), anomalies


def test_scores_are_those_of_the_plain_loop() -> None:
    digest, anomalies = _digest(18, 120)
    assert (digest, anomalies) == (DIGEST, ANOMALIES)


def test_warm_up_band_is_the_range_and_mean_so_far() -> None:
    rng = random.Random(3)
    values = [rng.random() * 100 - 50 for _ in range(WARMUP_READINGS)]
    scored = AnomalyDetector().score_batch(list(range(len(values))), values)
    for count, item in enumerate(scored, start=1):
        seen = values[:count]
        assert (item.low, item.high) == (min(seen), max(seen))
        assert item.expected == math.fsum(v / count for v in seen)


def test_rebuild_reaches_the_state_of_scoring_the_same_readings() -> None:
    rng = random.Random(4)
    for _ in range(40):
        values = _series(rng)
        stamps = list(range(len(values)))
        replayed = AnomalyDetector()
        replayed.score_batch(stamps[-REBUILD_READINGS:], values[-REBUILD_READINGS:])
        rebuilt = AnomalyDetector.rebuild(stamps, values)
        replayed._last_fire = rebuilt._last_fire  # rebuild forgets its replay's alarms on purpose
        assert json.dumps(rebuilt.state()) == json.dumps(replayed.state())
        more = [v * 1.5 for v in values[:50]]
        assert repr(rebuilt.score_batch(stamps[:50], more)) == repr(replayed.score_batch(stamps[:50], more))


def test_a_scan_ends_where_scoring_ends_and_keeps_what_an_idle_rule_needs() -> None:
    """`scan_batch` (settle's hot path) against `score_batch` on the same readings: the same detector state after
    every batch, the scores above 0 before the first anomalous reading, and that reading and the rest in full.
    Scans and full scores are mixed on one detector, so a stale band left by a scan must be rebuilt exactly."""
    rng = random.Random(6)
    anomalous_scans = 0
    for _ in range(60):
        values = _series(rng)
        sensitivity = rng.choice(SENSITIVITIES)
        scanned, scored = AnomalyDetector(sensitivity), AnomalyDetector(sensitivity)
        stamps = list(range(len(values)))
        start = 0
        while start < len(values):
            size = rng.choice((1, 7, 17, 100, 500))
            batch = slice(start, start + size)
            expected = scored.score_batch(stamps[batch], values[batch])
            if rng.random() < 0.7:
                loud, anomalous_on = scanned.scan_batch(stamps[batch], values[batch])
                cut = next((i for i, item in enumerate(expected) if item.anomalous), len(expected))
                assert loud == [(i, item.score) for i, item in enumerate(expected[:cut]) if item.score > 0]
                assert repr(anomalous_on) == repr(expected[cut:])
                anomalous_scans += bool(anomalous_on)
            else:
                assert repr(scanned.score_batch(stamps[batch], values[batch])) == repr(expected)
            assert json.dumps(scanned.state()) == json.dumps(scored.state())
            start += size
    assert anomalous_scans > 20  # the band worked out from the moves was checked often
