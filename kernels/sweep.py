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
import sys

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
# Set by probe.sweep's worker env (see worker_env): the worker asks Numba for 512-bit vectors.
WIDE_VECTORS_ENV = "HARNESS_SWEEP_WIDE_VECTORS"
MAX_KBYTES = 100_000_000.0  # a working set of 100 GB: past it a typo, not a plan

numba = None  # imported on first use, inside the worker (see numba_sweep_kernels)
numba_target = "host"  # how Numba's target was set up, for the record (see numba_wide_vectors)
repeated_sum = None  # the read's inner kernel, a Numba intrinsic (see define_repeated_sum)
read_vector = (2, 12)  # (lanes, accumulators) of repeated_sum, set with it


def target_features(features: str) -> dict[str, bool]:
    """An LLVM feature string ('+avx2,-avx512f,...') as {name: on}; later entries win."""
    out = {}
    for item in filter(None, (f.strip() for f in features.split(","))):
        out[item[1:]] = item[0] == "+"
    return out


def read_vector_shape(features: dict[str, bool], machine: str = "x86_64") -> tuple[int, int]:
    """(float64 lanes, accumulators) of the read for a target: 16 accumulators of 8 lanes
    with AVX-512 (32 zmm registers), 12 of 4 with AVX (16 ymm), 12 of 2 with SSE2 only
    (16 xmm); 16 of 2 on AArch64 (32 NEON registers). bench/reference/sweep.c uses the same."""
    if machine in ("aarch64", "arm64"):
        return 2, 16
    if features.get("avx512f"):
        return 8, 16
    if features.get("avx"):
        return 4, 12
    return 2, 12


def worker_env(params: dict) -> dict:
    """The environment of probe.sweep's worker: on a CPU with AVX-512, a request for 512-bit
    vectors, which the worker turns into NUMBA_CPU_FEATURES before Numba starts (see
    numba_wide_vectors). Nothing when the user set NUMBA_CPU_FEATURES (it then wins: that is
    how an AVX2-only build is forced) or the CPU has no AVX-512. Read from /proc/cpuinfo:
    validating a suite must not start LLVM."""
    if "NUMBA_CPU_FEATURES" in os.environ or "avx512f" not in system.cpu_flags():
        return {}
    return {WIDE_VECTORS_ENV: "1"}


def numba_wide_vectors() -> str:
    """Before Numba starts: lets LLVM vectorise with 512-bit registers on AVX-512 CPUs.

    LLVM tunes Intel's AVX-512 CPUs (Skylake-SP to Sapphire Rapids, Ice/Rocket Lake) with
    `prefer-256-bit`: its vectorisers then use ymm, where a zmm load, add or store would move
    twice as much. In L1 on a Xeon with AVX-512 (2 vCPUs, KVM) the triad reached 270 GB/s
    with ymm and 400 with zmm, as C with zmm intrinsics does (the read's explicit vectors,
    see define_repeated_sum, are zmm either way). With
    WIDE_VECTORS_ENV set (worker_env) and no NUMBA_CPU_FEATURES given, this sets
    NUMBA_CPU_FEATURES to the host's features plus `-prefer-256-bit` (a tuning flag: the
    instruction set stays the host's). Returns what Numba's target is, for the record."""
    if "NUMBA_CPU_FEATURES" in os.environ:
        return "NUMBA_CPU_FEATURES from the environment"
    if os.environ.get(WIDE_VECTORS_ENV) != "1":
        return "host"
    if "numba" in sys.modules:  # too late: Numba read its configuration when it started
        return "host (512-bit vectors asked for, but Numba had already started)"
    import llvmlite.binding as llvm

    os.environ["NUMBA_CPU_FEATURES"] = llvm.get_host_cpu_features().flatten() + ",-prefer-256-bit"
    return "host features, -prefer-256-bit (512-bit vectors)"


def sweep_repeats(bytes_per_repeat: float, threads: int) -> int:
    """Kernel repeats inside one call so that one call moves SWEEP_CALL_BYTES_PER_THREAD per thread."""
    return max(1, math.ceil(SWEEP_CALL_BYTES_PER_THREAD * threads / bytes_per_repeat))


