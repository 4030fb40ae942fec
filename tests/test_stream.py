"""STREAM and working-set sweep probes: results checked, bytes counted the STREAM way,
sizes chosen by the rules, plateaus found. Correctness only, never speed."""
import math

import numpy as np
import pytest

from harness.core.workload import Context
from kernels import stream, sweep

TINY_MB = 0.01  # 1250 elements per array: checks the arithmetic, not the bandwidth


def numba_threads_available():
    import numba

    return numba.config.NUMBA_NUM_THREADS


def ctx(threads=1):
    return Context("test", threads, list(range(threads)))


def noop(*args):
    return None


# ---------------------------------------------------------------- STREAM

@pytest.mark.parametrize("impl", ["numpy", "numba"])
@pytest.mark.parametrize("op", stream.STREAM_OPS)
def test_stream_check_passes(impl, op):
    work = stream.stream({"impl": impl, "op": op, "mbytes": TINY_MB}, ctx())
    for _ in range(3):
        work.fn()
    work.check()


@pytest.mark.parametrize("op", stream.STREAM_OPS)
def test_stream_numba_two_threads(op):
    if numba_threads_available() < 2:
        pytest.skip("Numba started with one thread")
    work = stream.stream({"impl": "numba", "op": op, "mbytes": TINY_MB}, ctx(2))
    work.fn()
    work.check()
    assert work.info["threads"] == 2


@pytest.mark.parametrize("impl", ["numpy", "numba"])
@pytest.mark.parametrize("op", stream.STREAM_OPS)
def test_stream_check_fails_when_kernel_skipped(monkeypatch, impl, op):
    real = stream.stream_kernels
    monkeypatch.setattr(stream, "stream_kernels", lambda which: {**real(which), op: noop})
    work = stream.stream({"impl": impl, "op": op, "mbytes": TINY_MB}, ctx())
    work.fn()
    with pytest.raises(AssertionError):
        work.check()


def test_stream_check_fails_when_kernel_only_ran_once(monkeypatch):
    """A kernel that works on its first call and then does nothing must not pass."""
    real = stream.stream_kernels("numba")["triad"]
    calls = {"n": 0}

    def once(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            real(*args)

    monkeypatch.setattr(stream, "stream_kernels", lambda which: {**stream.numba_stream_kernels(), "triad": once})
    work = stream.stream({"impl": "numba", "op": "triad", "mbytes": TINY_MB}, ctx())
    work.fn()
    with pytest.raises(AssertionError):
        work.check()


def test_numpy_stream_with_threads_is_skipped():
    from harness.core.workload import Skip

    with pytest.raises(Skip):
        stream.stream({"impl": "numpy", "op": "copy", "mbytes": TINY_MB}, ctx(2))


@pytest.mark.parametrize("op,app,hw", [("copy", 2, 3), ("scale", 2, 3), ("add", 3, 4), ("triad", 3, 4)])
def test_stream_byte_accounting(op, app, hw):
    n = 1000
    assert stream.stream_bytes(op, n) == (app * 8 * n, hw * 8 * n)
    work = stream.stream({"impl": "numpy", "op": op, "mbytes": TINY_MB}, ctx())
    n = work.info["array_elements"]
    assert work.bytes == app * 8 * n
    assert work.info["bytes_hw"] == hw * 8 * n
    assert math.isclose(work.info["bytes_hw"] / work.bytes, {2: 1.5, 3: 4 / 3}[app])
    assert work.info["bytes_accounting"].startswith("STREAM")


def test_stream_expected_closed_form():
    assert stream.stream_expected("copy")["c"] == stream.A0
    assert stream.stream_expected("scale")["b"] == stream.STREAM_SCALAR * stream.C0
    assert stream.stream_expected("add")["c"] == stream.A0 + stream.B0
    assert stream.stream_expected("triad")["a"] == stream.B0 + stream.STREAM_SCALAR * stream.C0


def test_stream_array_bytes_rule():
    mib = 1024 * 1024
    # Plenty of memory: 4x the LLC, whole 2 MiB pages.
    assert stream.stream_array_bytes(32 * mib, 64 * 10**9) == 128 * mib
    # Tiny LLC: STREAM's floor of 1e6 elements, rounded down to whole huge pages.
    size = stream.stream_array_bytes(256 * 1024, 64 * 10**9)
    assert 6 * mib <= size <= 8 * 10**6 and size % (2 * mib) == 0
    # Short of memory: three arrays take at most half of what is available.
    available = 600 * 10**6
    size = stream.stream_array_bytes(32 * mib, available)
    assert size < 4 * 32 * mib
    assert 3 * size <= available / 2
    assert size % (2 * mib) == 0 and size > 0
    # Very short: still a positive whole number of 4 KiB pages.
    size = stream.stream_array_bytes(32 * mib, 3 * 10**6)
    assert 0 < size <= 10**6 / 2 and size % 4096 == 0


def test_stream_auto_size_follows_rule(monkeypatch):
    monkeypatch.setattr(stream, "llc_total_bytes", lambda: 1024 * 1024)
    work = stream.stream({"impl": "numpy", "op": "copy", "mbytes": 0}, ctx())
    assert work.info["array_bytes"] == stream.stream_array_bytes(1024 * 1024, work.info["available_bytes"])
    assert work.info["meets_stream_rule"]


def test_thread_blocks_static_and_line_aligned():
    bounds = stream.thread_blocks(1001, 3)
    assert bounds[0] == 0 and bounds[-1] == 1001 and len(bounds) == 4
    assert all(b % 8 == 0 for b in bounds[1:-1])
    assert np.all(np.diff(bounds) > 0)


def test_aligned_empty_alignment_and_offset():
    a = stream.aligned_empty(1000, 4096, offset=128)
    assert a.ctypes.data % 4096 == 128 and a.size == 1000 and a.dtype == np.float64


def test_page_info_fields():
    a = stream.aligned_empty(4 * 1024 * 1024)  # 32 MiB, 2 MiB aligned
    a.fill(1.0)
    info = stream.page_info(a)
    assert info["mappings"] >= 1
    assert info["kernel_page_size"] in (4096, 16384, 65536, 2 * 1024 * 1024)
    assert 0 <= info["huge_pages_bytes"] <= a.nbytes
    assert 0.0 <= info["huge_page_fraction"] <= 1.0
    assert info["thp_mode"] in ("always", "madvise", "never", "")


def test_cache_sizes_parses_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"),
                                                 (2, "Unified", "1024K"), (3, "Unified", "32M")]):
        d = tmp_path / f"index{index}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert stream.cache_sizes(tmp_path) == {"L1": 49152, "L2": 1048576, "L3": 33554432}


