"""Small workloads: a NumPy GEMM, the copy-on-write page-fault demonstration, and
diagnostic kinds (empty, sleep, crash, hang, allocate) that exercise the runner itself."""
from __future__ import annotations

import mmap
import os
import time

import numpy as np

from harness.core.registry import Kind, Param
from harness.core.workload import Context, Workload, prefault

DTYPES = ("float32", "float64")


def numpy_matmul(params: dict, ctx: Context) -> Workload:
    n, dtype = params["n"], np.dtype(params["dtype"])
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    prefault(c)

    def fn():
        np.matmul(a, b, out=c)

    def check():
        rows = rng.integers(0, n, 4)
        expect = a[rows].astype(np.float64) @ b.astype(np.float64)
        tol = 1e-3 if dtype == np.float32 else 1e-9
        if not np.allclose(c[rows], expect, rtol=tol, atol=tol * np.sqrt(n)):
            raise AssertionError("matmul result differs from a float64 reference")

    return Workload(
        fn=fn,
        flops=2.0 * n**3,
        bytes=3.0 * n * n * dtype.itemsize,
        check=check,
        info={"n": n, "dtype": dtype.name, "bytes_accounting": "A + B + C once each"},
    )


def page_fault_demo(params: dict, ctx: Context) -> Workload:
    """The first source document's copy-on-write point: writing into memory fresh from
    the OS takes one minor fault per page; writing into a pooled, pre-touched buffer takes none.

    `fresh` maps a new anonymous region for every call (what an allocator that hands
    large blocks back to the OS does) and unmaps it after; `pool` reuses one buffer.
    """
    nbytes = int(params["mbytes"] * 1e6) // 8 * 8
    a = np.full(nbytes // 8, 1.5)
    b = np.full(nbytes // 8, 2.0)
    pool = np.empty_like(a)
    prefault(pool)
    fresh_calls = {"n": 0, "wrong": 0}

    def fresh_multiply():
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        fresh = np.frombuffer(region, dtype=np.float64)
        np.multiply(a, b, out=fresh)
        ok = bool(fresh[:: 4096 // 8].min() == 3.0)  # reads one value per page, not the whole buffer
        del fresh
        region.close()
        return ok

    if params["mode"] == "pool":
        def fn():
            np.multiply(a, b, out=pool)

        def check():
            if not np.all(pool == 3.0):
                raise AssertionError("a * b != 3.0 in the pooled buffer")
    else:
        def fn():
            fresh_calls["n"] += 1
            fresh_calls["wrong"] += not fresh_multiply()

        def check():
            if fresh_calls["n"] == 0 or fresh_calls["wrong"]:
                raise AssertionError("a * b != 3.0 in a fresh buffer")

    return Workload(
        fn=fn,
        flops=float(nbytes // 8),
        bytes=3.0 * nbytes,
        check=check,
        info={"mode": params["mode"], "buffer_bytes": nbytes, "pages_4k": nbytes // 4096,
              "bytes_accounting": "two inputs read + one output written"},
    )


def empty(params: dict, ctx: Context) -> Workload:
    return Workload(fn=lambda: None, info={"what": "empty callable: timer and call overhead"})


def sleep(params: dict, ctx: Context) -> Workload:
    seconds = params["seconds"]
    return Workload(fn=lambda: time.sleep(seconds))


def crash(params: dict, ctx: Context) -> Workload:
    if params["how"] == "exception":
        def fn():
            raise RuntimeError("diagnostic.crash raised on purpose")
    else:
        def fn():
            os.abort()  # a hard crash (SIGABRT), as a segfaulting extension would die
    return Workload(fn=fn)


def hang(params: dict, ctx: Context) -> Workload:
    def fn():
        while True:
            time.sleep(1)
    return Workload(fn=fn)


def allocate(params: dict, ctx: Context) -> Workload:
    size = int(params["gbytes"] * 1e9)

    def fn():
        block = bytearray(size)  # zero-filled, so every page is touched
        del block
    return Workload(fn=fn)


def noisy(params: dict, ctx: Context) -> Workload:
    """Calls that alternate between `seconds` and `spread` + 1 times as long: a measurement
    whose noise passes any sane limit, for testing what the harness does with one."""
    calls = [0]

    def fn():
        calls[0] += 1
        time.sleep(params["seconds"] * (1 + params["spread"] * (calls[0] % 2)))
    return Workload(fn=fn)


# Past these a value is a typo, not a plan: one array of 100 GB, one call of an hour.
MAX_MBYTES = 100_000.0
MAX_SLEEP_S = 3600.0


def matmul_memory(params: dict, threads: int) -> float:
    """A, B and C, and the check's float64 copy of B."""
    n = params["n"]
    return 3 * n * n * np.dtype(params["dtype"]).itemsize + 8 * n * n


def page_fault_memory(params: dict, threads: int) -> float:
    """a, b, the pool and one fresh mapping."""
    return 4 * params["mbytes"] * 1e6


KINDS = [
    Kind("numpy.matmul", "kernels.basic:numpy_matmul",
         {"n": Param(int, min=1, max=65536, help="square matrix size"),
          "dtype": Param(str, "float32", choices=DTYPES)},
         "C = A @ B with NumPy's BLAS into a preallocated C", memory=matmul_memory),
    Kind("probe.gemm", "kernels.basic:numpy_matmul",
         {"n": Param(int, 1024, min=256, max=65536, help="square matrix size (intensity n/6 FLOP/B in fp32)"),
          "dtype": Param(str, "float32", choices=DTYPES)},
         "BLAS GEMM as a compute ceiling: C = A @ B with NumPy's BLAS at a size far past the ridge "
         "(a measurement below 4x the ridge intensity is kept but not used as a ceiling)", memory=matmul_memory),
    Kind("memory.page_faults", "kernels.basic:page_fault_demo",
         {"mbytes": Param(float, 12.8, min=0.01, max=MAX_MBYTES, help="output size in MB (1e6 B)"),
          "mode": Param(str, "pool", choices=("fresh", "pool"))},
         "c = a * b into fresh OS pages each call (fresh) or one pre-touched buffer (pool)",
         memory=page_fault_memory),
    Kind("diagnostic.empty", "kernels.basic:empty", {}, "an empty callable: timer overhead"),
    Kind("diagnostic.sleep", "kernels.basic:sleep",
         {"seconds": Param(float, 0.001, min=0, max=MAX_SLEEP_S)}, "time.sleep"),
    Kind("diagnostic.crash", "kernels.basic:crash",
         {"how": Param(str, "abort", choices=("abort", "exception"))}, "a case that crashes"),
    Kind("diagnostic.hang", "kernels.basic:hang", {}, "a case that never returns"),
    Kind("diagnostic.noisy", "kernels.basic:noisy",
         {"seconds": Param(float, 0.001, min=0, max=MAX_SLEEP_S), "spread": Param(float, 2.0, min=0, max=1000.0)},
         "calls that alternate between two durations: a deliberately noisy measurement"),
    Kind("diagnostic.allocate", "kernels.basic:allocate",
         {"gbytes": Param(float, min=0, max=MAX_MBYTES / 1000)}, "allocates and frees a block each call"),
]
