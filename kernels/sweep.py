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

from harness.workload import Context, Skip, Workload
from kernels.registry import Kind, Param
from kernels.stream import (HUGE_PAGE, STREAM_SCALAR, aligned_empty, cache_capacity, cache_sizes,
                            page_info, set_numba_threads, thread_blocks)

SWEEP_OPS = ("read", "write", "triad")
SWEEP_ARRAYS = {"read": 1, "write": 1, "triad": 3}
# Bytes each call moves per thread: 50 us at 1 TB/s, above one core's L1 bandwidth today
# (0.44-0.49 TB/s read here), so every call lasts >= ~50 us and the timer and the
# parallel-region start stay small beside it.
SWEEP_CALL_BYTES_PER_THREAD = 50e6
WRITE_VALUE = 1.25

numba = None  # imported on first use, inside the worker (see numba_sweep_kernels)

__all__ = ["cache_sizes", "cache_capacity", "sweep_sizes", "detect_plateaus", "sweep", "sweep_repeats",
           "numba_sweep_kernels", "KINDS"]


def sweep_sizes(llc_bytes: int, points_per_doubling: int = 4, start: int = 4096,
                factor: int = 8) -> list[int]:
    """Working-set sizes in bytes, geometric: start * 2**(k / points_per_doubling) up to
    factor x llc_bytes (included when it falls on the grid), rounded to whole 64-byte lines."""
    stop = factor * llc_bytes
    count = int(math.floor(points_per_doubling * math.log2(stop / start) + 1e-9))
    sizes = []
    for k in range(count + 1):
        size = round(start * 2 ** (k / points_per_doubling) / 64) * 64
        if not sizes or size > sizes[-1]:
            sizes.append(size)
    return sizes


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
    import numpy as np

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
        "cache_sizes": cache_sizes(),
        # What detect_plateaus should compare this curve with: the threads' caches together
        # (assumes thread k runs on the k-th CPU given, as OMP_PROC_BIND=close places them).
        "cache_capacity": cache_capacity(sorted(ctx.cpus or os.sched_getaffinity(0))[:threads]),
        "pages": page_info(arrays[0]),
        "numba_threading_layer": numba.threading_layer(),
    }
    return Workload(fn=fn, flops={"read": n, "write": 0, "triad": 2 * n}[op] * float(repeats),
                    bytes=float(app_per_repeat * repeats), check=check, info=info)


# ---------------------------------------------------------------- finding the plateaus

def _segments(y, penalty: float) -> list[tuple[int, int]]:
    """Optimal split of y into constant pieces: least squares plus `penalty` per piece.
    Exact dynamic programme, O(n^2); n is a few dozen points."""
    import numpy as np

    n = len(y)
    s1 = np.concatenate([[0.0], np.cumsum(y)])
    s2 = np.concatenate([[0.0], np.cumsum(np.square(y))])

    def sse(i, j):
        m = j - i
        return s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / m

    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            cost = best[i] + sse(i, j) + penalty
            if cost < best[j]:
                best[j], cut[j] = cost, i
    pieces = []
    j = n
    while j > 0:
        pieces.append((cut[j], j))
        j = cut[j]
    return pieces[::-1]


def detect_plateaus(sizes_bytes, bandwidths, cache_sizes: dict[str, int], min_points: int = 3,
                    min_step: float = 0.1) -> list[dict]:
    """The bandwidth plateaus of a working-set sweep, one per memory level, each set beside
    the cache it lines up with.

    sizes_bytes, bandwidths -- the curve (bandwidths in bytes/s; points in any order).
    cache_sizes             -- cache bytes by level the sweep's threads hold together: for one
                               thread `cache_sizes()`, for several `cache_capacity(cpus)`
                               (private caches add up across cores).

    How: on log bandwidth (levels differ by ratios), split the curve into constant pieces by
    penalised least squares. The penalty per piece is the larger of two: one from the noise
    (robust spread of neighbour differences), so noise starts no piece, and the cost of
    ignoring a `min_step` step (relative) over `min_points` points each side, so slow drifts
    are not cut into slivers. Pieces shorter than `min_points` are transitions and are left
    out; neighbouring pieces within `min_step` of each other are joined.
    Each piece is named after the smallest cache whose size is at least the piece's last size
    / 1.5 (a plateau can run a little past the nominal size: victim caches, the point grid),
    or DRAM past every cache. A level keeps its longest piece (most points, then fastest);
    its other pieces (a bump, or a shared cache slowly filling up) are counted in "pieces".
    A level with no piece (a cache that brings no speed-up) is absent from the list.

    Returns, smallest sizes first: {"level", "first_bytes", "last_bytes", "points",
    "median_gbs", "nominal_bytes" (None for DRAM), "pieces"}.
    """
    import numpy as np

    order = np.argsort(np.asarray(sizes_bytes, dtype=float), kind="stable")
    sizes = np.asarray(sizes_bytes, dtype=float)[order]
    bw = np.asarray(bandwidths, dtype=float)[order]
    if len(sizes) < min_points or np.any(bw <= 0):
        return []
    y = np.log(bw)
    steps = np.diff(y)
    # Normal-equivalent spread of one point, from neighbour differences; the steps between
    # plateaus are few, so the median ignores them.
    sigma = 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / math.sqrt(2)
    # Splitting 2 x min_points points at a step of d lowers the squared error by min_points/2 * d^2.
    penalty = max(4.0 * sigma**2 * math.log(len(y)), min_points / 2 * math.log1p(min_step) ** 2)

    pieces = []
    for lo, hi in _segments(y, penalty):
        if hi - lo < min_points:
            continue
        if pieces and abs(np.median(y[lo:hi]) - pieces[-1]["log_median"]) < math.log1p(min_step):
            lo = pieces.pop()["lo"]  # same level split by a few disturbed points: join them
        pieces.append({"lo": lo, "hi": hi, "log_median": float(np.median(y[lo:hi]))})

    levels = sorted(cache_sizes.items(), key=lambda item: item[1])
    found: dict[str, dict] = {}
    for piece in pieces:
        lo, hi = piece["lo"], piece["hi"]
        level, nominal = "DRAM", None
        for name, size in levels:
            if size >= sizes[hi - 1] / 1.5:
                level, nominal = name, size
                break
        entry = {"level": level, "first_bytes": int(sizes[lo]), "last_bytes": int(sizes[hi - 1]),
                 "points": hi - lo, "median_gbs": round(float(np.median(bw[lo:hi])) / 1e9, 3),
                 "nominal_bytes": nominal, "pieces": 1}
        kept = found.get(level)
        if kept is None:
            found[level] = entry
            continue
        entry["pieces"] = kept["pieces"] + 1
        if (entry["points"], entry["median_gbs"]) > (kept["points"], kept["median_gbs"]):
            found[level] = entry
        else:
            kept["pieces"] = entry["pieces"]
    return sorted(found.values(), key=lambda entry: entry["first_bytes"])


KINDS = [
    Kind("probe.sweep", "kernels.sweep:sweep",
         {"op": Param(str, "read", choices=SWEEP_OPS),
          "kbytes": Param(float, min=1.0,
                          help="working-set size in KiB (1024 B): all arrays of the op together")},
         "Numba read (sum), write (fill) or triad at one working-set size: cache and DRAM bandwidth"),
]
