"""The roofline model: bounds of (FLOPs, bytes) points, and the fit of a roof to measured points."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.roofline import efficiency, ridge_point, roofline_bound
from harness.analysis.roofline_fit import fit_roofline

# ----------------------------------------------------------------------------- bounds

PEAK, BW = 100e9, 10e9  # ridge at 10 FLOP/byte


def test_ridge_point_and_efficiency():
    assert ridge_point(PEAK, BW) == 10.0
    assert efficiency(measured_s=2.0, theoretical_s=0.5) == 0.25
    with pytest.raises(ValueError):
        ridge_point(0, BW)
    with pytest.raises(ValueError):
        efficiency(0.0, 1.0)


@pytest.mark.parametrize("flops, nbytes, intensity, attainable, time_s, bound", [
    (1e9, 1e9, 1.0, 10e9, 0.1, "memory"),      # left of the ridge: bytes / bandwidth
    (1e11, 1e9, 100.0, 100e9, 1.0, "compute"),  # right of it: flops / peak
    (1e10, 1e9, 10.0, 100e9, 0.1, "compute"),   # exactly at it: both times 0.1 s
    (0.0, 1e9, 0.0, 0.0, 0.1, "memory"),        # a pure copy
    (1e9, 0.0, math.inf, 100e9, 0.01, "compute"),
])
def test_roofline_bound_hand_computed(flops, nbytes, intensity, attainable, time_s, bound):
    b = roofline_bound(flops, nbytes, PEAK, BW)
    assert b.intensity == pytest.approx(intensity)
    assert b.attainable_flops_per_s == pytest.approx(attainable)
    assert b.theoretical_time_s == pytest.approx(time_s)
    assert b.bound == bound
    assert b.ridge_intensity == 10.0


def test_roofline_bound_reproduces_the_source_document_table():
    # Part 02, "实例": peak 2.86 TFLOP/s and ~93.75 GB/s give these theoretical times (us).
    peak, bw = 2.86e12, 93.75e9
    rows = [(51.380e6, 2.287e6, "memory", 24.40),
            (57.803e6, 24.501e6, "memory", 261.34),
            (924.844e6, 24.509e6, "compute", 323.37)]
    for flops, nbytes, bound, time_us in rows:
        b = roofline_bound(flops, nbytes, peak, bw)
        assert b.bound == bound
        assert b.theoretical_time_s * 1e6 == pytest.approx(time_us, rel=2e-3)


# ----------------------------------------------------------------------------- fit

P_TRUE, B_TRUE = 2.2e11, 4e10  # ridge 5.5 FLOP/byte


def synthetic_points(seed, lo=-4.0, hi=6.0, n_below=100, n_near=12, sigma=0.01):
    """Most points anywhere under the roof (roof x uniform(0.1, 1)), a handful on it on each
    side of the ridge, all with 1 % log-normal multiplicative noise. Intensities log2 in [lo, hi]."""
    rng = np.random.default_rng(seed)
    ridge = math.log2(P_TRUE / B_TRUE)
    near = [rng.uniform(lo, min(ridge, hi), n_near)] if lo < ridge else []
    near += [rng.uniform(max(ridge, lo), hi, n_near)] if hi > ridge else []
    log2_i = np.concatenate([rng.uniform(lo, hi, n_below), *near])
    intensity = 2.0**log2_i
    level = np.concatenate([rng.uniform(0.1, 1.0, n_below), np.ones(log2_i.size - n_below)])
    roof = np.minimum(intensity * B_TRUE, P_TRUE)
    return intensity, roof * level * np.exp(rng.normal(0.0, sigma, intensity.size))


@pytest.mark.parametrize("seed", range(6))
def test_fit_recovers_peak_and_bandwidth(seed):
    intensity, attained = synthetic_points(seed)
    fit = fit_roofline(intensity, attained, n_boot=50, seed=seed)
    assert fit.model == "both"
    assert fit.P == pytest.approx(P_TRUE, rel=0.02)
    assert fit.B == pytest.approx(B_TRUE, rel=0.02)
    assert fit.ridge == pytest.approx(P_TRUE / B_TRUE, rel=0.04)
    assert fit.P_ci[0] <= fit.P <= fit.P_ci[1] and fit.B_ci[0] <= fit.B <= fit.B_ci[1]
    assert 0 < fit.P_err < 0.05 * fit.P and 0 < fit.B_err < 0.05 * fit.B
    assert fit.n_points == intensity.size
    assert sorted(fit.B_points + fit.P_points) == list(range(intensity.size))
    assert all(intensity[i] < fit.ridge for i in fit.B_points)
    assert 5 <= len(fit.roof_points) <= 0.25 * intensity.size


def test_fit_ignores_a_fast_outlier_and_bad_points():
    intensity, attained = synthetic_points(0)
    clean = fit_roofline(intensity, attained, n_boot=0)
    intensity = np.append(intensity, [8.0, 0.5, -1.0, 3.0])
    attained = np.append(attained, [3 * P_TRUE, 0.0, 1e9, np.nan])
    fit = fit_roofline(intensity, attained, n_boot=0)
    assert fit.P == pytest.approx(clean.P, rel=0.01) and fit.B == pytest.approx(clean.B, rel=0.01)
    assert fit.n_points == intensity.size - 3 and "dropped 3" in fit.notes[0]


@pytest.mark.parametrize("seed", range(3))
def test_fit_with_only_memory_bound_points_leaves_peak_unidentified(seed):
    intensity, attained = synthetic_points(seed, lo=-4.0, hi=2.0)  # ridge is at 2**2.46
    fit = fit_roofline(intensity, attained, n_boot=20)
    assert fit.model == "memory" and fit.P is None and fit.ridge is None and fit.P_ci is None
    assert fit.B == pytest.approx(B_TRUE, rel=0.02)
    assert fit.P_lower == pytest.approx(fit.B * intensity.max())
    assert fit.P_points == [] and fit.identified == {"P": False, "B": True}


@pytest.mark.parametrize("seed", range(3))
def test_fit_with_only_compute_bound_points_leaves_bandwidth_unidentified(seed):
    intensity, attained = synthetic_points(seed, lo=3.0, hi=6.0)
    fit = fit_roofline(intensity, attained, n_boot=20)
    assert fit.model == "compute" and fit.B is None and fit.B_ci is None
    assert fit.P == pytest.approx(P_TRUE, rel=0.02)
    assert fit.B_lower == pytest.approx(fit.P / intensity.min())


def test_fit_noise_free_points_on_the_roof():
    intensity = 2.0 ** np.arange(-4, 7, 0.5)
    fit = fit_roofline(intensity, np.minimum(intensity * B_TRUE, P_TRUE), n_boot=0)
    assert fit.P == pytest.approx(P_TRUE, rel=1e-6) and fit.B == pytest.approx(B_TRUE, rel=1e-6)
    assert len(fit.roof_points) == intensity.size
