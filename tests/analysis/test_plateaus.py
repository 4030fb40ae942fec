"""The working-set sweep's sizes and the plateaus found in its curve."""
import math

import numpy as np
import pytest

from harness.analysis.plateaus import detect_plateaus
from harness.commands.probe import sweep_sizes


def test_sweep_sizes_bounds_and_density():
    llc = 32 * 1024 * 1024
    sizes = sweep_sizes(llc)
    assert sizes[0] == 4096 and sizes[-1] == 8 * llc
    assert sizes == sorted(set(sizes)) and all(s % 64 == 0 for s in sizes)
    doublings = math.log2(8 * llc / 4096)
    assert len(sizes) == 4 * doublings + 1
    for k in range(int(doublings)):  # 4 points in every doubling [2^k, 2^(k+1)) x 4096
        lo, hi = 4096 * 2**k, 4096 * 2 ** (k + 1)
        assert sum(lo <= s < hi for s in sizes) == 4
    ratios = np.array(sizes[1:]) / np.array(sizes[:-1])
    assert np.allclose(ratios, 2**0.25, rtol=0.02)


def test_sweep_sizes_other_grid():
    sizes = sweep_sizes(3 * 1024 * 1024, points_per_doubling=8, start=8192, factor=2)
    assert sizes[0] == 8192 and sizes[-1] <= 6 * 1024 * 1024
    assert sizes[-1] * 2 ** (1 / 8) > 6 * 1024 * 1024 * 0.99
    assert sum(8192 <= s < 16384 for s in sizes) == 8


# ---------------------------------------------------------------- plateaus

CACHES = {"L1": 48 * 1024, "L2": 1024 * 1024, "L3": 32 * 1024 * 1024}
GB = 1e9


def synthetic_curve(levels, noise, seed, ramp_points=2):
    """levels: [(last size in bytes, GB/s)], the last one running to 8x L3. Bandwidth steps
    down after each level's last size, over `ramp_points` grid points in log space."""
    rng = np.random.default_rng(seed)
    sizes = np.array(sweep_sizes(CACHES["L3"]), dtype=float)
    logbw = np.full(sizes.size, math.log(levels[-1][1] * GB))
    for (edge, bw), (_, next_bw) in reversed(list(zip(levels[:-1], levels[1:]))):
        # smooth step in log-size: fast below the edge, reaching next_bw ramp_points later
        t = np.clip((np.log2(sizes) - math.log2(edge)) / (ramp_points / 4), 0.0, 1.0)
        logbw = np.where(sizes <= edge * 2 ** (ramp_points / 4),
                         (1 - t) * math.log(bw * GB) + t * math.log(next_bw * GB), logbw)
    return sizes, np.exp(logbw) * np.exp(rng.normal(0.0, noise, sizes.size))


def check_found(found, expected):
    assert [p["level"] for p in found] == [level for level, _ in expected], found
    for p, (level, gbs) in zip(found, expected):
        assert math.isclose(p["median_gbs"], gbs, rel_tol=0.06), (p, gbs)
        assert p["nominal_bytes"] == CACHES.get(level)
        assert p["points"] >= 3 and p["first_bytes"] <= p["last_bytes"]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("noise", [0.0, 0.02, 0.04])
def test_detect_plateaus_recovers_steps(seed, noise):
    levels = [(40 * 1024, 430), (800 * 1024, 180), (16 * 1024**2, 110), (None, 30)]
    sizes, bw = synthetic_curve(levels, noise, seed)
    found = detect_plateaus(sizes, bw, CACHES)
    check_found(found, [("L1", 430), ("L2", 180), ("L3", 110), ("DRAM", 30)])
    l3 = found[2]
    assert l3["first_bytes"] >= 1024 * 1024 and l3["last_bytes"] <= 20 * 1024**2


