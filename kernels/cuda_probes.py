"""CUDA probes: FMA throughput and copy bandwidth with numba.cuda kernels, and
tensor-core GEMM through torch.matmul.

Without a usable GPU every factory raises Skip; it never reports a figure. The
factories also refuse numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), whose
"timings" mean nothing; the kernels' logic is tested there through the
module-level builders and host wrappers (fma_kernel/run_fma, copy_kernel/run_copy).

numba and torch are imported inside functions: NUMBA_ENABLE_CUDASIM is read when
numba is first imported, and importing this module must not start either library.
"""
from __future__ import annotations

import functools

import numpy as np

from harness.core.registry import Kind, Param
from harness.core.workload import Context, Skip, Workload

FMA_DTYPES = ("float32", "float16")
GEMM_DTYPES = ("fp16", "bf16", "tf32")

# x <- M * x + B with M = 1 and B = 2^-10 adds exactly one unit of 2^-10 per step, so chain
# j (starting at (j + 1) units) ends at exactly (j + 1 + n) units: every step must have run,
# and one skipped step changes the result (as the CPU probe's check does). Exact while the
# units fit the mantissa: fp32 (24 bits) for any sensible n, fp16 (11 bits) only while the
# per-thread sum of the chains stays under 2048 units, which `fma_max_iterations` enforces.
FMA_M = 1.0
FMA_B = 2.0 ** -10
MANTISSA_UNITS = {"float32": 2 ** 24, "float16": 2 ** 11}
DEFAULT_FMA_ITERATIONS = {"float32": 8192, "float16": 0}  # 0: the most fp16 keeps exact


def fma_max_iterations(dtype: str, accumulators: int) -> int:
    """Most iterations whose per-thread sum accumulators x (n + accumulators) stays exact."""
    return MANTISSA_UNITS[dtype] // accumulators - accumulators - 1


def _fma_inputs(dtype: str, accumulators: int):
    """(coef, init) for the FMA kernel. The chains start from different values (j + 1 units)
    read from memory, so the compiler can neither merge them nor fold them to a constant."""
    coef = np.array([FMA_M, FMA_B], dtype=dtype)
    init = np.arange(1, accumulators + 1, dtype=dtype) * np.asarray(FMA_B, dtype=dtype)
    return coef, init


def fma_expected(iterations: int, accumulators: int) -> float:
    """The value each thread writes, exactly: the sum over chains of (j + 1 + n) units."""
    return FMA_B * sum(j + 1 + iterations for j in range(accumulators))


@functools.lru_cache(maxsize=None)
def fma_kernel(dtype: str, accumulators: int):
    """A @cuda.jit kernel fma_chains(coef, init, iterations, out): each thread runs
    `accumulators` independent chains x_j <- fma(coef[0], x_j, coef[1]) for `iterations`
    steps and writes the sum of its chains to out[thread].

    The source is generated so that each chain is its own scalar variable: numba has
    no unroll pragma, and a local array indexed in a loop could be left in local memory.
    """
    if dtype not in FMA_DTYPES:
        raise ValueError(f"dtype must be one of {FMA_DTYPES}; got {dtype!r}")
    if accumulators < 1:
        raise ValueError(f"accumulators must be >= 1; got {accumulators}")
    # float16: numba has scalar fp16 intrinsics only (cuda.fp16.hfma -> fma.rn.f16), no half2.
    fma = "cuda.fp16.hfma" if dtype == "float16" else "cuda.fma"
    chains = [f"x{j}" for j in range(accumulators)]
    if dtype == "float16":
        total = chains[0]
        for name in chains[1:]:
            total = f"cuda.fp16.hadd({total}, {name})"
    else:
        total = " + ".join(chains)
    lines = ["def fma_chains(coef, init, iterations, out):",
             "    m = coef[0]",
             "    b = coef[1]"]
    lines += [f"    {name} = init[{j}]" for j, name in enumerate(chains)]
    lines += ["    for _ in range(iterations):"]
    lines += [f"        {name} = {fma}(m, {name}, b)" for name in chains]
    lines += [f"    out[cuda.grid(1)] = {total}"]
    return _jit("\n".join(lines) + "\n", "fma_chains")


