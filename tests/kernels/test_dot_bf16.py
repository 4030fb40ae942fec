"""The bf16 dot-product peak probe: the instruction it runs, and an exact result check."""
import pytest

from harness.core.workload import Context, Skip
from kernels import dot_bf16, jit

HAS_BF16 = bool(jit.host_features().get("avx512bf16"))
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="this CPU has no AVX512-BF16")


@needs_bf16
def test_the_kernel_is_vdpbf16ps_on_zmm_registers():
    lines = [line.strip() for line in dot_bf16.assembly().splitlines()]
    dots = [line for line in lines if line.startswith("vdpbf16ps")]
    assert len(dots) == dot_bf16.ACCUMULATORS
    assert all("%zmm" in line for line in dots)


@needs_bf16
@pytest.mark.parametrize("threads", [1, 2])
def test_every_step_is_checked_exactly(threads):
    w = dot_bf16.bf16_dot({"iterations": 1000}, Context("t", threads, [0, 1][:threads]))
    try:
        w.fn()
        w.check()
        assert w.flops == threads * 1000 * 16 * 64
        run = w.fn.__self__  # PinnedThreads
        assert run.affinity == [[cpu] for cpu in [0, 1][:threads]]
    finally:
        w.teardown()


@needs_bf16
def test_a_skipped_step_fails_the_check():
    run = dot_bf16.DotRun(10)
    run()
    run.check()
    run.out[5] -= run.b  # as if one step of one chain had not run
    with pytest.raises(AssertionError, match="bf16 dot chain 5"):
        run.check()


def test_without_avx512_bf16_the_probe_is_a_skip(monkeypatch):
    monkeypatch.setattr(dot_bf16, "host_features", lambda: {})
    monkeypatch.setattr(dot_bf16, "_compiled", None)
    with pytest.raises(Skip, match="AVX512-BF16"):
        dot_bf16.bf16_dot({"iterations": 1}, Context("t", 1, [0]))
