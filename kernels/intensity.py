"""A probe of tunable arithmetic intensity, after the Empirical Roofline Toolkit (ERT).

Each element of an array is loaded, put through a chain of k dependent multiply-adds
(2 FLOPs each) and stored back in place. Sweeping k moves the kernel from memory-bound
to compute-bound; sweeping the array size moves the data from L1 out to DRAM. Plotted
together the points trace the roof itself.

Cost per element per sweep, with s = sizeof(dtype):
    bytes = 2 s   (one load, one store, in place: the store hits a line just read, so
                   there is no write-allocate read)
    FLOPs = 2 k   (k multiply-adds), or 1 for the add-only variant
    intensity = k / s FLOP/byte, or 1 / (2 s) for add-only.
So float32 reaches 1/8 (add) and 1/4 .. 64 (k = 1 .. 256); float64 1/16 (add) and 1/8 .. 64
(k = 1 .. 512). A requested flops_per_byte is rounded to the nearest achievable intensity,
and the achieved one is recorded.

Why the chain is built the way it is:
- The multiply-adds come in pairs y -> y * 0.5 + 1 -> y * 2 + b. With b = -1 a pair adds
  exactly 1, with b = -3 it subtracts 1; for integer-valued data every step is exact in
  binary floating point. Calls alternate the two, so the array returns to its start after
  every second call and `check` can compare against a closed form exactly: a kernel that
  skipped work, or a compiler that dropped some, would leave a different integer.
  The constants are run-time arguments so the compiler cannot fold the chain, and only
  contraction (mul + add -> FMA) is allowed, not reassociation.
- Eight independent streams per loop iteration: one chain per element is a serial
  dependence (FMA latency ~4 cycles), and two FMA pipes need ~8 chains in flight.
- Long chains run as `passes` over a 4 KB block that stays in L1, 16 multiply-adds per
  pass: unrolling all k (up to 512) per element makes compile time explode (~30 s for 256).
  The block is read from where the array lives once per sweep; the extra passes re-read it
  from L1 and are not counted as bytes (ERT counts the same way). They only occur at
  k > 16 (intensity >= 8 FLOP/byte for float32), where the kernel is compute-bound anyway.
- Each thread owns a contiguous range of whole blocks, so a per-core cache level is
  measured per core, as ERT does.
- One call makes `reps` sweeps, enough for about 1 GB of traffic or 1e10 FLOPs, so that the
  parallel-region start (microseconds) stays a small part of a call even for L1-sized arrays.

numba is imported inside functions (deferred on purpose: its thread count and CPU features are
read when it starts, which must be inside the worker).
"""
from __future__ import annotations

import math

import numpy as np

from harness.core.registry import Kind, Param
from harness.core.workload import Context, Workload, prefault

DTYPES = ("float32", "float64")
BLOCK_BYTES = 4096  # per-block working set: well inside any L1
STREAMS = 8  # independent FMA chains per loop iteration
MAX_CHAIN = 16  # multiply-adds unrolled per pass; longer chains repeat passes
TARGET_BYTES = 1e9  # per call, when choosing reps
TARGET_FLOPS = 1e10
MAX_MBYTES = 100_000.0  # an array of 100 GB: past it a typo, not a plan
MAX_REPS = 1_000_000_000
VALUE_PERIOD = 64  # initial values are (index mod 64): small integers, so every step is exact
_EXACT_LIMIT = {"float32": 2.0**23, "float64": 2.0**52}  # below this, integers and halves are exact

_kernels: dict = {}


def intensity_grid(dtype: str | None = None) -> list[float]:
    """Powers of two from 1/16 to 64 FLOP/byte; for a dtype, only those it can reach
    (float32 starts at 1/8: one add per 8 bytes moved is as low as an in-place sweep goes)."""
    grid = [2.0**e for e in range(-4, 7)]
    if dtype is None:
        return grid
    return [x for x in grid if x >= _min_intensity(_itemsize(dtype)) * (1 - 1e-12)]