def _jit(source: str, name: str):
    """cuda.jit of the function `name` defined in `source`, with `cuda` as a global:
    the simulator runs kernels as Python and swaps in its fake module only through
    globals, which a closure over a function-local import would not be."""
    from numba import cuda

    namespace = {"cuda": cuda}
    exec(compile(source, f"<cuda_probes {name}>", "exec"), namespace)
    return cuda.jit(namespace[name])


def run_fma(dtype: str, blocks: int, threads: int, iterations: int, accumulators: int = 8):
    """Launches the FMA kernel once and returns each thread's output (NaN where a
    thread wrote nothing)."""
    from numba import cuda

    coef, init = _fma_inputs(dtype, accumulators)
    out = cuda.to_device(np.full(blocks * threads, np.nan, dtype=dtype))
    fma_kernel(dtype, accumulators)[blocks, threads](
        cuda.to_device(coef), cuda.to_device(init), iterations, out)
    return out.copy_to_host()


COPY_SOURCE = """
def grid_stride_copy(src, dst):
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = src[i]
"""


@functools.lru_cache(maxsize=None)
def copy_kernel():
    """A @cuda.jit grid-stride copy kernel grid_stride_copy(src, dst), any element type."""
    return _jit(COPY_SOURCE, "grid_stride_copy")


def run_copy(src, blocks: int, threads: int):
    """Copies the host array `src` on the device with the copy kernel and returns the copy."""
    from numba import cuda

    d_src = cuda.to_device(src)
    d_dst = cuda.to_device(np.zeros_like(src))
    copy_kernel()[blocks, threads](d_src, d_dst)
    return d_dst.copy_to_host()


def numba_event_timer(cuda):
    """device_timer for numba launches: CUDA events on the default stream, which is
    where numba launches kernels when no stream is given."""

    def timer(fn, number: int) -> float:
        start, end = cuda.event(), cuda.event()
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3  # ms -> s

    return timer


def torch_event_timer(torch):
    """device_timer for torch work on the current stream."""

    def timer(fn, number: int) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3  # ms -> s

    return timer


def _numba_gpu():
    """numba.cuda, or Skip when there is no real GPU for it."""
    from numba import config, cuda

    if config.ENABLE_CUDASIM:
        raise Skip("no CUDA GPU: the numba CUDA simulator is active (NUMBA_ENABLE_CUDASIM=1), "
                   "and its timings mean nothing")
    if not cuda.is_available():
        error = cuda.cuda_error()  # None when the driver loaded but libNVVM was not found
        why = " ".join(str(error).split()) if error else "libNVVM (CUDA toolkit) not found"
        raise Skip(f"no CUDA GPU: numba.cuda.is_available() is False ({why})")
    return cuda


def torch_gpu():
    """torch, or Skip when it has no CUDA device."""
    import torch

    if not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise Skip(f"no CUDA GPU: torch.cuda.is_available() is False (torch {torch.__version__}, {built})")
    return torch


def _numba_device_info(cuda) -> dict:
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
    return {"device": name, "compute_capability": list(dev.compute_capability),
            "sm_count": dev.MULTIPROCESSOR_COUNT, "timer": "CUDA events (numba)"}