def _pointer_loop(builder, intp, starts, count, step, body) -> None:
    """Emits `for (p = starts; p[0] < starts[0] + count; p += step) body(p)`: a loop that
    walks pointers (element type double) and stops on the first. For the read's two
    streams LLVM then addresses the first half's loads as pointer + constant and the
    second's as pointer + distance, where a loop over an index made every load base +
    index x 8 (an indexed load with a VEX or EVEX add is two micro-ops on Intel cores:
    3-8% slower in L1 and L2 here)."""
    from llvmlite import ir
    from numba.core import cgutils

    slots = [cgutils.alloca_once(builder, start.type) for start in starts]
    for slot, start in zip(slots, starts):
        builder.store(start, slot)
    end = builder.ptrtoint(builder.gep(starts[0], [count]), intp)
    head = builder.append_basic_block("walk.head")
    loop = builder.append_basic_block("walk.body")
    done = builder.append_basic_block("walk.done")
    builder.branch(head)
    builder.position_at_end(head)
    more = builder.icmp_unsigned("<", builder.ptrtoint(builder.load(slots[0]), intp), end)
    builder.cbranch(more, loop, done)
    builder.position_at_end(loop)
    pointers = [builder.load(slot) for slot in slots]
    body(pointers)
    for slot, pointer in zip(slots, pointers):
        builder.store(builder.gep(pointer, [ir.Constant(intp, step)]), slot)
    builder.branch(head)
    builder.position_at_end(done)


