import numpy as np
import pytest

from harness.core import stats


KNOWN = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0]


def test_summary_matches_numpy_on_known_samples():
    s = stats.summarize(KNOWN)
    x = np.array(KNOWN)
    assert s["n"] == 10
    assert s["median"] == np.median(x) == 5.5
    assert s["min"] == 1.0 and s["max"] == 100.0
    assert s["mean"] == pytest.approx(x.mean())
    assert s["stdev"] == pytest.approx(x.std(ddof=1))
    assert s["cv"] == pytest.approx(x.std(ddof=1) / x.mean())
    assert s["p10"] == pytest.approx(np.percentile(x, 10))
    assert s["p90"] == pytest.approx(np.percentile(x, 90))
    assert s["iqr"] == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25))


def test_outlier_is_flagged_not_dropped():
    s = stats.summarize(KNOWN)
    assert s["outliers"] == [9]
    assert s["n"] == len(KNOWN) and s["max"] == 100.0


def test_bootstrap_ci_brackets_the_median_and_is_reproducible():
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 1.0, 400)
    low, high = stats.bootstrap_median_ci(x)
    assert low < np.median(x) < high
    assert (low, high) == stats.bootstrap_median_ci(x)
    # For a normal sample the median's standard error is ~1.2533 sigma / sqrt(n).
    half_width = (high - low) / 2
    assert half_width == pytest.approx(1.96 * 1.2533 / np.sqrt(400), rel=0.35)


def test_single_sample_and_empty():
    s = stats.summarize([2.0])
    assert s["median"] == 2.0 and s["stdev"] == 0.0 and s["ci95_low"] == s["ci95_high"] == 2.0
    with pytest.raises(ValueError):
        stats.summarize([])
