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
import glob
import math
import statistics
import threading
import time

from harness.workload import Context, Skip, Workload
from kernels.registry import Kind, Param

UNROLL = 100  # adds per loop trip
DEFAULT_ADDS = 10_000_000  # ~3 ms at 3.5 GHz

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
            from kernels.fma import compile_ir, host_arch

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
    from kernels.fma import run_pinned

    warm = min(0.2, seconds / 2)

    def body():
        measure_ghz(warm)
        return measure_ghz(seconds - warm)
    return run_pinned(cpu, body)


def reported_mhz() -> dict:
    """What the OS says the clock is, per CPU, to set beside the measured figure:
    {"cpuinfo_mhz": {cpu: MHz} or None, "scaling_cur_freq_mhz": {cpu: MHz} or None}.
    On a VM "cpu MHz" is often the timestamp-counter rate, not the core clock."""
    cpuinfo: dict[int, float] = {}
    try:
        cpu = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "processor":
                    cpu = int(value)
                elif key == "cpu MHz" and cpu is not None:
                    cpuinfo[cpu] = float(value)
    except (OSError, ValueError):
        cpuinfo = {}
    scaling: dict[int, float] = {}
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"):
        try:
            cpu = int(path.split("/cpu/cpu")[1].split("/")[0])
            with open(path) as f:
                scaling[cpu] = int(f.read()) / 1000.0  # kHz -> MHz
        except (OSError, ValueError):
            continue
    return {"cpuinfo_mhz": dict(sorted(cpuinfo.items())) or None,
            "scaling_cur_freq_mhz": dict(sorted(scaling.items())) or None}


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


# --------------------------------------------------------------------------- throttling

def throttle_sample(isa: str, dtype: str, cpus: list[int], seconds: float,
                    burst_s: float = 0.003, sample_adds: int = 1_000_000) -> list[float]:
    """Median GHz seen on each of `cpus` while all of them are busy at one level.

    One thread per CPU, pinned to it, alternates a burst of FMA work at `isa` (about
    `burst_s`) with a chain of `sample_adds` right after it on the same core (about
    0.3 ms, short so the core is still in the burst's state). isa "none" bursts with the
    add chain itself: plain integer load. Samples from the first min(0.2 s, seconds / 2)
    are dropped while the clock settles. Returns one figure per CPU, in `cpus` order."""
    from kernels.fma import MAX_ITERATIONS_FP32, FmaRun, PinnedThreads, compile_kernel, resolve_isa

    level = None if isa == "none" else resolve_isa(isa)
    add_chain()  # compile before the clock starts
    if level is not None:
        compile_kernel(level, dtype)
    settle = min(0.2, seconds / 2)
    samples: list[list[tuple[float, float]]] = [[] for _ in cpus]  # (seconds in, GHz)

    def work(i: int) -> None:
        run = None
        if level is None:
            def burst():
                time_chain(int(burst_s * 3e9))
        else:
            run = FmaRun(level, dtype, 20_000)
            t0 = time.perf_counter()
            run()
            per_iteration = (time.perf_counter() - t0) / run.iterations
            run = burst = FmaRun(level, dtype, int(min(MAX_ITERATIONS_FP32,
                                                       max(1000, burst_s / per_iteration))))
        start = time.perf_counter()
        while (now := time.perf_counter()) < start + seconds:
            burst()
            samples[i].append((now - start, time_chain(sample_adds)))
        if run is not None:
            run.check()  # the bursts did the work they claim

    team = PinnedThreads(list(cpus), work)
    try:
        team.run()
    finally:
        team.close()
    out = []
    for cpu, core in zip(cpus, samples):
        settled = [ghz for t, ghz in core if t >= settle]
        if not settled:
            raise RuntimeError(f"cpu {cpu}: no clock sample after the {settle:g} s settling time "
                               f"(seconds={seconds} is too short)")
        out.append(statistics.median(settled))
    return out


def throttle_probe(params: dict, ctx: Context) -> Workload:
    """One cell of the throttle table: ctx.threads busy cores at one ISA level.

    Each call runs `throttle_sample` for `seconds`; the clock figures of every call are
    kept and their median per core is the cell. The call's duration is fixed, so the
    record's timing says nothing; the GHz in metrics is the measurement."""
    from kernels.fma import resolve_isa

    isa, dtype, seconds = params["isa"], params["dtype"], params["seconds"]
    if isa != "none":
        resolve_isa(isa)  # raises Skip where the CPU lacks the level
    per_core: list[list[float]] = [[] for _ in ctx.cpus]

    def fn():
        for core, ghz in zip(per_core, throttle_sample(isa, dtype, ctx.cpus, seconds)):
            core.append(ghz)

    def metrics(median_s):
        medians = [statistics.median(c) for c in per_core]
        return {"ghz": statistics.median(medians), "ghz_per_core": medians,
                "busy_cores": len(ctx.cpus), "samples_per_core": len(per_core[0])}

    def check():
        values = [g for core in per_core for g in core]
        if not values or not all(math.isfinite(g) and g > 0 for g in values):
            raise AssertionError(f"clock samples are missing or not finite: {per_core}")

    return Workload(fn=fn, metrics=metrics, check=check,
                    info={"isa": isa, "dtype": dtype, "busy_cores": len(ctx.cpus), "cpus": ctx.cpus,
                          "method": "each busy core alternates an FMA burst at the level with "
                                    "a dependent add chain read on the same core",
                          "reported_mhz": reported_mhz()})


KINDS = [
    Kind("probe.throttle", "kernels.frequency:throttle_probe",
         {"isa": Param(str, "none", choices=("none", "scalar", "sse", "avx2", "avx512", "neon"),
                       help="load level; none = plain integer adds (the document's 'Normal')"),
          "dtype": Param(str, "float32", choices=("float32", "float64")),
          "seconds": Param(float, 0.3, min=0.05, help="length of one sampling call")},
         "clock under load: threads = busy cores, each loaded at one ISA level; metrics give GHz"),
    Kind("probe.frequency", "kernels.frequency:frequency_probe",
         {"adds": Param(int, DEFAULT_ADDS, min=UNROLL,
                        help="dependent integer adds per call (rounded up to a multiple of 100)")},
         "core clock: a dependent integer add chain, one add per cycle; metrics give GHz"),
]
