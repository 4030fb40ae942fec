"""Peak floating-point throughput: independent FMA chains at one instruction-set level.

The kernel is written in LLVM IR with explicit types -- `<16 x float>` for a 512-bit
register, `<8 x float>` for 256, `<4 x float>` for 128, plain `float` for scalar -- and
compiled by llvmlite (the LLVM that Numba ships) for the host CPU with the features of
every wider extension switched off. So the level is forced twice over: the IR only has
values of that width, and the TargetMachine could not use a wider register even if an
optimisation wanted one. No IR optimisation passes run (so the SLP vectoriser cannot
merge scalar chains); only instruction selection and register allocation at -O3.
`fma_assembly()` returns the machine code, and the tests read it.

Levels (x86-64):
  avx512  512-bit zmm, host features as detected (needs avx512f).
  avx2    256-bit ymm; avx512*/avx10/amx switched off (needs avx2).
  sse     128-bit xmm; avx512*/avx10/amx and avx2 (and what implies it) switched off. SSE has no FMA
          instruction: where the CPU has FMA3 this level runs the VEX-encoded 128-bit
          `vfmadd...ps/pd xmm` (FMA3 is architecturally tied to AVX encoding), else it runs
          `mulps` + `addps`. Either way one multiply-add counts 2 FLOPs; info["op"] says which.
  scalar  one element per instruction (`vfmadd...ss/sd`, or mulss+addss without FMA3),
          same features as sse.
Levels (AArch64): scalar and neon (128-bit `fmla`); other levels raise Skip.
"best" is the widest level the host has.

Each accumulator runs acc = acc * a + b with a = 1.0 and b = 2**-k, both passed at run
time (LLVM cannot know a is 1; FMA units take the same time for any normal operands).
Chain i starts at (i + 1) * b and every step is exact while acc stays below 2**p * b
(p = 24 mantissa bits for fp32, 53 for fp64), so after n steps every lane must equal
(i + 1 + n) * b bit for bit; k is chosen so that lies in (0.5, 1]: no overflow, no
denormals, and a kernel that skipped a single step fails the check. fp32 therefore takes
at most MAX_ITERATIONS_FP32 iterations per call.

Accumulators: 16 where the level has 32 architectural vector registers (AVX-512, AArch64),
12 where it has 16 (so the two broadcast operands fit beside them without spills). Either
exceeds FMA latency x FMA pipes (4 x 2 on Zen 4/5 and recent Intel cores), which is what
hides the latency.

Threads: ctx.threads Python threads, each pinned to one CPU of ctx.cpus with
os.sched_setaffinity(0, {cpu}) from inside itself (Linux pins the calling thread); the
compiled function is called through ctypes, which releases the GIL, so the threads run
in parallel. One Workload.fn call releases all threads through a barrier, each runs
`iterations` once, and fn returns when all have finished.
"""
from __future__ import annotations

import ctypes
import math
import statistics
import threading
import time

from harness.core import isa as isa_levels
from harness.core.registry import Kind, Param
from harness.core.workload import Context, Workload
from kernels.frequency import measure_ghz, time_chain
from kernels.jit import (Compiled, PinnedThreads, compile_ir, has_fma_instruction, host_arch, host_features,
                         level_features, llvm_binding, resolve_isa, run_pinned, thread_cpus)

ISAS = (*isa_levels.X86_LEVELS, "neon", "best")  # the levels this kernel is written for
DTYPES = ("float32", "float64")
MAX_ITERATIONS_FP32 = 16_000_000  # every fp32 step stays exact below 2**24 steps in all
_MANTISSA_BITS = {"float32": 24, "float64": 53}
DEFAULT_ITERATIONS = 1_000_000  # ~1.5-5 ms per call at one thread on a ~3.5 GHz core
MAX_ITERATIONS = 10_000_000_000  # ~15-50 s per call: past it a typo, not a plan

# --------------------------------------------------------------------------- counting

def _itemsize(dtype: str) -> int:
    return {"float32": 4, "float64": 8}[dtype]


