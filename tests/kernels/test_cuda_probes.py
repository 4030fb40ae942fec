"""CUDA probes: the kinds skip cleanly without a GPU; the kernels' logic runs under
numba's CUDA simulator in a subprocess (NUMBA_ENABLE_CUDASIM must be set before numba
is imported, so it cannot be switched on inside this process); and, where a GPU
exists, each kind runs at a small size and passes its own check."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.workload import Context, Skip
from kernels import cuda_probes

ROOT = Path(__file__).resolve().parents[2]
CTX = Context("cuda-probe-test", 1, [0])

# one case per code path that reaches a GPU check
CASES = [
    ("probe.cuda_fma", {}),
    ("probe.cuda_fma", {"dtype": "float16"}),
    ("probe.cuda_copy", {}),
    ("probe.cuda_copy", {"impl": "torch"}),
    ("probe.cuda_gemm", {}),
    ("probe.cuda_gemm", {"dtype": "tf32"}),
]
SMALL = {"probe.cuda_fma": {"iterations": 64}, "probe.cuda_copy": {"mbytes": 1.0},
         "probe.cuda_gemm": {"n": 256}}


def _kind(name):
    return next(k for k in cuda_probes.KINDS if k.name == name)


def _gpu_present() -> bool:
    import torch
    from numba import cuda

    return torch.cuda.is_available() or (cuda.is_available() and not os.environ.get("NUMBA_ENABLE_CUDASIM"))


def test_import_starts_neither_numba_nor_torch():
    code = ("import sys, kernels.cuda_probes; "
            "assert not {'numba', 'torch'} & set(sys.modules), sorted({'numba', 'torch'} & set(sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_kinds_resolve_defaults():
    assert [k.name for k in cuda_probes.KINDS] == ["probe.cuda_fma", "probe.cuda_copy", "probe.cuda_gemm"]
    for name, given in CASES:
        _, problems = _kind(name).resolve_params(given)
        assert not problems, (name, problems)


@pytest.mark.parametrize("name,given", CASES)
def test_factories_skip_without_gpu(name, given):
    if _gpu_present():
        pytest.skip("a CUDA GPU is present")
    kind = _kind(name)
    params, _ = kind.resolve_params(given)
    with pytest.raises(Skip, match=r"^no CUDA GPU: \S"):
        kind.load_factory()(params, CTX)


def test_kernels_under_cuda_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/kernels/cudasim_kernels.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1]


@pytest.mark.parametrize("name,given", CASES)
def test_factories_on_gpu(name, given):
    if not _gpu_present():
        pytest.skip("no CUDA GPU")
    kind = _kind(name)
    params, problems = kind.resolve_params({**given, **SMALL[name]})
    assert not problems
    try:
        work = kind.load_factory()(params, CTX)
    except Skip as exc:
        # With a GPU present, the one tolerated reason is numba without the CUDA toolkit's
        # libNVVM (torch's kinds still run then); any other skip hides a broken probe.
        if "libNVVM" not in str(exc):
            raise AssertionError(f"{name} skipped on a machine with a GPU: {exc}") from None
        pytest.skip(str(exc))
    try:
        assert work.device_timer is not None
        assert work.device_timer(work.fn, 3) > 0
        work.check()
    finally:
        if work.teardown:
            work.teardown()


def test_kernels_compile_to_register_only_ptx():
    """Needs only libNVVM (a CUDA toolkit, e.g. CUDA_HOME=...), not a GPU: the FMA chains
    become real fma instructions on registers for sm_90, with no local-memory spills."""
    from numba import config, cuda, types
    from numba.cuda.cudadrv import nvvm

    if config.ENABLE_CUDASIM or not nvvm.is_available():
        pytest.skip("libNVVM not found (set CUDA_HOME to a CUDA toolkit to run this)")
    vector = lambda t: types.Array(t, 1, "C")  # noqa: E731
    for dtype, t, op in (("float32", types.float32, "fma.rn.f32"), ("float16", types.float16, "fma.rn.f16")):
        kernel = cuda_probes.fma_kernel(dtype, 8)
        ptx, _ = cuda.compile_ptx(kernel.py_func, (vector(t), vector(t), types.int64, vector(t)), cc=(9, 0))
        assert ptx.count(op) >= 8 and ".local" not in ptx, dtype
    ptx, _ = cuda.compile_ptx(cuda_probes.copy_kernel().py_func, (vector(types.uint32),) * 2, cc=(9, 0))
    assert "ld.global" in ptx and "st.global" in ptx
