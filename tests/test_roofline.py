"""The roofline model (bounds, ceilings from a profile, the fit) and the intensity probe kernel."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.roofline import (Ceiling, Roofline, efficiency, fit_roofline, ridge_point,
                              roofline_bound)
from harness.core.workload import Context

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


# ----------------------------------------------------------------------------- ceilings

PROFILE = {
    "schema_version": 1,
    "device": {"cpu": "ignored"},
    "theoretical": {
        "float32": {"flops_per_s": 2.4e11, "isa": "avx512", "source": "2 cores x 3.7 GHz x 32 FLOP/cycle"},
        "float64": {"flops_per_s": 1.2e11, "isa": "avx512", "source": "2 cores x 3.7 GHz x 16 FLOP/cycle"},
    },
    "compute": [
        {"dtype": "float32", "isa": "avx512", "threads": 2, "flops_per_s": 2.2e11, "source": "probe.fma"},
        {"dtype": "float32", "isa": "avx512", "threads": 1, "flops_per_s": 1.15e11, "source": "probe.fma"},
        {"dtype": "float32", "isa": "avx2", "threads": 2, "flops_per_s": 1.1e11, "source": "probe.fma"},
        {"dtype": "float32", "isa": "blas", "threads": 2, "flops_per_s": 1.9e11, "source": "numpy.matmul"},
        {"dtype": "float64", "isa": "avx512", "threads": 2, "flops_per_s": 1.1e11, "source": "probe.fma"},
        {"dtype": "float64", "isa": "avx2", "threads": 2, "flops_per_s": None, "source": "failed"},
    ],
    "bandwidth": [
        {"level": "DRAM", "threads": 2, "bytes_per_s": 4e10, "source": "probe.stream triad numba"},
        {"level": "DRAM", "threads": 1, "bytes_per_s": 2.5e10, "source": "probe.stream triad numba"},
        {"level": "L1", "threads": 2, "bytes_per_s": 4e11, "source": "probe.sweep read"},
        {"level": "L1", "threads": 1, "bytes_per_s": 2e11, "source": "probe.sweep read"},
        {"level": "L2", "threads": 2, "bytes_per_s": 2e11, "source": "probe.sweep read"},
    ],
    "frequency_ghz": 3.66,
}


def _by_name(ceilings):
    return {(c.dtype, c.name): c for c in ceilings}


def test_from_profile_best_per_level_and_isa():
    roof = Roofline.from_profile(PROFILE)
    assert [c.name for c in roof.bandwidth_ceilings] == ["L1", "L2", "DRAM"]
    assert roof.bandwidth("DRAM").value == 4e10 and roof.bandwidth("DRAM").threads == 2
    measured = _by_name(c for c in roof.compute_ceilings if not c.theoretical)
    assert set(measured) == {("float32", "avx512"), ("float32", "avx2"), ("float32", "blas"),
                             ("float64", "avx512")}  # the failed float64 avx2 entry is skipped
    assert measured["float32", "avx512"].value == 2.2e11
    dashed = [c for c in roof.compute_ceilings if c.theoretical]
    assert {(c.dtype, c.value) for c in dashed} == {("float32", 2.4e11), ("float64", 1.2e11)}
    # bound uses the best measured ceiling, never the theoretical one
    assert roof.peak("float32").value == 2.2e11
    b = roof.bound(1e9, 1e9, dtype="float32", level="DRAM")
    assert b.bound == "memory" and b.theoretical_time_s == pytest.approx(1e9 / 4e10)
    assert roof.bound(1e12, 1e9, dtype="float64", level="L1").theoretical_time_s == pytest.approx(1e12 / 1.1e11)


def test_from_profile_at_given_threads():
    roof = Roofline.from_profile(PROFILE, threads=1)
    assert [(c.name, c.value) for c in roof.bandwidth_ceilings] == [("L1", 2e11), ("DRAM", 2.5e10)]
    assert [(c.dtype, c.name, c.value) for c in roof.compute_ceilings if not c.theoretical] == [
        ("float32", "avx512", 1.15e11)]
    with pytest.raises(KeyError):
        roof.bandwidth("L2")


def test_from_profile_tolerates_missing_sections():
    assert Roofline.from_profile({"schema_version": 1}).ceilings == []
    roof = Roofline.from_profile({"bandwidth": PROFILE["bandwidth"], "compute": None})
    assert len(roof.bandwidth_ceilings) == 3 and roof.compute_ceilings == []
    with pytest.raises(KeyError):
        roof.bound(1.0, 1.0)


def test_from_peaks():
    roof = Roofline.from_peaks(PEAK, BW, "toy")
    assert roof.label == "toy"
    assert roof.bound(1e9, 1e9) == roofline_bound(1e9, 1e9, PEAK, BW)
    assert roof.attainable(1.0) == 10e9 and roof.attainable(1e3) == PEAK
    assert isinstance(roof.ceilings[0], Ceiling)


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


# ----------------------------------------------------------------------------- intensity probe

from kernels import intensity as ik  # noqa: E402  (no numba import at module level)


def test_intensity_grid_and_plan():
    assert ik.intensity_grid() == [2.0**e for e in range(-4, 7)]
    assert ik.intensity_grid("float32")[0] == 1 / 8 and ik.intensity_grid("float64")[0] == 1 / 16
    for fpb, dtype, k, flops, nbytes in [(1 / 16, "float64", 0, 1, 16), (1 / 16, "float32", 0, 1, 8),
                                         (0.25, "float32", 1, 2, 8), (1.0, "float64", 8, 16, 16),
                                         (64, "float32", 256, 512, 8), (64, "float64", 512, 1024, 16)]:
        p = ik.plan(fpb, dtype)
        assert (p["fma_per_element"], p["flops_per_element"], p["bytes_per_element"]) == (k, flops, nbytes)
        assert p["intensity"] == flops / nbytes
        assert p["chain"] * p["passes"] == max(k, 1)
    assert ik.plan(3.0, "float32")["fma_per_element"] == 12  # not only powers of two


def test_kind_declaration():
    (kind,) = ik.KINDS
    assert kind.name == "probe.intensity"
    params, problems = kind.resolve_params({"flops_per_byte": 2, "dtype": "float64", "mbytes": 0.1})
    assert problems == [] and params["reps"] == 0
    _, problems = kind.resolve_params({"flops_per_byte": 64, "dtype": "float32", "reps": 10**6})
    assert problems and problems[0].startswith("reps:")


@pytest.mark.parametrize("fpb, dtype", [(1 / 16, "float64"), (0.75, "float32"), (8.0, "float32")])
def test_intensity_probe_runs_checks_and_counts(fpb, dtype):
    kind = ik.KINDS[0]
    params, problems = kind.resolve_params({"flops_per_byte": fpb, "dtype": dtype, "mbytes": 0.008, "reps": 3})
    assert problems == []
    work = kind.load_factory()(params, Context("t", threads=1, cpus=[0]))
    p = ik.plan(fpb, dtype)
    size = np.dtype(dtype).itemsize
    n = work.info["elements"]
    assert n == 2 * 4096 // size and work.info["array_bytes"] == 8192
    assert work.flops == 3 * n * p["flops_per_element"]
    assert work.bytes == 3 * n * 2 * size
    assert work.info["intensity"] == pytest.approx(p["intensity"])
    for _ in range(3):
        work.fn()
    work.check()
    probe = work.fn.__self__
    probe.array[n // 2] += 1  # a kernel that got one element wrong must not pass
    with pytest.raises(AssertionError):
        probe.check()