def lanes(isa: str, dtype: str) -> int:
    bits = isa_levels.VECTOR_BITS[isa]
    return 1 if bits is None else bits // (8 * _itemsize(dtype))


def accumulators(isa: str) -> int:
    """Independent chains: as many as the register file holds beside the two operands."""
    wide_file = isa == "avx512" or (isa in isa_levels.ARM_LEVELS and host_arch() in ("aarch64", "arm64"))
    return 16 if wide_file else 12


def flops_per_instruction(isa: str, dtype: str) -> int:
    """FLOPs one FMA instruction of this level does: lanes x 2."""
    return 2 * lanes(isa, dtype)


def flops_per_iteration(isa: str, dtype: str) -> int:
    """FLOPs one loop iteration of the kernel does: accumulators x lanes x 2."""
    return accumulators(isa) * flops_per_instruction(isa, dtype)


def flops_per_call(threads: int, iterations: int, isa: str, dtype: str) -> float:
    """threads x iterations x accumulators x lanes x 2."""
    return float(threads * iterations * flops_per_iteration(isa, dtype))


# --------------------------------------------------------------------------- the kernel

def kernel_ir(isa: str, dtype: str, fused: bool = True) -> str:
    """LLVM IR of `void fma_kernel(i64 n, T* init, T a, T b, T* out)`.

    Loads `accumulators` vectors from init, runs acc = acc * a + b n times on each
    (independent chains), stores them to out."""
    elem = {"float32": "float", "float64": "double"}[dtype]
    n_lanes, n_acc = lanes(isa, dtype), accumulators(isa)
    vec = elem if n_lanes == 1 else f"<{n_lanes} x {elem}>"
    suffix = ("f32" if elem == "float" else "f64") if n_lanes == 1 else \
        f"v{n_lanes}{'f32' if elem == 'float' else 'f64'}"
    lines = [f"declare {vec} @llvm.fma.{suffix}({vec}, {vec}, {vec})", "",
             f"define void @fma_kernel(i64 %n, ptr %init, {elem} %a, {elem} %b, ptr %out) {{",
             "entry:"]
    if n_lanes == 1:
        va, vb = "%a", "%b"
    else:
        lines += [f"  %a0 = insertelement {vec} poison, {elem} %a, i32 0",
                  f"  %va = shufflevector {vec} %a0, {vec} poison, <{n_lanes} x i32> zeroinitializer",
                  f"  %b0 = insertelement {vec} poison, {elem} %b, i32 0",
                  f"  %vb = shufflevector {vec} %b0, {vec} poison, <{n_lanes} x i32> zeroinitializer"]
        va, vb = "%va", "%vb"
    def step(k: int) -> list[str]:
        if fused:
            return [f"  %d{k} = call {vec} @llvm.fma.{suffix}({vec} %c{k}, {vec} {va}, {vec} {vb})"]
        # no FMA instruction: a separate multiply and add, never contracted
        return [f"  %m{k} = fmul {vec} %c{k}, {va}", f"  %d{k} = fadd {vec} %m{k}, {vb}"]

    return "\n".join(lines + chains_loop_ir(vec, n_acc, _itemsize(dtype), step))


def chains_loop_ir(vec: str, n_acc: int, align: int, step) -> list[str]:
    """The body shared by the register-peak kernels: load `n_acc` accumulators of type `vec`
    from %init, run step(k) (which turns %c{k} into %d{k}) on each, %n times, store them to
    %out, and return. The caller writes the declarations and the entry block above it."""
    lines = []
    for k in range(n_acc):
        lines += [f"  %pi{k} = getelementptr {vec}, ptr %init, i64 {k}",
                  f"  %i{k} = load {vec}, ptr %pi{k}, align {align}"]
    lines += ["  %empty = icmp sle i64 %n, 0",
              "  br i1 %empty, label %exit, label %loop", "", "loop:",
              "  %j = phi i64 [0, %entry], [%j1, %loop]"]
    lines += [f"  %c{k} = phi {vec} [%i{k}, %entry], [%d{k}, %loop]" for k in range(n_acc)]
    for k in range(n_acc):
        lines += step(k)
    lines += ["  %j1 = add i64 %j, 1",
              "  %more = icmp slt i64 %j1, %n",
              "  br i1 %more, label %loop, label %exit", "", "exit:"]
    lines += [f"  %r{k} = phi {vec} [%i{k}, %entry], [%d{k}, %loop]" for k in range(n_acc)]
    for k in range(n_acc):
        lines += [f"  %po{k} = getelementptr {vec}, ptr %out, i64 {k}",
                  f"  store {vec} %r{k}, ptr %po{k}, align {align}"]
    return lines + ["  ret void", "}", ""]