@pytest.mark.parametrize("seed", range(4))
def test_detect_plateaus_missing_level(seed):
    """A machine whose L3 brings nothing (or a curve that skips it): no L3 invented."""
    levels = [(40 * 1024, 430), (800 * 1024, 180), (None, 30)]
    sizes, bw = synthetic_curve(levels, 0.03, seed)
    found = detect_plateaus(sizes, bw, CACHES)
    check_found(found, [("L1", 430), ("L2", 180), ("DRAM", 30)])


def test_detect_plateaus_order_and_outlier():
    levels = [(40 * 1024, 430), (800 * 1024, 180), (16 * 1024**2, 110), (None, 30)]
    sizes, bw = synthetic_curve(levels, 0.02, 0)
    bw[30] *= 0.5  # one disturbed point inside the L3 plateau
    order = np.random.default_rng(1).permutation(sizes.size)
    found = detect_plateaus(sizes[order], bw[order], CACHES)
    check_found(found, [("L1", 430), ("L2", 180), ("L3", 110), ("DRAM", 30)])


def test_detect_plateaus_close_levels():
    """L1 and L2 only 15% apart, as a write sweep can show: still two levels."""
    levels = [(40 * 1024, 230), (800 * 1024, 200), (16 * 1024**2, 110), (None, 30)]
    for seed in range(4):
        sizes, bw = synthetic_curve(levels, 0.02, seed)
        check_found(detect_plateaus(sizes, bw, CACHES),
                    [("L1", 230), ("L2", 200), ("L3", 110), ("DRAM", 30)])


def test_detect_plateaus_one_entry_per_level():
    """A bump inside L2 and a shared L3 slowly filling up: each level reported once, from its
    longest piece, with the other pieces counted."""
    levels = [(40 * 1024, 430), (800 * 1024, 180), (16 * 1024**2, 110), (None, 30)]
    sizes, bw = synthetic_curve(levels, 0.01, 0)
    bump = (sizes >= 430 * 1024) & (sizes <= 730 * 1024)  # 4 points
    bw[bump] *= 1.3
    tail = (sizes > 6 * 1024**2) & (sizes <= 16 * 1024**2)
    bw[tail] *= 0.75
    found = detect_plateaus(sizes, bw, CACHES)
    check_found(found, [("L1", 430), ("L2", 180), ("L3", 110), ("DRAM", 30)])
    assert found[1]["pieces"] == 2 and found[2]["pieces"] == 2


# 1-thread read sweep measured on the development machine (GB/s at sweep_sizes(32 MiB)):
# a slower start from per-repeat overhead, a bump at 512-608 KiB, a shared L3 fading from 9 MiB.
MEASURED_READ_GBS = [
    386, 390, 362, 406, 412, 410, 403, 402, 421, 427, 439, 437, 443, 413, 432, 159, 162, 165,
    165, 163, 168, 169, 171, 172, 172, 167, 173, 182, 229, 228, 184, 181, 140, 115, 103, 108,
    109, 107, 111, 109, 108, 109, 109, 106, 104, 94, 101, 94, 92, 90, 86, 83, 77, 60, 54, 44,
    46, 43, 40, 40, 39, 39, 38, 38, 40]


def test_detect_plateaus_measured_curve():
    sizes = sweep_sizes(CACHES["L3"])
    found = detect_plateaus(sizes, np.array(MEASURED_READ_GBS) * GB, CACHES)
    assert [p["level"] for p in found] == ["L1", "L2", "L3", "DRAM"]
    for p, (low, high) in zip(found, [(400, 440), (160, 175), (100, 112), (37, 42)]):
        assert low <= p["median_gbs"] <= high, p


def test_detect_plateaus_degenerate():
    assert detect_plateaus([4096, 8192], [1e11, 1e11], CACHES) == []
    flat = detect_plateaus(sweep_sizes(CACHES["L3"]), [2e10] * 65, CACHES)
    assert [p["level"] for p in flat] == ["DRAM"]
