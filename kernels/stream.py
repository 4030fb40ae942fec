"""STREAM memory-bandwidth probes: copy, scale, add, triad in float64, with NumPy and Numba.

The STREAM rules, as followed here (McCalpin, https://www.cs.virginia.edu/stream/ref.html):

- Each array is at least 4x the last-level cache, so no array survives in any cache between
  calls: the figure is DRAM bandwidth, not cache bandwidth (`stream_array_bytes`).
- Bytes are counted the STREAM way: each array element read or written counts 8 bytes once,
  copy/scale 2 x 8 x N, add/triad 3 x 8 x N ("application" bytes, `Workload.bytes`).
  The memory bus moves more: a store to a line that is not cached first reads the line
  (write-allocate), so copy/scale move 3 x 8 x N and add/triad 4 x 8 x N; that count is
  `info["bytes_hw"]`. None of the loops here uses non-temporal stores (NumPy ufunc loops,
  Numba/LLVM and gcc do not emit them for these loops), so write-allocate applies.
- STREAM reports the best of N; the measurement core reports the median of its samples,
  which is what the record states (`info["statistic"]`). bench/reference/stream_triad.c
  prints both for the same triad in C.

STREAM's kernels (s = 3.0, STREAM's scalar):  copy c = a;  scale b = s*c;  add c = a + b;
triad a = b + s*c.
"""
from __future__ import annotations

import functools

import numpy as np

from harness.core import system
from harness.core.registry import Kind, Param
from harness.core.workload import Context, Skip, Workload

STREAM_OPS = ("copy", "scale", "add", "triad")
STREAM_SCALAR = 3.0
# Start values: distinct and exact in binary, so every op's result is exact and checkable with ==.
A0, B0, C0 = 1.0, 2.0, 0.5
# Arrays each op reads and writes: application bytes are (reads + writes) x 8 x N.
STREAM_ARRAYS = {"copy": (("a",), "c"), "scale": (("c",), "b"), "add": (("a", "b"), "c"),
                 "triad": (("b", "c"), "a")}

# Buffers start on a 2 MiB boundary so transparent huge pages can cover them from the first byte.
HUGE_PAGE = 2 * 1024 * 1024
MAX_MBYTES = 100_000.0  # one array of 100 GB: past it a typo, not a plan

numba = None  # imported on first use, inside the worker, after its thread settings (see numba_stream_kernels)