_cache: dict[tuple[str, str], tuple[Compiled, object]] = {}
_cache_lock = threading.Lock()


def compile_kernel(isa: str, dtype: str) -> tuple[Compiled, object]:
    """(compiled module, ctypes function) for a level; the level is not checked against the host."""
    key = (isa, dtype)
    with _cache_lock:
        if key not in _cache:
            compiled = compile_ir(kernel_ir(isa, dtype, fused=has_fma_instruction(isa)),
                                  level_features(isa))
            ctype = ctypes.c_float if dtype == "float32" else ctypes.c_double
            proto = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctype, ctype,
                                     ctypes.c_void_p)  # CFUNCTYPE: the GIL is released during the call
            _cache[key] = (compiled, proto(compiled.address("fma_kernel")))
        return _cache[key]


def fma_assembly(isa: str, dtype: str) -> str:
    """The machine code (AT&T syntax on x86) the kernel compiles to at this level.
    Raises Skip for a level the host lacks (LLVM would quietly split the wide vectors)."""
    return compile_kernel(resolve_isa(isa), dtype)[0].assembly()


class FmaRun:
    """One thread's buffers and constants for the kernel, and the exact check of its output."""

    def __init__(self, isa: str, dtype: str, iterations: int):
        self.isa, self.dtype, self.iterations = isa, dtype, iterations
        self.func = compile_kernel(isa, dtype)[1]
        ctype = ctypes.c_float if dtype == "float32" else ctypes.c_double
        count = accumulators(isa) * lanes(isa, dtype)
        # Distinct start values, so no two chains are the same computation (which LLVM could merge).
        self.start_steps = [1 + i for i in range(count)]
        last = count + iterations
        if last >= 2 ** _MANTISSA_BITS[dtype]:
            raise ValueError(f"iterations: {iterations} is too many for {dtype}: "
                             f"the check needs every step exact")
        self.b = 2.0 ** -math.ceil(math.log2(last))  # the largest value is (0.5, 1]
        self.init = (ctype * count)(*(s * self.b for s in self.start_steps))
        self.out = (ctype * count)()
        self._args = (ctypes.c_int64(iterations), ctypes.cast(self.init, ctypes.c_void_p),
                      ctype(1.0), ctype(self.b), ctypes.cast(self.out, ctypes.c_void_p))

    def __call__(self) -> None:
        self.func(*self._args)

    def check(self) -> None:
        check_chains(self.out, self.start_steps, self.iterations, self.b, f"{self.isa}/{self.dtype} FMA")


def check_chains(out, start_steps, iterations: int, b: float, label: str) -> None:
    """Each chain started at start_steps[k] units of b and must have taken exactly
    `iterations` exact steps of b: one skipped (or dead-code-eliminated) step fails."""
    for k, (steps, got) in enumerate(zip(start_steps, out)):
        expect = (steps + iterations) * b
        if got != expect:
            raise AssertionError(f"{label} chain {k}: got {got!r}, expected {expect!r} "
                                 f"({iterations} exact steps of {b!r})")


# --------------------------------------------------------------------------- the case

