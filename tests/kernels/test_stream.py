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
    monkeypatch.setattr(stream.system, "llc_total_bytes", lambda: 1024 * 1024)
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