def plan(flops_per_byte: float, dtype: str) -> dict:
    """The achievable chain nearest (in ratio) to the requested intensity, and its cost per element."""
    size = _itemsize(dtype)
    if flops_per_byte <= 0:
        raise ValueError(f"flops_per_byte: must be > 0; got {flops_per_byte!r}")
    k_max = 64 * size  # 64 FLOP/byte
    candidates = [0] + list(range(1, MAX_CHAIN + 1)) + list(range(2 * MAX_CHAIN, k_max + 1, MAX_CHAIN))
    k = min(candidates, key=lambda c: abs(math.log(_intensity(c, size) / flops_per_byte)))
    chain = k if k <= MAX_CHAIN else MAX_CHAIN
    return {
        "fma_per_element": k,
        "add_only": k == 0,
        "flops_per_element": 1 if k == 0 else 2 * k,
        "bytes_per_element": 2 * size,
        "intensity": _intensity(k, size),
        "chain": max(chain, 1),
        "passes": 1 if k <= MAX_CHAIN else k // MAX_CHAIN,
    }


def _itemsize(dtype: str) -> int:
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return 4 if dtype == "float32" else 8


def _intensity(k: int, size: int) -> float:
    return (1 if k == 0 else 2 * k) / (2 * size)


def _min_intensity(size: int) -> float:
    return _intensity(0, size)


def _step(p: dict) -> int:
    """Exact change of every element per forward sweep."""
    if p["add_only"]:
        return 1
    per_pass = p["chain"] // 2 + p["chain"] % 2  # each pair adds 1, an odd last FMA adds 1
    return per_pass * p["passes"]


def _source(chain: int, add_only: bool, block: int) -> str:
    """The kernel, written out: the chain must be straight-line code for the loop over i to
    vectorise (a loop inside it would not), and literal stream offsets spare alias checks."""
    m = block // STREAMS
    ys = [f"y{g}" for g in range(STREAMS)]
    body = [f"{y} = v{g}[i]" for g, y in enumerate(ys)]
    if add_only:
        body += [f"{y} = {y} + u" for y in ys]
    else:
        for step in range(chain - chain % 2):
            body += [f"{y} = {y} * h + o" if step % 2 == 0 else f"{y} = {y} * t + b" for y in ys]
        if chain % 2:
            body += [f"{y} = {y} * s + u" for y in ys]
    body += [f"v{g}[i] = {y}" for g, y in enumerate(ys)]
    lines = [
        "def intensity_kernel(a, n_chunks, blocks_per_chunk, n_blocks, reps, passes, h, o, t, b, s, u):",
        "    for c in numba.prange(n_chunks):",
        "        first = c * blocks_per_chunk",
        "        last = min(first + blocks_per_chunk, n_blocks)",
        "        for r in range(reps):",
        "            for blk in range(first, last):",
        f"                base = blk * {block}",
    ]
    lines += [f"                v{g} = a[base + {g * m}: base + {(g + 1) * m}]" for g in range(STREAMS)]
    lines += [
        "                for p in range(passes):",
        f"                    for i in range({m}):",
    ]
    lines += ["                        " + line for line in body]
    return "\n".join(lines) + "\n"


def _kernel(chain: int, add_only: bool, block: int):
    key = (chain, add_only, block)
    if key not in _kernels:
        import numba

        namespace = {"numba": numba}
        exec(compile(_source(chain, add_only, block), f"<intensity chain={chain}>", "exec"), namespace)
        # contract only: fuse mul + add into FMA, but never reassociate (which could fold the chain)
        _kernels[key] = numba.njit(parallel=True, fastmath={"contract"})(namespace["intensity_kernel"])
    return _kernels[key]


