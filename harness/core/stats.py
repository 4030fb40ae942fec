"""Statistics of one measurement: what a user needs to judge a median.

Outliers are flagged (Tukey's fences, 1.5 x IQR beyond the quartiles), never dropped:
a slow sample is information about the machine. The confidence interval of the median
is a percentile bootstrap with a fixed seed, so the same samples give the same interval.
"""
from __future__ import annotations

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


def bootstrap_median_ci(samples, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = 0) -> tuple[float, float]:
    x = np.asarray(samples, dtype=float)
    if x.size < 2:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, x.size, size=(resamples, x.size))], axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(medians, [alpha, 1.0 - alpha])
    return float(low), float(high)


def outlier_mask(samples) -> np.ndarray:
    x = np.asarray(samples, dtype=float)
    q1, q3 = np.percentile(x, [25, 75])
    fence = 1.5 * (q3 - q1)
    return (x < q1 - fence) | (x > q3 + fence)


def summarize(samples) -> dict:
    """n, median, min, max, mean, stdev (ddof=1), CV, p10, p90, q1, q3, IQR, the bootstrap
    95% CI of the median and the indices of outliers, for samples in seconds."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples to summarize")
    p10, q1, median, q3, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    mean = float(x.mean())
    stdev = float(x.std(ddof=1)) if x.size > 1 else 0.0
    ci_low, ci_high = bootstrap_median_ci(x)
    return {
        "n": int(x.size),
        "median": float(median),
        "min": float(x.min()),
        "max": float(x.max()),
        "mean": mean,
        "stdev": stdev,
        "cv": stdev / mean if mean > 0 else 0.0,
        "p10": float(p10),
        "p90": float(p90),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
        "ci95_low": ci_low,
        "ci95_high": ci_high,
        "outliers": [int(i) for i in np.flatnonzero(outlier_mask(x))],
    }