def define_repeated_sum(lanes: int, accumulators: int):
    """A Numba intrinsic `repeated_sum(block, repeats) -> float64`: the sum of a contiguous
    1-D float64 block, `repeats` times over, written as LLVM vector IR.

    The two halves of the block are read at once, accumulators / 2 vectors of `lanes`
    doubles on each: independent add chains enough to keep two loads a cycle busy through
    the add latency, the registers they take fitting the register file with none spilled.
    (Two streams, not one: with ymm one stream read DRAM 20% slower here, in C too.)
    The accumulators stay in registers across repeats and are reduced once, at the end,
    as bench/reference/sweep.c does. What is left past the halves (under two steps) goes
    through two of the chains in pairs of vectors, then one scalar chain.

    Why IR, not a loop LLVM vectorises: its loop vectoriser keeps at most 4 partial sums
    per accumulator (interleave 4) and reduces them at every exit of the loop, so each
    repeat paid a horizontal reduction and a loop exit; a sum split in two halves (8
    chains) ran its loop at C's speed but lost 4-5 ns a repeat, 10% of a 16 KiB block:
    86% of C with AVX-512 and 90% with AVX2 in L1 here. One accumulator (4 chains) was
    bound by the add latency: 60% of C on Zen 3, 75% here. Explicit vectors are also what
    LLVM's `prefer-256-bit` tuning cannot narrow: they are zmm with AVX-512 whatever it says.
    Adds are plain IEEE adds in a fixed order per lane; the values the probe sums are small
    integers, so the total is exact and the check can demand it bit for bit."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    half_acc = accumulators // 2
    step = half_acc * lanes  # elements of one half read per loop iteration

    @intrinsic
    def _repeated_sum(typingctx, block, repeats):
        if not (isinstance(block, types.Array) and block.ndim == 1 and block.layout == "C"
                and block.dtype == types.float64 and isinstance(repeats, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            f64 = ir.DoubleType()
            vec = ir.VectorType(f64, lanes)
            intp = context.get_value_type(types.intp)
            const = lambda v: ir.Constant(intp, v)  # noqa: E731
            array = context.make_array(signature.args[0])(context, builder, args[0])
            base, n = array.data, builder.extract_value(array.shape, 0)
            reps = context.cast(builder, args[1], signature.args[1], types.intp)
            half = builder.mul(builder.sdiv(n, const(2 * step)), const(step))
            second = builder.gep(base, [half])
            rest = builder.add(half, half)
            pairs_end = builder.add(rest, builder.mul(builder.sdiv(builder.sub(n, rest), const(2 * lanes)),
                                                      const(2 * lanes)))
            # Allocas in the entry block: LLVM promotes them to registers (loop-carried phis).
            acc = [cgutils.alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(accumulators)]
            tail = cgutils.alloca_once_value(builder, ir.Constant(f64, 0.0))

            def load(ptr, index):
                return builder.load(builder.bitcast(builder.gep(ptr, [index]), vec.as_pointer()), align=8)

            def add(k, value):
                builder.store(builder.fadd(builder.load(acc[k]), value), acc[k])

            def halves(pointers):
                for k in range(half_acc):
                    add(k, load(pointers[0], const(k * lanes)))
                    add(half_acc + k, load(pointers[1], const(k * lanes)))

            with cgutils.for_range(builder, reps, intp=intp):
                _pointer_loop(builder, intp, [base, second], half, step, halves)
                with cgutils.for_range_slice(builder, rest, pairs_end, const(2 * lanes), intp=intp) as (i, _):
                    add(0, load(base, i))
                    add(half_acc, load(base, builder.add(i, const(lanes))))
                # Every load of a repeat sits in a loop over the block: a lone load of a fixed
                # vector here would be loop-invariant, and LLVM hoisted it out of the repeats.
                with cgutils.for_range_slice(builder, pairs_end, n, const(1), intp=intp) as (i, _):
                    builder.store(builder.fadd(builder.load(tail), builder.load(builder.gep(base, [i]))), tail)
            sums = [builder.load(a) for a in acc]
            while len(sums) > 1:  # pairwise, then the lanes
                sums = [builder.fadd(x, y) for x, y in zip(sums[::2], sums[1::2])] + sums[len(sums) // 2 * 2:]
            total = builder.load(tail)
            for lane in range(lanes):
                total = builder.fadd(total, builder.extract_element(sums[0], ir.Constant(ir.IntType(32), lane)))
            return total

        return types.float64(block, repeats), codegen

    return _repeated_sum


@functools.cache
def numba_sweep_kernels() -> dict:
    """read, write, triad over `thread_blocks`, `repeats` times per call, plus "init" (first touch)."""
    global numba, numba_target, repeated_sum, read_vector
    if numba is None:
        numba_target = numba_wide_vectors()
    import numba

    # The read's vectors follow the instruction set Numba compiles for (NUMBA_CPU_FEATURES
    # when given, else the host's): the cache keys compiled code on that too.
    if numba.config.CPU_FEATURES is not None:
        features = target_features(numba.config.CPU_FEATURES)
    else:
        import llvmlite.binding as llvm

        features = dict(llvm.get_host_cpu_features())
    read_vector = read_vector_shape(features, os.uname().machine)
    repeated_sum = define_repeated_sum(*read_vector)

    # Threads slice their block (see kernels/stream.py); repeated_sum holds the loop. Time
    # grows linearly with repeats: every repeat loads the block again (no fast-math: LLVM
    # may not reorder the adds, so it cannot fold repeats into one sum).
    @numba.njit(parallel=True, cache=True)
    def sweep_read(a, repeats, bounds, partial):
        for t in numba.prange(bounds.size - 1):
            partial[t] = repeated_sum(a[bounds[t]:bounds[t + 1]], repeats)

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
    # fastmath "contract" lets LLVM fuse the multiply and add into one FMA, as gcc does for
    # C (-ffp-contract=fast): a separate multiply and add held the in-L1 triad to 85% of C
    # here. Exact either way: the values are small integers. (The same loop in vector IR,
    # as the read is, ran no faster: LLVM's vectorised loop already runs at C's speed.)
    @numba.njit(parallel=True, fastmath={"contract"}, cache=True)
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
        "numba_target": numba_target,
        "read_vectors": ({"accumulators": read_vector[1], "lanes": read_vector[0],
                          "streams": 2, "reduced": "once per call"} if op == "read" else None),
    }
    return Workload(fn=fn, flops={"read": n, "write": 0, "triad": 2 * n}[op] * float(repeats),
                    bytes=float(app_per_repeat * repeats), check=check, info=info)


def sweep_memory(params: dict, threads: int) -> float:
    """The working set, and each array's alignment slack (see aligned_empty)."""
    narrays = SWEEP_ARRAYS[params["op"]]
    return params["kbytes"] * 1024 + narrays * (HUGE_PAGE + 64 * narrays)


KINDS = [
    Kind("probe.sweep", "kernels.sweep:sweep",
         {"op": Param(str, "read", choices=SWEEP_OPS),
          "kbytes": Param(float, min=1.0, max=MAX_KBYTES,
                          help="working-set size in KiB (1024 B): all arrays of the op together")},
         "Numba read (sum), write (fill) or triad at one working-set size: cache and DRAM bandwidth",
         env=worker_env, memory=sweep_memory),
]
