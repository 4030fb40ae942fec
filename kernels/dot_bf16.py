"""Peak bf16 FLOP/s: AVX512-BF16's dot-product instruction, vdpbf16ps.

Why a probe of its own: oneDNN runs bf16 convolutions and GEMMs on vdpbf16ps, which does
two bf16 multiply-adds per fp32 lane, so a bf16 op can run well above the fp32 FMA roof
(measured here: a bf16 conv at 141% of it). Without this ceiling bf16 ops would be judged
against the wrong roof.

The kernel is LLVM IR like kernels/fma.py's: 16 independent zmm accumulators, each
`acc = vdpbf16ps(acc, a, b)` per iteration, which computes per fp32 lane
acc + a[2i] * b[2i] + a[2i+1] * b[2i+1]. FLOPs per instruction: 16 lanes x 2 products x 2
(a multiply-add is 2 FLOPs) = 64, whatever the values.

The check is exact: a = (1, 0) and b = (2^-k, 0) in every pair, so each step adds exactly
2^-k to every lane (bf16 products are exact in fp32); after n steps lane j of accumulator i
holds (start + n) x 2^-k, and one skipped step changes it.
"""
from __future__ import annotations

import ctypes
import math
import struct
import threading

from harness.core.registry import Kind, Param
from harness.core.workload import Context, Skip, Workload
from kernels.fma import chains_loop_ir, check_chains
from kernels.jit import PinnedThreads, compile_ir, host_features, thread_cpus

ACCUMULATORS = 16
LANES = 16  # fp32 lanes of a zmm register
FLOPS_PER_INSTRUCTION = LANES * 2 * 2
DEFAULT_ITERATIONS = 1_000_000
MAX_ITERATIONS = 2 ** 24 - ACCUMULATORS * LANES - 1  # every step exact in fp32


def kernel_ir() -> str:
    """`void bf16_dot_kernel(i64 n, float* init, bf16* a, bf16* b, float* out)`."""
    vec, pair = "<16 x float>", "<32 x bfloat>"
    lines = [f"declare {vec} @llvm.x86.avx512bf16.dpbf16ps.512({vec}, {pair}, {pair})", "",
             "define void @bf16_dot_kernel(i64 %n, ptr %init, ptr %pa, ptr %pb, ptr %out) {",
             "entry:",
             f"  %va = load {pair}, ptr %pa, align 2",
             f"  %vb = load {pair}, ptr %pb, align 2"]

    def step(k: int) -> list[str]:
        return [f"  %d{k} = call {vec} @llvm.x86.avx512bf16.dpbf16ps.512({vec} %c{k}, {pair} %va, {pair} %vb)"]

    return "\n".join(lines + chains_loop_ir(vec, ACCUMULATORS, 4, step))


def _bf16_bits(value: float) -> int:
    """bf16 is the top half of an fp32; exact for the powers of two used here."""
    return struct.unpack("<I", struct.pack("<f", value))[0] >> 16


_compiled = None
_lock = threading.Lock()


def compile_kernel():
    """(compiled module, ctypes function), built once; Skip where the CPU lacks AVX512-BF16."""
    global _compiled
    if not host_features().get("avx512bf16"):
        raise Skip("this CPU has no AVX512-BF16 (vdpbf16ps): no bf16 dot-product peak to measure")
    with _lock:
        if _compiled is None:
            compiled = compile_ir(kernel_ir())  # the host's own features
            proto = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                     ctypes.c_void_p, ctypes.c_void_p)  # releases the GIL
            _compiled = (compiled, proto(compiled.address("bf16_dot_kernel")))
        return _compiled


class DotRun:
    """One thread's buffers for the kernel, and the exact check of its output."""

    def __init__(self, iterations: int):
        self.iterations = iterations
        self.func = compile_kernel()[1]
        count = ACCUMULATORS * LANES
        self.start_steps = [1 + i for i in range(count)]  # distinct, so no chains merge
        self.b = 2.0 ** -math.ceil(math.log2(count + iterations))
        self.init = (ctypes.c_float * count)(*(s * self.b for s in self.start_steps))
        self.out = (ctypes.c_float * count)()
        pairs = 2 * LANES
        self.a = (ctypes.c_uint16 * pairs)(*[_bf16_bits(1.0) if i % 2 == 0 else 0 for i in range(pairs)])
        self.bv = (ctypes.c_uint16 * pairs)(*[_bf16_bits(self.b) if i % 2 == 0 else 0 for i in range(pairs)])
        self._args = (ctypes.c_int64(iterations), ctypes.cast(self.init, ctypes.c_void_p),
                      ctypes.cast(self.a, ctypes.c_void_p), ctypes.cast(self.bv, ctypes.c_void_p),
                      ctypes.cast(self.out, ctypes.c_void_p))

    def __call__(self) -> None:
        self.func(*self._args)

    def check(self) -> None:
        check_chains(self.out, self.start_steps, self.iterations, self.b, "bf16 dot")


def bf16_dot(params: dict, ctx: Context) -> Workload:
    iterations = params["iterations"]
    compiled = compile_kernel()[0]
    cpus = thread_cpus(ctx)
    runs = [DotRun(iterations) for _ in cpus]
    team = PinnedThreads(cpus, lambda i: runs[i]())
    flops = float(len(cpus) * iterations * ACCUMULATORS * FLOPS_PER_INSTRUCTION)

    def check():
        for run in runs:
            run.check()

    return Workload(
        fn=team.run, flops=flops, check=check, teardown=team.close,
        metrics=lambda median_s: {"gflops": flops / median_s / 1e9},
        info={"isa": "avx512_bf16", "dtype": "bfloat16", "instruction": "vdpbf16ps zmm",
              "accumulators": ACCUMULATORS, "flops_per_instruction": FLOPS_PER_INSTRUCTION,
              "flops_accounting": "16 fp32 lanes x 2 bf16 products x 2 per instruction",
              "iterations": iterations, "threads": len(cpus), "cpus": cpus,
              "affinity_obtained": team.affinity, "llvm_cpu": compiled.cpu})


def assembly() -> str:
    return compile_kernel()[0].assembly()


KINDS = [
    Kind("probe.bf16_dot", "kernels.dot_bf16:bf16_dot",
         {"iterations": Param(int, DEFAULT_ITERATIONS, min=1, max=MAX_ITERATIONS,
                              help="loop iterations per thread per call (each: one vdpbf16ps per accumulator)")},
         "peak bf16 FLOP/s: AVX512-BF16 dot products (vdpbf16ps) in registers, one pinned thread per CPU"),
]
