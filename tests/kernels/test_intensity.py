"""The ERT-style intensity probe: tunable FLOPs per byte, checked and counted."""
import numpy as np
import pytest

from harness.core.workload import Context
from kernels import intensity as ik  # no numba import at module level


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