def fma_throughput(params: dict, ctx: Context) -> Workload:
    dtype, iterations = params["dtype"], params["iterations"]
    isa = resolve_isa(params["isa"])
    cpus = thread_cpus(ctx)
    runs = [FmaRun(isa, dtype, iterations) for _ in cpus]
    team = PinnedThreads(cpus, lambda i: runs[i]())
    flops = flops_per_call(len(cpus), iterations, isa, dtype)
    compiled = compile_kernel(isa, dtype)[0]
    fused = has_fma_instruction(isa)

    def check():
        for run in runs:
            run.check()

    def metrics(median_s: float) -> dict:
        # The clock right after the timed loop, on the first thread's core: Zen keeps
        # its clock under AVX-512, but a CPU with AVX frequency licences recovers within
        # milliseconds, so on those this reads high (see `harness throttle` for under-load).
        ghz = run_pinned(cpus[0], lambda: measure_ghz(seconds=0.03))
        per_thread = flops / len(cpus) / median_s
        return {"gflops": flops / median_s / 1e9,
                "gflops_per_thread": per_thread / 1e9,
                "ghz_after": ghz,
                "flops_per_cycle_per_core": per_thread / (ghz * 1e9)}

    info = {
        "isa": isa, "dtype": dtype, "lanes": lanes(isa, dtype), "vector_bits": isa_levels.VECTOR_BITS[isa],
        "accumulators": accumulators(isa), "iterations": iterations, "threads": len(cpus),
        "op": "fma" if fused else "mul+add",
        "flops_per_instruction": flops_per_instruction(isa, dtype),
        "flops_per_iteration": flops_per_iteration(isa, dtype),
        "forced_by": "llvmlite TargetMachine for the host CPU with wider extensions "
                     "switched off; IR values of exactly this width",
        "llvm_cpu": compiled.cpu,
        "features_off": sorted(f[1:] for f in compiled.features.split(",")
                               if f.startswith("-") and host_features().get(f[1:])),
        "cpus": cpus, "affinity_obtained": team.affinity,
        "llvm": ".".join(map(str, llvm_binding().llvm_version_info)),
    }
    return Workload(fn=team.run, flops=flops, check=check, info=info, metrics=metrics,
                    teardown=team.close)


def flops_per_cycle(isa: str, dtype: str, cpu: int | None = None, seconds: float = 0.4) -> float:
    """FLOPs per clock cycle one core attains with this kernel -- measured, not a table value.

    Alternates a ~1 ms FMA run with a ~0.3 ms add chain on the same core and divides each
    run's FLOP/s by the clock read right after it (the clock drifts by a few percent between
    seconds, so the two must be paired); returns the median of the second half (the first
    settles the clock, which takes about 0.2 s)."""
    isa = resolve_isa(isa)

    def body():
        run = FmaRun(isa, dtype, 100_000 if lanes(isa, dtype) > 1 else 300_000)
        flops = flops_per_call(1, run.iterations, isa, dtype)
        start = time.perf_counter()
        ratios = []
        while (now := time.perf_counter()) < start + seconds or len(ratios) < 2:
            run()
            elapsed = time.perf_counter() - now
            ghz = time_chain(1_000_000)
            ratios.append(flops / elapsed / (ghz * 1e9))
        run.check()
        return statistics.median(ratios[len(ratios) // 2:])  # the first half settles the clock
    return run_pinned(cpu, body)


def _validate(params: dict) -> None:
    if params["dtype"] == "float32" and params["iterations"] > MAX_ITERATIONS_FP32:
        raise ValueError(f"iterations: at most {MAX_ITERATIONS_FP32} for float32 "
                         "(the result check needs every step exact)")


KINDS = [
    Kind("probe.fma", "kernels.fma:fma_throughput",
         {"dtype": Param(str, "float32", choices=DTYPES),
          "isa": Param(str, "best", choices=ISAS,
                       help="instruction-set level; 'best' = widest the CPU has"),
          "iterations": Param(int, DEFAULT_ITERATIONS, min=1, max=MAX_ITERATIONS,
                              help="loop iterations per thread per call (each: one FMA per accumulator)")},
         "peak FLOP/s: independent FMA chains in registers at one instruction-set level, "
         "one pinned thread per CPU",
         validate=_validate),
]
