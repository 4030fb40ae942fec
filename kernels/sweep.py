"""Working-set sweep: bandwidth of read, write and triad from 4 KiB to past the last-level
cache, and the cache plateaus found in the curve.

One case is one working-set size (the total of all arrays the op touches). Each thread owns
one block (the static schedule of kernels/stream.py) and repeats the kernel over it inside
one parallel region: small working sets stay in that thread's L1/L2 across repeats, and the
parallel-region start is paid once per call, not once per repeat.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

from harness.core import system
from harness.core.registry import Kind, Param
from harness.core.workload import Context, Skip, Workload
from kernels.stream import HUGE_PAGE, STREAM_SCALAR, aligned_empty, set_numba_threads, thread_blocks

SWEEP_OPS = ("read", "write", "triad")
SWEEP_ARRAYS = {"read": 1, "write": 1, "triad": 3}
# Bytes each call moves per thread: 50 us at 1 TB/s, above one core's L1 bandwidth today
# (0.44-0.49 TB/s read here), so every call lasts >= ~50 us and the timer and the
# parallel-region start stay small beside it.
SWEEP_CALL_BYTES_PER_THREAD = 50e6
WRITE_VALUE = 1.25

numba = None  # imported on first use, inside the worker (see numba_sweep_kernels)

def sweep_repeats(bytes_per_repeat: float, threads: int) -> int:
    """Kernel repeats inside one call so that one call moves SWEEP_CALL_BYTES_PER_THREAD per thread."""
    return max(1, math.ceil(SWEEP_CALL_BYTES_PER_THREAD * threads / bytes_per_repeat))


@functools.cache
def numba_sweep_kernels() -> dict:
    """read, write, triad over `thread_blocks`, `repeats` times per call, plus "init" (first touch)."""
    global numba
    import numba

    # Threads slice their block so the loop index starts at 0 (see kernels/stream.py: it
    # lets LLVM vectorise). fastmath lets LLVM split the sum into vector partial sums
    # (4 registers x 8 lanes with AVX-512), so the read is bound by loads, not by the add
    # latency. Each repeat sums from zero: starting from the running total instead chains
    # every repeat behind the previous one's horizontal reduction, 35% slower on a 4 KiB
    # block. (Time grows linearly with repeats: the compiler does not reuse one sum.)
    @numba.njit(parallel=True, fastmath=True, cache=True)
    def sweep_read(a, repeats, bounds, partial):
        for t in numba.prange(bounds.size - 1):
            block = a[bounds[t]:bounds[t + 1]]
            total = 0.0
            for r in range(repeats):
                acc = 0.0
                for i in range(block.size):
                    acc += block[i]
                total += acc
            partial[t] = total

    # A different value each repeat, so no repeat is a dead store of the one before.
    @numba.njit(parallel=True, cache=True)
    def sweep_write(a, repeats, bounds, value):
        for t in numba.prange(bounds.size - 1):
            block = a[bounds[t]:bounds[t + 1]]
            for r in range(repeats):
                v = value + r
                for i in range(block.size):
                    block[i] = v

    # Repeats alternate a = b + s*c and b = a + s*c: each repeat reads what the one before
    # wrote, so none can be skipped, and the result counts them (+ s*c per repeat).
    @numba.njit(parallel=True, cache=True)
    def sweep_triad(a, b, c, scalar, repeats, bounds):
        for t in numba.prange(bounds.size - 1):
            lo, hi = bounds[t], bounds[t + 1]
            aa, bb, cc = a[lo:hi], b[lo:hi], c[lo:hi]
            for r in range(repeats):
                if r % 2 == 0:
                    for i in range(aa.size):
                        aa[i] = bb[i] + scalar * cc[i]
                else:
                    for i in range(aa.size):
                        bb[i] = aa[i] + scalar * cc[i]

    @numba.njit(parallel=True, cache=True)
    def sweep_init(a, bounds, start, modulo):
        for t in numba.prange(bounds.size - 1):
            lo, hi = bounds[t], bounds[t + 1]
            block = a[lo:hi]
            for i in range(block.size):
                block[i] = start + (lo + i) % modulo

    return {"read": sweep_read, "write": sweep_write, "triad": sweep_triad, "init": sweep_init}


def sweep(params: dict, ctx: Context) -> Workload:
    """probe.sweep: one op at one working-set size, all ctx.threads threads."""
    op = params["op"]
    threads = max(1, ctx.threads)
    total_bytes = int(round(params["kbytes"] * 1024))
    narrays = SWEEP_ARRAYS[op]
    n = total_bytes // (8 * narrays)
    if n < 8 * threads:
        raise Skip(f"{total_bytes} B leaves fewer than one 64-byte line per thread per array")

    kernels = numba_sweep_kernels()
    set_numba_threads(threads)
    bounds = thread_blocks(n, threads)
    align = HUGE_PAGE if n * 8 >= HUGE_PAGE else 4096
    # Distinct offsets per array: no 4K aliasing between them (see aligned_empty).
    arrays = [aligned_empty(n, align, offset=k * 64) for k in range(narrays)]
    app_per_repeat = narrays * 8 * n
    repeats = sweep_repeats(app_per_repeat, threads)
    # Small exact values: the read's sum is exact in float64 whatever the summation order.
    for k, arr in enumerate(arrays):
        kernels["init"](arr, bounds, float(k + 1), 8 if op == "read" else 1)

    if op == "read":
        a = arrays[0]
        partial = np.zeros(threads)
        expected_sum = repeats * float(a.sum())
        kernel = kernels["read"]

        def fn():
            kernel(a, repeats, bounds, partial)

        def check():
            partial[:] = 0.0
            fn()
            got = float(partial.sum())
            if got != expected_sum:
                raise AssertionError(f"sweep read: sum {got!r}, expected {expected_sum!r}")

        hw_per_repeat = app_per_repeat
    elif op == "write":
        a = arrays[0]
        kernel = kernels["write"]
        final = WRITE_VALUE + repeats - 1

        def fn():
            kernel(a, repeats, bounds, WRITE_VALUE)

        def check():
            a.fill(np.nan)
            fn()
            bad = np.flatnonzero(a != final)
            if bad.size:
                raise AssertionError(f"sweep write: a[{bad[0]}] = {a[bad[0]]!r}, expected {final!r}")

        hw_per_repeat = 2 * app_per_repeat  # write-allocate reads each line before the store
    else:
        a, b, c = arrays  # start values 1, 2, 3
        kernel = kernels["triad"]
        step = STREAM_SCALAR * 3.0
        # From b = 2, repeat r writes 2 + (r + 1) * step into a (r even) or b (r odd).
        last, before = 2.0 + repeats * step, 2.0 + (repeats - 1) * step
        want_a, want_b = (last, before) if repeats % 2 else (before, last)

        def fn():
            kernel(a, b, c, STREAM_SCALAR, repeats, bounds)

        def check():
            a.fill(np.nan)
            b.fill(2.0)
            fn()
            for name, arr, want in (("a", a, want_a), ("b", b, want_b), ("c", c, 3.0)):
                bad = np.flatnonzero(arr != want)
                if bad.size:
                    raise AssertionError(f"sweep triad: {name}[{bad[0]}] = {arr[bad[0]]!r}, expected {want!r}")

        hw_per_repeat = 4 * 8 * n  # plus the write-allocate read of a

    fn()  # compiles (first use) before the core times anything
    info = {
        "op": op, "dtype": "float64", "threads": threads,
        "working_set_bytes": narrays * 8 * n, "arrays": narrays, "array_elements": n,
        "repeats": repeats, "bytes_per_repeat": app_per_repeat,
        "bytes_hw": float(hw_per_repeat * repeats),
        "bytes_accounting": ("STREAM: application bytes, each element read or written counts "
                             "8 B once, times the repeats in one call; bytes_hw adds a "
                             "write-allocate read per stored element, which only reaches "
                             "memory for working sets past the caches"),
        "statistic": "median of the timed calls",
        "schedule": "static: thread t repeats over its own block, no barrier between repeats",
        "cache_sizes": system.cache_sizes(),
        # What detect_plateaus should compare this curve with: the threads' caches together
        # (assumes thread k runs on the k-th CPU given, as OMP_PROC_BIND=close places them).
        "cache_capacity": system.cache_capacity(sorted(ctx.cpus or os.sched_getaffinity(0))[:threads]),
        "pages": system.page_info(arrays[0]),
        "numba_threading_layer": numba.threading_layer(),
    }
    return Workload(fn=fn, flops={"read": n, "write": 0, "triad": 2 * n}[op] * float(repeats),
                    bytes=float(app_per_repeat * repeats), check=check, info=info)


KINDS = [
    Kind("probe.sweep", "kernels.sweep:sweep",
         {"op": Param(str, "read", choices=SWEEP_OPS),
          "kbytes": Param(float, min=1.0,
                          help="working-set size in KiB (1024 B): all arrays of the op together")},
         "Numba read (sum), write (fill) or triad at one working-set size: cache and DRAM bandwidth"),
]
