"""The core clock, measured: a dependent chain of integer adds runs one add per cycle.

Why measure: in a VM (and on many hosts) the OS does not show the real clock -- the
"cpu MHz" in /proc/cpuinfo can be the timestamp-counter rate, and cpufreq may be absent.
An integer add has one cycle of latency on every current x86 and Arm core, so a chain in
which each add needs the previous result runs at exactly one add per cycle:
GHz = adds / seconds / 1e9.

The chain is LLVM inline assembly -- 100 `add step, x` per loop trip -- compiled by
llvmlite and called through ctypes. Inline assembly is opaque to LLVM, so it cannot fold
the chain into one multiply. The step is a register operand, not an immediate: some
cores (Intel Golden Cove) can fold add-immediate chains at rename and would read 2x.
The loop counter's add/compare/branch run on other ALUs beside the chain.

The clock takes about 0.2 s of load to settle (see MACHINE-NOTES); `cpu_ghz` warms first.

`throttle_sample` is the measuring part of `harness throttle`: busy cores, each alternating
an FMA burst at one instruction-set level with a short chain, read on that same core.
"""
from __future__ import annotations

import ctypes
import os
import statistics
import threading
import time

from harness.core import system
from harness.core.registry import Kind, Param
from harness.core.workload import Context, Skip, Workload
from kernels.jit import compile_ir, host_arch, run_pinned

UNROLL = 100  # adds per loop trip
DEFAULT_ADDS = 10_000_000  # ~3 ms at 3.5 GHz
MAX_ADDS = 100_000_000_000  # ~30 s per call at 3.5 GHz: past it a typo, not a plan

# One add of register %2 into %0 (tied to input %1), per architecture's assembler syntax.
_ADD = {"x86_64": "addq $2, $0", "aarch64": "add $0, $0, $2", "arm64": "add $0, $0, $2"}

_chain = None
_chain_lock = threading.Lock()


def chain_ir(arch: str) -> str:
    """LLVM IR of `i64 add_chain(i64 trips, i64 step)`: returns step * UNROLL * trips."""
    if arch not in _ADD:
        raise Skip(f"no add-chain assembly for {arch}")
    asm = "\\0A\\09".join([_ADD[arch]] * UNROLL)
    return f"""
define i64 @add_chain(i64 %trips, i64 %step) {{
entry:
  br label %loop

loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %x = phi i64 [0, %entry], [%x1, %loop]
  %x1 = call i64 asm sideeffect "{asm}", "=r,0,r"(i64 %x, i64 %step)
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, %trips
  br i1 %more, label %loop, label %exit

exit:
  ret i64 %x1
}}
"""


def add_chain():
    """The compiled chain as a ctypes function (trips, step) -> step * 100 * trips; trips >= 1."""
    global _chain
    with _chain_lock:
        if _chain is None:
            compiled = compile_ir(chain_ir(host_arch()))
            func = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(
                compiled.address("add_chain"))
            _chain = (compiled, func)  # the engine must outlive the function pointer
        return _chain[1]


def time_chain(adds: int) -> float:
    """Runs a chain of `adds` (rounded up to a multiple of 100) and returns GHz."""
    func = add_chain()
    trips = max(1, -(-adds // UNROLL))
    t0 = time.perf_counter()
    total = func(trips, 1)
    elapsed = time.perf_counter() - t0
    if total != trips * UNROLL:
        raise AssertionError(f"add chain returned {total}, expected {trips * UNROLL}")
    return trips * UNROLL / elapsed / 1e9


def measure_ghz(seconds: float = 0.1, sample_adds: int = 2_000_000) -> float:
    """Median GHz over back-to-back chains of `sample_adds` (about 0.5 ms each) for `seconds`,
    on the calling thread's core, with no warm-up of its own."""
    samples = []
    deadline = time.perf_counter() + seconds
    while not samples or time.perf_counter() < deadline:
        samples.append(time_chain(sample_adds))
    return statistics.median(samples)


def cpu_ghz(seconds: float = 0.3, cpu: int | None = None) -> float:
    """The clock under integer load: warms for min(0.2 s, seconds / 2) -- the clock needs
    about 0.2 s of load to settle -- then returns the median of the rest. `cpu`: run on that
    CPU (in a pinned helper thread; the caller's affinity is untouched)."""
    warm = min(0.2, seconds / 2)

    def body():
        measure_ghz(warm)
        return measure_ghz(seconds - warm)
    return run_pinned(cpu, body)


def reported_mhz() -> dict:
    """What the OS says the clock is, per CPU, to set beside the measured figure:
    {"cpuinfo_mhz": {cpu: MHz} or None, "scaling_cur_freq_mhz": {cpu: MHz} or None}.
    On a VM "cpu MHz" is often the timestamp-counter rate, not the core clock."""
    cpus = list(range(os.cpu_count() or 1))
    return {"cpuinfo_mhz": system.cpuinfo_mhz_per_cpu() or None,
            "scaling_cur_freq_mhz": system.cpufreq_mhz(cpus)}


# --------------------------------------------------------------------------- the case

def frequency_probe(params: dict, ctx: Context) -> Workload:
    adds = params["adds"]
    func = add_chain()
    trips = max(1, -(-adds // UNROLL))
    result = {"total": None}

    def fn():
        result["total"] = func(trips, 1)

    def check():
        if result["total"] != trips * UNROLL:
            raise AssertionError(f"add chain returned {result['total']}, expected {trips * UNROLL}")

    return Workload(
        fn=fn,
        check=check,
        metrics=lambda median_s: {"ghz": trips * UNROLL / median_s / 1e9},
        info={"adds": trips * UNROLL, "method": "dependent integer add chain, 1 add per cycle",
              "reported_mhz": reported_mhz()},
    )


KINDS = [
    Kind("probe.frequency", "kernels.frequency:frequency_probe",
         {"adds": Param(int, DEFAULT_ADDS, min=UNROLL, max=MAX_ADDS,
                        help="dependent integer adds per call (rounded up to a multiple of 100)")},
         "core clock: a dependent integer add chain, one add per cycle; metrics give GHz"),
]