def stream_array_bytes(llc_bytes: int, available: int) -> int:
    """Bytes per STREAM array.

    Rule: each array is 4x the last-level cache (STREAM's rule, against the sum of all LLCs),
    and at least 1e6 elements (STREAM's floor); the three arrays together take at most half
    of the memory available, leaving room for the rest of the process and the OS. Rounded
    down to whole 2 MiB huge pages (4 KiB pages below that). When memory is too short for
    the rule, the cap wins and the record says `meets_stream_rule: false`.
    """
    want = max(4 * llc_bytes, 8 * 1_000_000)
    cap = available // 2 // 3
    size = min(want, cap)
    unit = HUGE_PAGE if size >= HUGE_PAGE else 4096
    return max(size // unit * unit, 4096)


# ---------------------------------------------------------------- buffers and the static schedule

def aligned_empty(n: int, align: int = HUGE_PAGE, offset: int = 0):
    """An uninitialised float64 array of n elements starting `offset` bytes past an `align`
    boundary. Not touched here: the threads that use it touch it first.

    Give each array of one kernel a different offset (STREAM's OFFSET): arrays at the same
    offset within a 4 KiB page make loads look like they depend on earlier stores to another
    array (4K aliasing), which cost a third of the in-L1 triad bandwidth here."""
    raw = np.empty(n * 8 + align + offset, dtype=np.uint8)
    start = (-raw.ctypes.data) % align + offset
    return raw[start:start + n * 8].view(np.float64)


def thread_blocks(n: int, threads: int):
    """Static schedule: thread t owns elements [bounds[t], bounds[t+1]), equal shares with
    interior bounds on whole 64-byte lines so no two threads write one cache line.

    The same bounds serve the parallel first touch and every kernel, so each thread works on
    the pages it faulted in (on a NUMA machine, memory on its own node)."""
    bounds = [(n * t // threads) // 8 * 8 for t in range(threads)] + [n]
    return np.array(bounds, dtype=np.int64)


# ---------------------------------------------------------------- kernels

def numpy_triad_block(l2_bytes: int | None = None) -> int:
    """Elements per block of the NumPy triad: half the L2 per array (see numpy_stream_kernels)."""
    l2 = l2_bytes or system.cache_sizes().get("L2", 1024 * 1024)
    return max(1024, l2 // 2 // 8)


def numpy_stream_kernels(l2_bytes: int | None = None) -> dict:
    """STREAM ops as NumPy ufuncs writing in place: no temporaries, one thread.

    copy uses np.positive rather than np.copyto: copyto goes through memmove, which glibc
    switches to non-temporal stores past a size threshold, changing the hardware bytes.
    triad has no single ufunc (NumPy has no fused multiply-add), and
    np.multiply(c, s, out=a); np.add(a, b, out=a) over whole arrays is two passes through
    memory (5 x 8 x N application bytes, not 3). Instead each block of half the L2 runs
    both passes while the block of `a` is still cached, so memory sees one pass: the single-
    pass STREAM triad, with STREAM's 3 x 8 x N. (Python's per-block loop costs a few percent.)
    """
    block = numpy_triad_block(l2_bytes)

    def stream_copy(a, b, c, scalar, bounds):
        np.positive(a, out=c)

    def stream_scale(a, b, c, scalar, bounds):
        np.multiply(c, scalar, out=b)

    def stream_add(a, b, c, scalar, bounds):
        np.add(a, b, out=c)

    def stream_triad(a, b, c, scalar, bounds):
        for lo in range(0, a.size, block):
            out = a[lo:lo + block]
            np.multiply(c[lo:lo + block], scalar, out=out)
            np.add(out, b[lo:lo + block], out=out)

    return {"copy": stream_copy, "scale": stream_scale, "add": stream_add, "triad": stream_triad}


@functools.cache
def numba_stream_kernels() -> dict:
    """STREAM ops as Numba parallel loops over `thread_blocks`: prange over the thread index,
    one block each, which is a static schedule whatever Numba's own chunking does; the inner
    loops are plain unit-stride loops LLVM vectorises. Also returns "init", the parallel
    first touch with the same blocks."""
    global numba
    import numba

    # Each thread slices its block so the inner index starts at 0: Numba then drops its
    # negative-index fix-up and LLVM vectorises the loop (indexing a[bounds[t] + i] directly
    # keeps the fix-up and runs 3-4x slower).
    @numba.njit(parallel=True, cache=True)
    def stream_init(a, b, c, bounds):
        for t in numba.prange(bounds.size - 1):
            lo, hi = bounds[t], bounds[t + 1]
            aa, bb, cc = a[lo:hi], b[lo:hi], c[lo:hi]
            for i in range(aa.size):
                aa[i] = A0
                bb[i] = B0
                cc[i] = C0

    @numba.njit(parallel=True, cache=True)
    def stream_copy(a, b, c, scalar, bounds):
        for t in numba.prange(bounds.size - 1):
            lo, hi = bounds[t], bounds[t + 1]
            aa, bb, cc = a[lo:hi], b[lo:hi], c[lo:hi]
            for i in range(aa.size):
                cc[i] = aa[i]

    @numba.njit(parallel=True, cache=True)
    def stream_scale(a, b, c, scalar, bounds):
        for t in numba.prange(bounds.size - 1):
            lo, hi = bounds[t], bounds[t + 1]
            aa, bb, cc = a[lo:hi], b[lo:hi], c[lo:hi]
            for i in range(aa.size):
                bb[i] = scalar * cc[i]

    @numba.njit(parallel=True, cache=True)
    def stream_add(a, b, c, scalar, bounds):
        for t in numba.prange(bounds.size - 1):
            lo, hi = bounds[t], bounds[t + 1]
            aa, bb, cc = a[lo:hi], b[lo:hi], c[lo:hi]
            for i in range(aa.size):
                cc[i] = aa[i] + bb[i]

    @numba.njit(parallel=True, cache=True)
    def stream_triad(a, b, c, scalar, bounds):
        for t in numba.prange(bounds.size - 1):
            lo, hi = bounds[t], bounds[t + 1]
            aa, bb, cc = a[lo:hi], b[lo:hi], c[lo:hi]
            for i in range(aa.size):
                aa[i] = bb[i] + scalar * cc[i]

    return {"init": stream_init, "copy": stream_copy, "scale": stream_scale, "add": stream_add,
            "triad": stream_triad}


def stream_kernels(impl: str) -> dict:
    return numba_stream_kernels() if impl == "numba" else numpy_stream_kernels()


def set_numba_threads(threads: int) -> int:
    """Uses ctx.threads Numba threads; returns the count set. Numba's pool size is fixed at
    start (NUMBA_NUM_THREADS), so more threads than that is a Skip, not a silent fallback."""
    global numba
    import numba

    if threads > numba.config.NUMBA_NUM_THREADS:
        raise Skip(f"{threads} threads asked, Numba started with NUMBA_NUM_THREADS="
                   f"{numba.config.NUMBA_NUM_THREADS}")
    numba.set_num_threads(threads)
    return threads


def stream_bytes(op: str, n: int) -> tuple[int, int]:
    """(application bytes, hardware bytes) for one pass of `op` over n elements per array.

    Application: STREAM's count, every array read or written once, 8 bytes per element.
    Hardware: plus one write-allocate read of the stored array (x1.5 copy/scale, x4/3 add/triad)."""
    reads, _ = STREAM_ARRAYS[op]
    app = (len(reads) + 1) * 8 * n
    hw = (len(reads) + 2) * 8 * n
    return app, hw


def stream_expected(op: str) -> dict[str, float]:
    """Closed form: the value every element of a, b, c holds after one or more calls of `op`
    from the start values (each op alone is idempotent: its inputs never change)."""
    values = {"a": A0, "b": B0, "c": C0}
    s = STREAM_SCALAR
    if op == "copy":
        values["c"] = A0
    elif op == "scale":
        values["b"] = s * C0
    elif op == "add":
        values["c"] = A0 + B0
    elif op == "triad":
        values["a"] = B0 + s * C0
    return values


# ---------------------------------------------------------------- the case kind

def stream(params: dict, ctx: Context) -> Workload:
    """probe.stream: one STREAM op over arrays past the caches."""
    impl, op = params["impl"], params["op"]
    threads = max(1, ctx.threads)
    if impl == "numpy" and threads > 1:
        raise Skip("NumPy ufuncs run on one thread; use impl=numba for more threads")

    llc = system.llc_total_bytes()
    available = system.available_memory()
    rule_bytes = stream_array_bytes(llc, available)
    array_bytes = int(params["mbytes"] * 1e6) if params["mbytes"] else rule_bytes
    n = max(8, array_bytes // 8)
    if 3 * n * 8 > available:
        raise Skip(f"3 arrays of {n * 8 / 1e6:.0f} MB do not fit in {available / 1e6:.0f} MB available")

    kernels = stream_kernels(impl)
    kernel = kernels[op]
    if impl == "numba":
        set_numba_threads(threads)
    bounds = thread_blocks(n, threads)
    a, b, c = (aligned_empty(n, offset=k * 64) for k in range(3))
    arrays = {"a": a, "b": b, "c": c}

    def initialise():
        if impl == "numba":
            numba_stream_kernels()["init"](a, b, c, bounds)  # first touch by the owning threads
        else:
            a.fill(A0)
            b.fill(B0)
            c.fill(C0)

    initialise()
    kernel(a, b, c, STREAM_SCALAR, bounds)  # compiles (Numba) and checks the call works before timing
    initialise()

    def fn():
        kernel(a, b, c, STREAM_SCALAR, bounds)

    expected = stream_expected(op)
    output = STREAM_ARRAYS[op][1]

    def verify(when):
        for name, value in expected.items():
            bad = np.flatnonzero(arrays[name] != value)
            if bad.size:
                raise AssertionError(f"stream {op} ({impl}) {when}: {name}[{bad[0]}] = "
                                     f"{arrays[name][bad[0]]!r}, expected {value!r} ({bad.size} wrong)")

    def check():
        verify("after timing")
        # A kernel that ran once and then did nothing would pass the line above:
        # spoil the output, call once more, and the closed form must come back.
        arrays[output].fill(np.nan)
        fn()
        verify("after one more call")

    app_bytes, hw_bytes = stream_bytes(op, n)
    info = {
        "impl": impl, "op": op, "dtype": "float64", "threads": threads,
        "array_elements": n, "array_bytes": n * 8, "arrays": 3,
        "array_bytes_rule": rule_bytes, "llc_bytes": llc, "available_bytes": available,
        "meets_stream_rule": n * 8 >= 4 * llc,
        "bytes_hw": float(hw_bytes),
        "bytes_accounting": ("STREAM: application bytes, each array element read or written "
                             f"counts 8 B once ({app_bytes // (8 * n)} x 8 x N); bytes_hw adds one "
                             "write-allocate read of the stored array"
                             f" ({hw_bytes // (8 * n)} x 8 x N)"),
        "statistic": "median of the timed calls (STREAM itself reports the best)",
        "pages": {name: system.page_info(arr) for name, arr in arrays.items()},
    }
    if impl == "numba":
        info["numba_threading_layer"] = numba.threading_layer()
        info["schedule"] = "static: thread t owns one contiguous block"
        info["first_touch"] = "parallel, same blocks as the kernels"
    else:
        info["first_touch"] = "one thread (NumPy)"
    if op == "triad":
        info["formulation"] = ("single pass: a[i] = b[i] + s*c[i]" if impl == "numba" else
                               f"single pass through memory: per block of {numpy_triad_block()} "
                               "elements, np.multiply(c, s, out=a) then np.add(a, b, out=a)")
    return Workload(fn=fn, flops=float({"copy": 0, "scale": n, "add": n, "triad": 2 * n}[op]),
                    bytes=float(app_bytes), check=check, info=info)


def stream_memory(params: dict, threads: int) -> float:
    """Three arrays of `mbytes` (auto-sized arrays take at most half the memory available)."""
    return 3 * params["mbytes"] * 1e6


KINDS = [
    Kind("probe.stream", "kernels.stream:stream",
         {"impl": Param(str, "numba", choices=("numpy", "numba")),
          "op": Param(str, "triad", choices=STREAM_OPS),
          "mbytes": Param(float, 0.0, min=0, max=MAX_MBYTES,
                          help="per-array size in MB (1e6 B); 0 = 4x the last-level cache, capped by memory")},
         "STREAM copy/scale/add/triad in float64 over arrays past the caches: DRAM bandwidth",
         memory=stream_memory),
]
