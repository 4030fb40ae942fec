"""The clock under load: k busy cores, each loaded at one instruction-set level (the first
source document's table of the Intel Core i9-10980XE: rows busy cores, columns ISA level,
cells MHz).

Each busy core alternates an FMA burst at the level with a dependent add chain read right
after it on the same core, so the clock is read in the state the burst left the core in.
"""
from __future__ import annotations

import math
import statistics
import time

from harness.core import isa as isa_levels
from harness.core.registry import Kind, Param
from harness.core.stats import bootstrap_median_ci
from harness.core.workload import Context, Workload
from kernels.fma import MAX_ITERATIONS_FP32, FmaRun, compile_kernel
from kernels.frequency import add_chain, reported_mhz, time_chain
from kernels.jit import PinnedThreads, resolve_isa


def throttle_sample(isa: str, dtype: str, cpus: list[int], seconds: float,
                    burst_s: float = 0.003, sample_adds: int = 1_000_000) -> list[float]:
    """Median GHz seen on each of `cpus` while all of them are busy at one level.

    One thread per CPU, pinned to it, alternates a burst of FMA work at `isa` (about
    `burst_s`) with a chain of `sample_adds` right after it on the same core (about
    0.3 ms, short so the core is still in the burst's state). isa "none" bursts with the
    add chain itself: plain integer load. Samples from the first min(0.2 s, seconds / 2)
    are dropped while the clock settles. Returns one figure per CPU, in `cpus` order."""
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
    isa, dtype, seconds = params["isa"], params["dtype"], params["seconds"]
    if isa != "none":
        resolve_isa(isa)  # raises Skip where the CPU lacks the level
    per_core: list[list[float]] = [[] for _ in ctx.cpus]

    def fn():
        for core, ghz in zip(per_core, throttle_sample(isa, dtype, ctx.cpus, seconds)):
            core.append(ghz)

    def metrics(median_s):
        medians = [statistics.median(c) for c in per_core]
        # The interval of the median over every clock sample of the cell: a cell resting on three
        # samples a core shows how little it is worth.
        low, high = bootstrap_median_ci([g for core in per_core for g in core])
        return {"ghz": statistics.median(medians), "ghz_per_core": medians, "ghz_ci95": [low, high],
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
    Kind("probe.throttle", "kernels.throttle:throttle_probe",
         {"isa": Param(str, "none", choices=isa_levels.LOAD_LEVELS,
                       help="load level; none = plain integer adds (the document's 'Normal')"),
          "dtype": Param(str, "float32", choices=("float32", "float64")),
          "seconds": Param(float, 0.3, min=0.05, max=60.0, help="length of one sampling call")},
         "clock under load: threads = busy cores, each loaded at one ISA level; metrics give GHz"),
]
