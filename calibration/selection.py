"""Which crops represent a pool: per-crop statistics, greedy k-center selection, and how well it covers.

Int8 post-training quantization fixes every tensor's range from the activations the calibration inputs
produce. A range set only by typical crops clips the rare ones (a blown-out sky, a night shot, a strongly
tinted illuminant, dense texture) at run time, so the set must reach the edges of the input distribution,
not only its middle. The first N crops of a dataset (a few scenes) or a random N (mostly typical crops)
do not. Greedy k-center does: it describes each candidate crop by a few statistics that drive PyNET's
activations, and repeatedly adds the candidate farthest from everything chosen so far.

Features of a packed crop (H, W, 4) in [0, 1], with luma = the mean of the four channels per packed pixel:

- ``mean_r``, ``mean_gr``, ``mean_gb``, ``mean_b``: exposure and white balance, per channel;
- ``luma_p01``, ``luma_p50``, ``luma_p99``: the dark end, the middle and the bright end of the histogram;
- ``log_r_over_g``, ``log_b_over_g``: the illuminant's and the camera's colour cast (log: symmetric);
- ``luma_std``: global contrast; ``gradient``: texture and noise, the mean gradient magnitude of luma;
- ``clipped_high``, ``clipped_low``: the share of values within ``CLIP_MARGIN`` of white and of black.

Each feature is standardised over the pool (z-score, a constant feature counts for nothing), so that no
unit dominates the Euclidean distance. Selection starts at the crop nearest the pool's mean, so the set
always holds a typical crop, then goes farthest-first. The order is meaningful: the first k crops are the
greedy choice for k, so a set can be truncated.

The covering radius of a chosen set is the largest distance from any candidate to its nearest chosen crop,
in standardised units: every candidate has a chosen crop within that distance, so lower is better. Greedy
k-center is within twice the best possible radius (Gonzalez 1985); ``coverage`` reports it next to the
first N candidates' and random N's, and each feature's range over the chosen set against the pool's.

Numpy only.
"""

from __future__ import annotations

import numpy as np

FEATURE_NAMES = (
    "mean_r",
    "mean_gr",
    "mean_gb",
    "mean_b",
    "luma_p01",
    "luma_p50",
    "luma_p99",
    "log_r_over_g",
    "log_b_over_g",
    "luma_std",
    "gradient",
    "clipped_high",
    "clipped_low",
)
CLIP_MARGIN = 0.01
"""Values within this of 1 (or 0) count as clipped: saturated highlights (or crushed shadows)."""
RATIO_EPSILON = 1e-4
"""Added to channel means before the colour ratios, so that black crops do not divide by zero."""
RANDOM_TRIALS = 32
"""Random N subsets drawn to compare the chosen set's covering radius with."""


def crop_features(packed: np.ndarray) -> np.ndarray:
    """The ``FEATURE_NAMES`` statistics (float32) of one packed crop (H, W, 4) in [0, 1]."""
    packed = np.asarray(packed, np.float32)
    means = packed.mean(axis=(0, 1), dtype=np.float64)
    luma = packed.mean(axis=-1, dtype=np.float64)
    green = (means[1] + means[2]) / 2
    gradient = np.hypot(np.diff(luma, axis=0)[:, :-1], np.diff(luma, axis=1)[:-1, :])
    values = [
        *means,
        *np.percentile(luma, [1, 50, 99]),
        np.log((means[0] + RATIO_EPSILON) / (green + RATIO_EPSILON)),
        np.log((means[3] + RATIO_EPSILON) / (green + RATIO_EPSILON)),
        luma.std(),
        gradient.mean() if gradient.size else 0.0,
        np.mean(packed >= 1 - CLIP_MARGIN),
        np.mean(packed <= CLIP_MARGIN),
    ]
    return np.array(values, np.float32)


def standardise(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z-scores, mean, std) per column of ``features`` (n, f); a constant column becomes all zeros."""
    features = np.asarray(features, np.float64)
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    return (features - mean) / np.where(std > 1e-12, std, 1.0), mean, std


def k_center(points: np.ndarray, k: int, start: int | None = None) -> np.ndarray:
    """Indices of ``k`` rows of ``points`` (n, f) by greedy farthest-point selection, in the order chosen.

    Starts at ``start``, by default the row nearest the mean; ties go to the lowest index, so the result
    depends on nothing but the input. Duplicate rows are chosen only once the distinct ones run out.
    """
    points = np.asarray(points, np.float64)
    if not 1 <= k <= len(points):
        raise ValueError(f"k must be between 1 and the number of points ({len(points)}), got {k}")
    if start is None:
        start = int(np.argmin(np.linalg.norm(points - points.mean(axis=0), axis=1)))
    chosen = [start]
    # distance of each point to its nearest chosen one; chosen points are held at -1 so they are never retaken
    nearest = np.linalg.norm(points - points[start], axis=1)
    nearest[start] = -1.0
    while len(chosen) < k:
        farthest = int(np.argmax(nearest))
        chosen.append(farthest)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[farthest], axis=1))
        nearest[farthest] = -1.0
    return np.array(chosen)


def nearest_distances(points: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Distance from each row of ``points`` to the nearest of the rows ``chosen``."""
    points = np.asarray(points, np.float64)
    centres = points[np.asarray(chosen)]
    return np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=-1).min(axis=1)


def covering_radius(points: np.ndarray, chosen: np.ndarray) -> float:
    """The largest distance from a row of ``points`` to its nearest chosen row: what k-center minimises."""
    return float(nearest_distances(points, chosen).max())


def coverage(features: np.ndarray, chosen: np.ndarray, seed: int) -> dict:
    """How well ``chosen`` (indices into the pool's raw ``features`` (n, f)) covers the pool, as plain JSON.

    ``radius`` and ``mean_distance`` (to the nearest chosen crop, standardised units) for the chosen set,
    for the pool's first N, and over ``RANDOM_TRIALS`` random N (mean and best) drawn from ``seed``;
    ``feature_ranges``: per feature, the pool's and the chosen set's [min, max] and the share of the pool's
    range the chosen set spans.
    """
    points, _, _ = standardise(features)
    k = len(chosen)
    rng = np.random.default_rng(seed)
    random_sets = [rng.choice(len(points), size=k, replace=False) for _ in range(RANDOM_TRIALS)]

    def summary(reducer) -> dict:
        randoms = [reducer(nearest_distances(points, subset)) for subset in random_sets]
        return {
            "k_center": float(reducer(nearest_distances(points, chosen))),
            "first_n": float(reducer(nearest_distances(points, np.arange(k)))),
            "random_n_mean": float(np.mean(randoms)),
            "random_n_best": float(np.min(randoms)),
        }

    ranges = {}
    for column, name in enumerate(FEATURE_NAMES):
        pool, picked = features[:, column], features[chosen, column]
        span = float(pool.max() - pool.min())
        ranges[name] = {
            "pool": [float(pool.min()), float(pool.max())],
            "chosen": [float(picked.min()), float(picked.max())],
            "covered": float(picked.max() - picked.min()) / span if span > 0 else 1.0,
        }
    return {
        "space": "per-crop features standardised over the pool (z-scores), Euclidean distance",
        "radius": summary(np.max),
        "mean_distance": summary(np.mean),
        "random_trials": RANDOM_TRIALS,
        "feature_ranges": ranges,
    }