class IntensityProbe:
    """The state of one probe.intensity case; `run` is the timed callable."""

    def __init__(self, params: dict, threads: int):
        self.dtype = np.dtype(params["dtype"])
        self.plan = plan(params["flops_per_byte"], params["dtype"])
        self.block = BLOCK_BYTES // self.dtype.itemsize
        self.n_blocks = max(1, round(params["mbytes"] * 1e6 / BLOCK_BYTES))
        self.n = self.n_blocks * self.block
        self.threads = max(1, threads)
        self.n_chunks = min(self.threads, self.n_blocks)
        self.blocks_per_chunk = -(-self.n_blocks // self.n_chunks)
        sweep_bytes = self.n * self.plan["bytes_per_element"]
        sweep_flops = self.n * self.plan["flops_per_element"]
        self.reps = params.get("reps") or max(1, min(round(TARGET_BYTES / sweep_bytes),
                                                     round(TARGET_FLOPS / sweep_flops)))
        self.step = _step(self.plan)
        top = VALUE_PERIOD + self.reps * self.step
        if top >= _EXACT_LIMIT[self.dtype.name]:
            raise ValueError(f"reps: {self.reps} sweeps would take values to {top:.3g}, past exact "
                             f"{self.dtype.name} integers; use fewer reps")
        self.flops = float(self.reps * sweep_flops)
        self.bytes = float(self.reps * sweep_bytes)

        self.array = np.empty(self.n, self.dtype)
        prefault(self.array)
        self.array[:] = self._initial(0, self.n)
        self.calls = 0
        self.kernel = _kernel(self.plan["chain"], self.plan["add_only"], self.block)
        c = self.dtype.type  # constants in the array's dtype, or float64 arithmetic creeps in
        self._args = [
            # h, o, t, b, s, u: forward pairs add 1, the odd FMA and the add-only step add u
            (c(0.5), c(1.0), c(2.0), c(-1.0), c(1.0), c(1.0)),
            (c(0.5), c(1.0), c(2.0), c(-3.0), c(1.0), c(-1.0)),
        ]

    def _initial(self, lo: int, hi: int):
        return (np.arange(lo, hi) % VALUE_PERIOD).astype(self.dtype)

    def run(self) -> None:
        self.kernel(self.array, self.n_chunks, self.blocks_per_chunk, self.n_blocks, self.reps,
                    self.plan["passes"], *self._args[self.calls % 2])
        self.calls += 1

    def expected_offset(self) -> int:
        """What every element should hold above its initial value after the calls made so far."""
        return self.reps * self.step if self.calls % 2 else 0

    def check(self) -> None:
        """Compares the array with the closed form, then runs once more and compares again,
        so the check means something even if the array had been left at its start."""
        for _ in range(2):
            offset = self.expected_offset()
            chunk = 1 << 20
            for lo in range(0, self.n, chunk):
                hi = min(lo + chunk, self.n)
                expect = self._initial(lo, hi) + self.dtype.type(offset)
                bad = self.array[lo:hi] != expect
                if bad.any():
                    i = lo + int(bad.argmax())
                    raise AssertionError(
                        f"probe.intensity: element {i} is {self.array[i]!r}, expected {expect[i - lo]!r} "
                        f"after {self.calls} calls of {self.reps} sweeps x "
                        f"{self.plan['fma_per_element']} FMAs")
            self.run()

    def info(self) -> dict:
        p = self.plan
        return {
            "dtype": self.dtype.name,
            "array_bytes": self.n * self.dtype.itemsize,
            "elements": self.n,
            "reps": self.reps,
            "fma_per_element": p["fma_per_element"],
            "add_only": p["add_only"],
            "flops_per_element": p["flops_per_element"],
            "bytes_per_element": p["bytes_per_element"],
            "intensity": self.flops / self.bytes,
            "passes": p["passes"],
            "block_bytes": BLOCK_BYTES,
            "streams": STREAMS,
            "chunks": self.n_chunks,
            "bytes_accounting": "each element loaded and stored once per sweep, in place "
                                "(no write-allocate); L1 re-reads between passes not counted",
        }


def intensity_probe(params: dict, ctx: Context) -> Workload:
    import numba

    threads = max(1, min(ctx.threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    probe = IntensityProbe(params, threads)
    probe.run()  # compiles (seconds) outside the timed region
    probe.run()  # back at the initial values
    info = probe.info()
    info.update(requested_flops_per_byte=params["flops_per_byte"], numba_threads=threads)
    return Workload(fn=probe.run, flops=probe.flops, bytes=probe.bytes, check=probe.check, info=info)


def _validate(params: dict) -> None:
    p = plan(params["flops_per_byte"], params["dtype"])
    if params["reps"]:
        top = VALUE_PERIOD + params["reps"] * _step(p)
        if top >= _EXACT_LIMIT[params["dtype"]]:
            raise ValueError(f"reps: {params['reps']} sweeps pass the exact range of {params['dtype']}")


KINDS = [
    Kind("probe.intensity", "kernels.intensity:intensity_probe",
         {"flops_per_byte": Param(float, 1.0, min=1 / 16, max=64,
                                  help="requested arithmetic intensity; the nearest achievable is used"),
          "dtype": Param(str, "float32", choices=DTYPES),
          "mbytes": Param(float, 128.0, min=0.004, max=MAX_MBYTES,
                          help="array size in MB (1e6 B), whole 4 KB blocks: large = DRAM, small = a cache level"),
          "reps": Param(int, 0, min=0, max=MAX_REPS, help="sweeps over the array per call; 0 = about 1 GB or 1e10 FLOPs")},
         "ERT-style in-place sweep with k multiply-adds per element (numba, parallel)",
         validate=_validate, memory=lambda params, threads: 2 * params["mbytes"] * 1e6),
]
