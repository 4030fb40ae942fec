"""STREAM and working-set sweep probes: results checked, bytes counted the STREAM way,
sizes chosen by the rules, plateaus found. Correctness only, never speed."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from harness.core.workload import Context
from kernels import stream, sweep

TINY_MB = 0.01  # 1250 elements per array: checks the arithmetic, not the bandwidth
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


@pytest.mark.parametrize("op", ["read", "write", "triad"])
def test_sweep_check_fails_when_one_repeat_is_skipped(monkeypatch, op):
    real = sweep.numba_sweep_kernels
    kernels = real()

    def one_short(*args):
        args = list(args)
        index = 4 if op == "triad" else 1  # the `repeats` argument
        args[index] -= 1
        return kernels[op](*args)

    monkeypatch.setattr(sweep, "numba_sweep_kernels", lambda: {**kernels, op: one_short})
    work = sweep.sweep({"op": op, "kbytes": 12.0}, ctx())
    with pytest.raises(AssertionError):
        work.check()


# ---------------------------------------------------------------- the read's vector kernel

READ_SIZES = [16, 47, 48, 49, 63, 64, 65, 127, 128, 129, 191, 200, 609, 1000, 2048, 4099]


@pytest.mark.parametrize("n", READ_SIZES)
@pytest.mark.parametrize("threads", [1, 2])
def test_sweep_read_kernel_sums_exactly(n, threads):
    """Both halves, the pairs of vectors after them and the scalar tail: every element counted
    once per repeat, whatever the block size (no halves, halves only, each remainder; odd
    last blocks), and each repeat counted."""
    if threads > numba_threads_available():
        pytest.skip("Numba started with one thread")
    stream.set_numba_threads(threads)
    rng = np.random.default_rng(n)
    a = stream.aligned_empty(n, 4096)
    a[:] = rng.integers(-1000, 1000, n)  # small integers: exact in any summation order
    bounds = stream.thread_blocks(n, threads)
    partial = np.zeros(threads)
    for repeats in (1, 2, 7):
        sweep.numba_sweep_kernels()["read"](a, repeats, bounds, partial)
        for t in range(threads):
            assert partial[t] == repeats * a[bounds[t]:bounds[t + 1]].sum()


def test_sweep_read_check_fails_when_one_element_is_skipped(monkeypatch):
    """A read that drops the last element of each block (the scalar tail) must not pass."""
    kernels = sweep.numba_sweep_kernels()

    def all_but_last(a, repeats, bounds, partial):
        for t in range(bounds.size - 1):
            partial[t] = repeats * a[bounds[t]:bounds[t + 1] - 1].sum()

    monkeypatch.setattr(sweep, "numba_sweep_kernels", lambda: {**kernels, "read": all_but_last})
    work = sweep.sweep({"op": "read", "kbytes": 12.25}, ctx())
    with pytest.raises(AssertionError):
        work.check()


def test_read_vector_shape_follows_the_register_file():
    feats = sweep.target_features("+avx,+avx2,+fma,+avx512f,-avx512f")
    assert feats["avx2"] and not feats["avx512f"]  # the later entry wins
    assert sweep.read_vector_shape(feats) == (4, 12)  # 12 ymm of 16
    assert sweep.read_vector_shape(sweep.target_features("+avx2,+avx512f")) == (8, 16)  # 16 zmm of 32
    assert sweep.read_vector_shape(sweep.target_features("")) == (2, 12)  # SSE2: 12 xmm of 16
    assert sweep.read_vector_shape({}, "aarch64") == (2, 16)  # NEON: 32 registers
    work = sweep.sweep({"op": "read", "kbytes": 16}, ctx())
    shape = work.info["read_vectors"]
    assert (shape["lanes"], shape["accumulators"]) == sweep.read_vector


@pytest.mark.parametrize("cpu,features,lanes", [
    ("haswell", "+64bit,+avx,+avx2,+fma,+sse4.2,+popcnt,+cx16,-avx512f", 4),
    ("x86-64", "+64bit,+sse,+sse2,+cx8,+fxsr,+mmx", 2),
])
def test_sweep_kernels_exact_with_narrower_vectors(tmp_path, cpu, features, lanes):
    """The AVX2 (ymm) and SSE2 (xmm) builds of the read and triad vector kernels, compiled
    in a fresh process as a worker with NUMBA_CPU_FEATURES would, are exact too."""
    if os.uname().machine != "x86_64":
        pytest.skip("x86 feature sets")
    code = (f"import numpy as np\nfrom kernels import stream, sweep\nfrom harness.core.workload import Context\n"
            f"k = sweep.numba_sweep_kernels()\n"
            f"assert sweep.read_vector[0] == {lanes}, sweep.read_vector\n"
            f"for n in {READ_SIZES}:\n"
            "    a = stream.aligned_empty(n, 4096); a[:] = np.arange(n) % 8 + 1\n"
            "    bounds = stream.thread_blocks(n, 1); partial = np.zeros(1)\n"
            "    for repeats in (1, 3):\n"
            "        k['read'](a, repeats, bounds, partial)\n"
            "        assert partial[0] == repeats * a.sum(), (n, repeats, partial[0])\n"
            "for op in sweep.SWEEP_OPS:\n"
            "    for kbytes in (1.3, 4.76, 12.25):\n"
            "        w = sweep.sweep({'op': op, 'kbytes': kbytes}, Context('t', 1, [0])); w.fn(); w.check()\n"
            "print('ok')\n")
    env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": features,
           "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_NUM_THREADS": "1"}
    env.pop(sweep.WIDE_VECTORS_ENV, None)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


# ---------------------------------------------------------------- 512-bit vectors for the worker

def test_sweep_worker_env_asks_for_wide_vectors_on_avx512(monkeypatch):
    monkeypatch.delenv("NUMBA_CPU_FEATURES", raising=False)
    monkeypatch.setattr(sweep.system, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})
    assert sweep.worker_env({}) == {sweep.WIDE_VECTORS_ENV: "1"}
    monkeypatch.setattr(sweep.system, "cpu_flags", lambda: {"avx2", "fma"})
    assert sweep.worker_env({}) == {}
    # A NUMBA_CPU_FEATURES of the user's (an AVX2-only build) wins.
    monkeypatch.setattr(sweep.system, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2")
    assert sweep.worker_env({}) == {}


def test_sweep_kind_carries_the_worker_env(monkeypatch):
    from harness.core import registry
    from harness.core.suite import parse_suite

    monkeypatch.delenv("NUMBA_CPU_FEATURES", raising=False)
    monkeypatch.setattr(sweep.system, "cpu_flags", lambda: {"avx512f"})
    assert registry.get("probe.sweep").env is sweep.worker_env
    suite = parse_suite({"cases": [{"kind": "probe.sweep", "params": {"op": "read", "kbytes": 16}}]},
                        "s.yaml", allowed=[0])
    assert suite.cases[0].env == {sweep.WIDE_VECTORS_ENV: "1"}


def test_sweep_wide_vectors_leave_a_started_numba_alone(monkeypatch):
    import numba  # noqa: F401  (started: too late to change its target)

    monkeypatch.delenv("NUMBA_CPU_FEATURES", raising=False)
    monkeypatch.setenv(sweep.WIDE_VECTORS_ENV, "1")
    assert "already started" in sweep.numba_wide_vectors()
    assert "NUMBA_CPU_FEATURES" not in os.environ
    monkeypatch.delenv(sweep.WIDE_VECTORS_ENV)
    assert sweep.numba_wide_vectors() == "host"
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2")
    assert sweep.numba_wide_vectors() == "NUMBA_CPU_FEATURES from the environment"


def test_sweep_wide_vectors_set_numba_features_before_it_starts():
    """In a fresh process (as a worker): the host's features plus -prefer-256-bit reach Numba."""
    if os.uname().machine != "x86_64":
        pytest.skip("prefer-256-bit is an x86 tuning flag")
    code = ("from kernels import sweep; import os; target = sweep.numba_wide_vectors(); import numba; "
            "print(target); print(numba.config.CPU_FEATURES == os.environ['NUMBA_CPU_FEATURES']); "
            "print(numba.config.CPU_FEATURES.endswith(',-prefer-256-bit'))")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    env[sweep.WIDE_VECTORS_ENV] = "1"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    target, same, off = done.stdout.split("\n")[:3]
    assert "-prefer-256-bit" in target and same == "True" and off == "True"