def test_cache_capacity_adds_private_caches(tmp_path):
    """Two cores: private L1 and L2 each, one shared L3."""
    for cpu in (0, 1):
        for index, (level, kind, size, shared) in enumerate([(1, "Data", "48K", str(cpu)),
                                                             (1, "Instruction", "32K", str(cpu)),
                                                             (2, "Unified", "1024K", str(cpu)),
                                                             (3, "Unified", "32768K", "0-1")]):
            d = tmp_path / f"cpu{cpu}" / "cache" / f"index{index}"
            d.mkdir(parents=True)
            for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
                (d / name).write_text(f"{value}\n")
    mib = 1024 * 1024
    assert stream.cache_capacity([0], tmp_path) == {"L1": 48 * 1024, "L2": mib, "L3": 32 * mib}
    assert stream.cache_capacity([0, 1], tmp_path) == {"L1": 96 * 1024, "L2": 2 * mib, "L3": 32 * mib}
    assert stream.cache_capacity(None, tmp_path) == stream.cache_capacity([0, 1], tmp_path)


def test_cache_sizes_here():
    sizes = sweep.cache_sizes()
    if not sizes:
        pytest.skip("no cache information in /sys")
    assert list(sizes) == sorted(sizes) and all(v > 0 for v in sizes.values())


# ---------------------------------------------------------------- sweep

@pytest.mark.parametrize("op", sweep.SWEEP_OPS)
@pytest.mark.parametrize("threads", [1, 2])
def test_sweep_check_passes(op, threads):
    if threads > numba_threads_available():
        pytest.skip("Numba started with one thread")
    work = sweep.sweep({"op": op, "kbytes": 12.0}, ctx(threads))
    work.fn()
    work.check()
    info = work.info
    assert info["working_set_bytes"] <= 12 * 1024
    assert work.bytes == info["bytes_per_repeat"] * info["repeats"]
    assert work.bytes >= sweep.SWEEP_CALL_BYTES_PER_THREAD * threads  # one call >= ~50 us
    ratio = {"read": 1.0, "write": 2.0, "triad": 4 / 3}[op]
    assert math.isclose(info["bytes_hw"] / work.bytes, ratio)


@pytest.mark.parametrize("op", sweep.SWEEP_OPS)
def test_sweep_check_fails_when_kernel_skipped(monkeypatch, op):
    real = sweep.numba_sweep_kernels
    monkeypatch.setattr(sweep, "numba_sweep_kernels", lambda: {**real(), op: noop})
    work = sweep.sweep({"op": op, "kbytes": 12.0}, ctx())
    work.fn()
    with pytest.raises(AssertionError):
        work.check()