def cuda_fma(params: dict, ctx: Context) -> Workload:
    cuda = _numba_gpu()
    dtype, acc = params["dtype"], params["accumulators"]
    iterations = params["iterations"] or min(DEFAULT_FMA_ITERATIONS[dtype] or 10 ** 9,
                                             fma_max_iterations(dtype, acc))
    info = _numba_device_info(cuda)
    blocks = info["sm_count"] * params["blocks_per_sm"]
    threads = params["threads"]
    kernel = fma_kernel(dtype, acc)[blocks, threads]
    coef, init = (cuda.to_device(a) for a in _fma_inputs(dtype, acc))
    out = cuda.to_device(np.full(blocks * threads, np.nan, dtype=dtype))

    def fn():
        kernel(coef, init, iterations, out)

    fn()  # compiles and loads the kernel here, not in the timed warm-up
    cuda.synchronize()

    def check():
        got = out.copy_to_host().astype(np.float64)
        expect = fma_expected(iterations, acc)
        bad = got != expect  # exact: one skipped step on one chain changes it (and NaN != anything)
        if bad.any():
            raise AssertionError(f"{int(bad.sum())} of {got.size} threads differ from the closed form "
                                 f"{expect}: first {got[bad][:4].tolist()}")

    info.update({
        "dtype": dtype, "accumulators": acc, "iterations": iterations,
        "blocks": blocks, "threads_per_block": threads, "threads": blocks * threads,
        "instruction": ("cuda.fp16.hfma: scalar HFMA; numba exposes no half2 (HFMA2), so this "
                        "reaches at most half the packed-fp16 peak") if dtype == "float16"
                       else "cuda.fma: FFMA",
        "flops_accounting": "threads x iterations x accumulators x 2; the final per-thread sum "
                            "of the chains is not counted",
    })
    return Workload(fn=fn, flops=2.0 * blocks * threads * iterations * acc, check=check,
                    info=info, device_timer=numba_event_timer(cuda))


def cuda_copy(params: dict, ctx: Context) -> Workload:
    n = int(params["mbytes"] * 1e6) // 4  # 4-byte elements
    info = {"impl": params["impl"], "elements": n, "element_bytes": 4, "array_bytes": 4 * n,
            "bytes_accounting": "2 x array size per call: src read once + dst written once"}

    if params["impl"] == "torch":
        torch = torch_gpu()
        src = torch.arange(n, dtype=torch.int32, device="cuda")
        dst = torch.zeros_like(src)  # zeroed, so a copy that did nothing fails check

        def fn():
            dst.copy_(src)

        def check():
            dst.zero_()  # clear, then one more call: the call itself must do the copy
            fn()
            torch.cuda.synchronize()
            if not torch.equal(dst, src):
                raise AssertionError("torch copy_: dst differs from src")

        sync, timer = torch.cuda.synchronize, torch_event_timer(torch)
        info.update({"device": torch.cuda.get_device_name(), "timer": "CUDA events (torch)",
                     "kernel": "torch.Tensor.copy_ (int32 elements)"})
    else:
        cuda = _numba_gpu()
        info.update(_numba_device_info(cuda))
        blocks = info["sm_count"] * params["blocks_per_sm"]
        src = cuda.to_device(np.arange(n, dtype=np.uint32))
        dst = cuda.to_device(np.zeros(n, dtype=np.uint32))
        kernel = copy_kernel()[blocks, params["threads"]]

        def fn():
            kernel(src, dst)

        def check():
            dst.copy_to_device(np.zeros(n, dtype=np.uint32))  # clear, then one more call
            fn()
            cuda.synchronize()
            if not np.array_equal(dst.copy_to_host(), np.arange(n, dtype=np.uint32)):
                raise AssertionError("numba grid-stride copy: dst differs from src")

        sync, timer = cuda.synchronize, numba_event_timer(cuda)
        info.update({"blocks": blocks, "threads_per_block": params["threads"],
                     "kernel": "numba grid-stride copy (uint32 elements)"})

    fn()  # compile / first launch outside the timed region
    sync()
    return Workload(fn=fn, bytes=2.0 * 4 * n, check=check, info=info, device_timer=timer)


