"""Kernel logic of kernels/cuda_probes.py under numba's CUDA simulator.

Run by tests/test_cuda_probes.py in a subprocess with NUMBA_ENABLE_CUDASIM=1, which
numba reads when it is first imported. Not collected by a plain `pytest` run (the
name does not match test_*.py); run alone without the variable, it skips.
"""
import os
import warnings

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 set before numba is imported", allow_module_level=True)

from numba import config  # noqa: E402

from harness.core.workload import Context, Skip  # noqa: E402
from kernels import cuda_probes  # noqa: E402

assert config.ENABLE_CUDASIM


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("iterations", [0, 1, 4, 40])
def test_fma_matches_closed_form(dtype, iterations):
    accumulators = 4
    out = cuda_probes.run_fma(dtype, blocks=2, threads=8, iterations=iterations, accumulators=accumulators)
    assert out.dtype == np.dtype(dtype) and out.shape == (16,)
    expect = cuda_probes.fma_expected(iterations, accumulators)
    # every thread wrote (no NaN left) and every chain took every step: exact equality
    assert (out.astype(np.float64) == expect).all()
    if iterations:  # one step fewer gives a different result: a skipped step cannot pass
        assert (out.astype(np.float64) != cuda_probes.fma_expected(iterations - 1, accumulators)).all()


def test_fma_closed_form_values():
    # chains start at 1 and 2 units of 2^-10 and gain one unit per step
    unit = 2.0 ** -10
    assert cuda_probes.fma_expected(1, 2) == (2 + 3) * unit
    assert cuda_probes.fma_expected(0, 3) == 6 * unit
    assert cuda_probes.fma_expected(200, 3) == (201 + 202 + 203) * unit
    assert cuda_probes.fma_max_iterations("float16", 8) == 2048 // 8 - 9


def test_fma_kernel_has_one_chain_per_accumulator():
    kernel = cuda_probes.fma_kernel("float32", 3)
    assert kernel is cuda_probes.fma_kernel("float32", 3)  # built once
    out = cuda_probes.run_fma("float32", blocks=1, threads=4, iterations=2, accumulators=3)
    assert (out.astype(np.float64) == cuda_probes.fma_expected(2, 3)).all()
    with pytest.raises(ValueError):
        cuda_probes.fma_kernel("float64", 3)


@pytest.mark.parametrize("n", [1, 15, 16, 1000])
def test_copy_is_exact(n):
    # sizes below, at and above the 2 x 8 grid, so the grid-stride loop wraps
    src = np.random.default_rng(n).integers(0, 2**32, n, dtype=np.uint32)
    assert np.array_equal(cuda_probes.run_copy(src, blocks=2, threads=8), src)


def test_copy_other_dtype():
    src = np.linspace(-1, 1, 37, dtype=np.float32)
    assert np.array_equal(cuda_probes.run_copy(src, blocks=2, threads=8), src)


def test_numba_event_timer_calls_fn_number_times():
    from numba import cuda

    calls = []
    timer = cuda_probes.numba_event_timer(cuda)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Simulator timings are bogus"
        seconds = timer(lambda: calls.append(1), 5)
    assert len(calls) == 5 and seconds >= 0.0


@pytest.mark.parametrize("kind", ["probe.cuda_fma", "probe.cuda_copy"])
def test_numba_factories_refuse_the_simulator(kind):
    spec = next(k for k in cuda_probes.KINDS if k.name == kind)
    params, problems = spec.resolve_params({})
    assert not problems
    with pytest.raises(Skip, match="no CUDA GPU: the numba CUDA simulator"):
        spec.load_factory()(params, Context("c", 1, [0]))
