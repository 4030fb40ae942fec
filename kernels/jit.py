"""The JIT and the pinned threads the register-level probes share (FMA, bf16 dot, the add
chain that reads the clock).

Kernels are written in LLVM IR and compiled by llvmlite (the LLVM that Numba ships) for the
host CPU with a chosen feature string, so a probe can force an instruction-set level: the
TargetMachine cannot use a register wider than the features allow. No IR optimisation
passes run (the vectorisers must not widen a scalar level); codegen runs at -O3.

Threads: Python threads, each pinned to one CPU with os.sched_setaffinity(0, {cpu}) from
inside itself (Linux pins the calling thread); compiled functions are called through
ctypes, which releases the GIL, so the threads run in parallel.

llvmlite is imported inside functions (deferred on purpose: validating a suite must not start LLVM).
"""
from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass

from harness.core import isa as isa_levels
from harness.core.workload import Context, Skip

# LLVM feature-name prefixes each x86 level adds over the level below it: forcing a level
# switches off every prefix of the levels above it.
_LLVM_PREFIXES = {"scalar": (), "sse": (), "avx2": ("avx2",), "avx512": ("avx512", "avx10", "amx", "evex512")}
_WIDER_THAN = {level: tuple(p for wider in isa_levels.X86_LEVELS[i + 1:] for p in _LLVM_PREFIXES[wider])
               for i, level in enumerate(isa_levels.X86_LEVELS)}


def llvm_binding():
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()  # for the inline assembly of the add chain
    return llvm


@functools.lru_cache(maxsize=None)
def host_arch() -> str:
    """'x86_64', 'aarch64', or whatever else LLVM reports for this process."""
    return llvm_binding().get_process_triple().split("-")[0]


def host_features() -> dict[str, bool]:
    """The CPU features LLVM detected (it also checks the OS saves the wider registers)."""
    return dict(_host_features())


@functools.lru_cache(maxsize=None)
def _host_features() -> tuple:
    return tuple(llvm_binding().get_host_cpu_features().items())


def level_features(isa: str) -> str:
    """LLVM feature string for a level: the host's features, wider extensions switched off."""
    off = _WIDER_THAN.get(isa, ())
    features = sorted(host_features().items())
    keep = [name for name, on in features if on and not name.startswith(off)]
    drop = [name for name, on in features if not (on and not name.startswith(off))]
    # Switch-offs go last: LLVM applies features in order and switching one off also
    # switches off everything that implies it (e.g. -avx2 takes avxvnni with it).
    return ",".join(["+" + name for name in keep] + ["-" + name for name in drop])


@dataclass
class Compiled:
    """A JIT-compiled module: keep it referenced while its functions may be called."""

    engine: object
    target_machine: object
    module: object
    cpu: str
    features: str

    def address(self, name: str) -> int:
        return self.engine.get_function_address(name)

    def assembly(self) -> str:
        return self.target_machine.emit_assembly(self.module)


def compile_ir(ir: str, features: str | None = None) -> Compiled:
    """Compiles LLVM IR for the host CPU with the given feature string (None: host's own).

    No IR optimisation pipeline runs: the IR is written the way it should execute, and
    the vectorisers must not widen the scalar level. Codegen runs at -O3."""
    llvm = llvm_binding()
    cpu = llvm.get_host_cpu_name()
    if features is None:
        features = llvm.get_host_cpu_features().flatten()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    tm = target.create_target_machine(cpu=cpu, features=features, opt=3, jit=True)
    module = llvm.parse_assembly(ir)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(tm.target_data)
    module.verify()
    engine = llvm.create_mcjit_compiler(module, tm)
    engine.finalize_object()
    return Compiled(engine, tm, module, cpu, features)



# --------------------------------------------------------------------------- levels

def supported_levels() -> list[str]:
    """The levels this CPU (and OS) can run, narrow to wide: isa.KEY_FLAG's flag for each,
    as LLVM detected it (LLVM also checks that the OS saves the wider registers)."""
    arch = host_arch()
    if arch == "x86_64":
        f = host_features()
        return [lvl for lvl in isa_levels.X86_LEVELS if lvl == "scalar" or f.get(isa_levels.KEY_FLAG[lvl])]
    if arch in ("aarch64", "arm64"):
        return list(isa_levels.ARM_LEVELS[:2])  # SVE kernels are not written yet
    return ["scalar"]


def resolve_isa(isa: str) -> str:
    """Maps 'best' to the widest level; raises Skip for a level the host lacks."""
    levels = supported_levels()
    if isa == "best":
        return levels[-1]
    if isa not in levels:
        raise Skip(f"instruction-set level {isa!r} is not available on this "
                   f"{host_arch()} CPU (available: {', '.join(levels)})")
    return isa


def has_fma_instruction(isa: str) -> bool:
    """Whether the level runs a fused multiply-add instruction (else mul + add)."""
    if host_arch() in ("aarch64", "arm64"):
        return True  # fmadd/fmla are base AArch64
    return bool(host_features().get("fma"))



# --------------------------------------------------------------------------- threads

class PinnedThreads:
    """Persistent threads, one per CPU in `cpus`, each pinned to its CPU; run() makes each
    call work(index) once, all released together, and returns when all are done."""

    def __init__(self, cpus: list[int], work):
        self.cpus, self.work = list(cpus), work
        n = len(self.cpus)
        self._start, self._done = threading.Barrier(n + 1), threading.Barrier(n + 1)
        ready = threading.Barrier(n + 1)
        self._stop = False
        self.errors: list[BaseException] = []
        self.affinity: list[list[int] | None] = [None] * n
        self._threads = [threading.Thread(target=self._loop, args=(i, ready), daemon=True,
                                          name=f"pinned-{cpu}") for i, cpu in enumerate(self.cpus)]
        for t in self._threads:
            t.start()
        ready.wait()  # every thread has pinned itself
        if self.errors:
            self.close()
            raise self.errors[0]

    def _loop(self, i: int, ready: threading.Barrier) -> None:
        try:
            os.sched_setaffinity(0, {self.cpus[i]})  # 0 = the calling thread on Linux
            self.affinity[i] = sorted(os.sched_getaffinity(0))
        except BaseException as exc:  # noqa: BLE001 -- reported by the constructor
            self.errors.append(exc)
        ready.wait()
        while True:
            self._start.wait()
            if self._stop:
                return
            try:
                self.work(i)
            except BaseException as exc:  # noqa: BLE001 -- reported by run()
                self.errors.append(exc)
            self._done.wait()

    def run(self) -> None:
        self._start.wait()
        self._done.wait()
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        self._stop = True
        self._start.wait()
        for t in self._threads:
            t.join()


def thread_cpus(ctx: Context) -> list[int]:
    """One CPU per thread, from ctx.cpus (or the process's affinity), reused round-robin."""
    cpus = list(ctx.cpus) or sorted(os.sched_getaffinity(0))
    return [cpus[i % len(cpus)] for i in range(max(1, ctx.threads))]


def run_pinned(cpu: int | None, fn):
    """Calls fn() in a fresh thread pinned to `cpu` (the caller's affinity is untouched)."""
    if cpu is None:
        return fn()
    box = {}

    def body():
        try:
            os.sched_setaffinity(0, {cpu})
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc
    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