def cuda_gemm(params: dict, ctx: Context) -> Workload:
    torch = torch_gpu()
    n, name = params["n"], params["dtype"]
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "tf32": torch.float32}[name]
    matmul_flags = torch.backends.cuda.matmul
    previous_tf32 = matmul_flags.allow_tf32
    matmul_flags.allow_tf32 = name == "tf32"  # process-wide; restored in teardown

    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(n, n, device="cuda", dtype=dtype, generator=gen)
    b = torch.randn(n, n, device="cuda", dtype=dtype, generator=gen)
    c = torch.empty(n, n, device="cuda", dtype=dtype)

    def fn():
        torch.matmul(a, b, out=c)

    fn()  # cuBLAS handle, workspace and heuristics outside the timed region
    torch.cuda.synchronize()

    def check():
        c.fill_(float("nan"))  # clear, then one more call: the call itself must compute C
        fn()
        torch.cuda.synchronize()
        # Entries of C have standard deviation sqrt(n); the error scales with eps * sqrt(n).
        rows = torch.tensor([0, n // 3, n // 2, n - 1], device="cuda")
        expect = a[rows].double() @ b.double()
        err = (c[rows].double() - expect).abs().max().item()
        tol = {"fp16": 1e-2, "bf16": 5e-2, "tf32": 1e-2}[name] * n**0.5
        if not err <= tol:
            raise AssertionError(f"{name} matmul differs from a float64 reference by {err:.3g} > {tol:.3g}")

    def teardown():
        matmul_flags.allow_tf32 = previous_tf32

    if name == "tf32":
        precision = ("float32 inputs with torch.backends.cuda.matmul.allow_tf32=True: tensor cores "
                     "round the inputs to TF32 (10-bit mantissa) and accumulate in float32")
    else:
        flag = f"allow_{name}_reduced_precision_reduction"
        precision = f"{name} inputs and output; torch.backends.cuda.matmul.{flag}={getattr(matmul_flags, flag)}"
    info = {"n": n, "dtype": name, "torch_dtype": str(dtype).removeprefix("torch."),
            "precision": precision, "device": torch.cuda.get_device_name(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "timer": "CUDA events (torch)",
            "bytes_accounting": "A + B + C once each", "flops_accounting": "2 n^3"}
    return Workload(fn=fn, flops=2.0 * n**3, bytes=3.0 * n * n * a.element_size(), check=check,
                    info=info, teardown=teardown, device_timer=torch_event_timer(torch))


_GRID = {
    "blocks_per_sm": Param(int, 8, min=1, max=64, help="blocks per SM; grid = SM count x this"),
    "threads": Param(int, 256, choices=(64, 128, 256, 512, 1024), help="threads per block"),
}

def _validate_fma(params: dict) -> None:
    most = fma_max_iterations(params["dtype"], params["accumulators"])
    if params["iterations"] > most:
        raise ValueError(f"iterations: at most {most} for {params['dtype']} with {params['accumulators']} "
                         "accumulators, or the exact result check would overflow the mantissa")


KINDS = [
    Kind("probe.cuda_fma", "kernels.cuda_probes:cuda_fma",
         {"dtype": Param(str, "float32", choices=FMA_DTYPES),
          "accumulators": Param(int, 8, min=1, max=32, help="independent FMA chains per thread (ILP)"),
          "iterations": Param(int, 0, min=0, max=1_000_000_000,
                              help="FMA steps per chain per launch; 0 = 8192 for fp32, "
                              "the most that keeps the fp16 check exact"),
          **_GRID},
         "numba.cuda FMA throughput: independent FMA chains per thread, checked against a closed form",
         validate=_validate_fma),
    Kind("probe.cuda_copy", "kernels.cuda_probes:cuda_copy",
         {"mbytes": Param(float, 1000.0, min=0.004, max=8000.0, help="array size in MB (1e6 B)"),
          "impl": Param(str, "numba", choices=("numba", "torch")),
          **_GRID},
         "device-to-device copy bandwidth: numba grid-stride kernel or torch copy_"),
    Kind("probe.cuda_gemm", "kernels.cuda_probes:cuda_gemm",
         {"n": Param(int, 8192, min=16, max=65536, help="square matrix size"),
          "dtype": Param(str, "fp16", choices=GEMM_DTYPES)},
         "tensor-core GEMM C = A @ B through torch.matmul into a preallocated C"),
]