def test_sweep_large_size_runs_once_per_call():
    assert sweep.sweep_repeats(400e6, 1) == 1
    assert sweep.sweep_repeats(4096, 1) == math.ceil(sweep.SWEEP_CALL_BYTES_PER_THREAD / 4096)
    assert sweep.sweep_repeats(4096, 2) == math.ceil(2 * sweep.SWEEP_CALL_BYTES_PER_THREAD / 4096)


def test_sweep_sizes_bounds_and_density():
    llc = 32 * 1024 * 1024
    sizes = sweep.sweep_sizes(llc)
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
    sizes = sweep.sweep_sizes(3 * 1024 * 1024, points_per_doubling=8, start=8192, factor=2)
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
    sizes = np.array(sweep.sweep_sizes(CACHES["L3"]), dtype=float)
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
    found = sweep.detect_plateaus(sizes, bw, CACHES)
    check_found(found, [("L1", 430), ("L2", 180), ("L3", 110), ("DRAM", 30)])
    l3 = found[2]
    assert l3["first_bytes"] >= 1024 * 1024 and l3["last_bytes"] <= 20 * 1024**2


@pytest.mark.parametrize("seed", range(4))
def test_detect_plateaus_missing_level(seed):
    """A machine whose L3 brings nothing (or a curve that skips it): no L3 invented."""
    levels = [(40 * 1024, 430), (800 * 1024, 180), (None, 30)]
    sizes, bw = synthetic_curve(levels, 0.03, seed)
    found = sweep.detect_plateaus(sizes, bw, CACHES)
    check_found(found, [("L1", 430), ("L2", 180), ("DRAM", 30)])


def test_detect_plateaus_order_and_outlier():
    levels = [(40 * 1024, 430), (800 * 1024, 180), (16 * 1024**2, 110), (None, 30)]
    sizes, bw = synthetic_curve(levels, 0.02, 0)
    bw[30] *= 0.5  # one disturbed point inside the L3 plateau
    order = np.random.default_rng(1).permutation(sizes.size)
    found = sweep.detect_plateaus(sizes[order], bw[order], CACHES)
    check_found(found, [("L1", 430), ("L2", 180), ("L3", 110), ("DRAM", 30)])


def test_detect_plateaus_close_levels():
    """L1 and L2 only 15% apart, as a write sweep can show: still two levels."""
    levels = [(40 * 1024, 230), (800 * 1024, 200), (16 * 1024**2, 110), (None, 30)]
    for seed in range(4):
        sizes, bw = synthetic_curve(levels, 0.02, seed)
        check_found(sweep.detect_plateaus(sizes, bw, CACHES),
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
    found = sweep.detect_plateaus(sizes, bw, CACHES)
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
    sizes = sweep.sweep_sizes(CACHES["L3"])
    found = sweep.detect_plateaus(sizes, np.array(MEASURED_READ_GBS) * GB, CACHES)
    assert [p["level"] for p in found] == ["L1", "L2", "L3", "DRAM"]
    for p, (low, high) in zip(found, [(400, 440), (160, 175), (100, 112), (37, 42)]):
        assert low <= p["median_gbs"] <= high, p


def test_detect_plateaus_degenerate():
    assert sweep.detect_plateaus([4096, 8192], [1e11, 1e11], CACHES) == []
    flat = sweep.detect_plateaus(sweep.sweep_sizes(CACHES["L3"]), [2e10] * 65, CACHES)
    assert [p["level"] for p in flat] == ["DRAM"]


# ---------------------------------------------------------------- kinds

def test_kinds_resolve():
    kinds = {k.name: k for k in stream.KINDS + sweep.KINDS}
    params, problems = kinds["probe.stream"].resolve_params({"impl": "numpy", "op": "add"})
    assert not problems and params["mbytes"] == 0.0
    _, problems = kinds["probe.stream"].resolve_params({"op": "fma"})
    assert problems
    params, problems = kinds["probe.sweep"].resolve_params({"op": "triad", "kbytes": 6.7})
    assert not problems
    _, problems = kinds["probe.sweep"].resolve_params({"op": "read"})
    assert problems  # kbytes is required
    for kind in kinds.values():
        assert callable(kind.load_factory())


@pytest.mark.parametrize("op", ["read", "triad"])
def test_sweep_check_fails_when_one_repeat_is_skipped(monkeypatch, op):
    real = sweep.numba_sweep_kernels
    kernels = real()

    def one_short(*args):
        args = list(args)
        index = 1 if op == "read" else 4  # the `repeats` argument
        args[index] -= 1
        return kernels[op](*args)

    monkeypatch.setattr(sweep, "numba_sweep_kernels", lambda: {**kernels, op: one_short})
    work = sweep.sweep({"op": op, "kbytes": 12.0}, ctx())
    with pytest.raises(AssertionError):
        work.check()
