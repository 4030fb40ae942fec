"""Controlled conditions: what a worker sets before heavy imports, and what the
machine's state is (read, never changed).

Thread pools (OpenMP, OpenBLAS, MKL, Numba) read their size once, when the library
starts, so the environment below must be in place before numpy/torch/numba import.

torch and numba are imported inside functions, and only when a case already started them
(deferred on purpose: the worker must not start a library a case does not use).
"""
from __future__ import annotations

import contextlib
import os
import resource
import sys
import time


from harness.core import registry, system
from harness.core.records import Load


def thread_env(threads: int) -> dict[str, str]:
    """Environment that sizes every thread pool we may load to `threads`, bound one per CPU."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "NUMEXPR_NUM_THREADS": n,
        "NUMBA_NUM_THREADS": n,
        "OMP_PLACES": "cores",
        "OMP_PROC_BIND": "close",
        # The CUDA simulator must never leak into a real run.
        "NUMBA_ENABLE_CUDASIM": "0",
    }


def choose_cpus(threads: int, allowed: list[int] | None = None) -> list[int]:
    """One logical CPU per physical core first, so two threads never share a core's
    FMA units while a free core exists; SMT siblings only after every core has one."""
    allowed = allowed if allowed is not None else system.available_cpus()
    seen_cores: set = set()
    first, rest = [], []
    for cpu in allowed:
        core = system.core_of(cpu)
        (rest if core in seen_cores else first).append(cpu)
        seen_cores.add(core)
    return (first + rest)[:threads]


def apply_in_worker(cpus: list[int], threads: int) -> dict:
    """Pins this process and sizes its thread pools; returns what it actually got."""
    os.sched_setaffinity(0, cpus)
    os.environ.update(thread_env(threads))
    return {"affinity": sorted(os.sched_getaffinity(0))}


@contextlib.contextmanager
def spawning_threads_on(cpus: list[int]):
    """Gives the calling thread `cpus` while a library creates its thread pool, then its own
    mask back. Why: libgomp (torch's OpenMP) under OMP_PROC_BIND binds a thread that ran a
    parallel region to one CPU, and threads created later (ONNX Runtime's pool) inherit the
    mask of their creator: after any torch work in the same worker, all of a session's
    threads would share one CPU (measured: 2 threads 2x slower than 1)."""
    found = sorted(os.sched_getaffinity(0))
    if found != sorted(cpus):
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, found)


def set_library_threads(threads: int) -> dict:
    """Sizes the pools of libraries already imported (torch, numba) and reads back what they use."""
    got = {}
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
        got["torch_threads"] = torch.get_num_threads()
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        got["numba_threads"] = numba.get_num_threads()
    try:
        from threadpoolctl import threadpool_info

        got["blas_threads"] = {p["internal_api"]: p["num_threads"] for p in threadpool_info()}
    except Exception:  # threadpoolctl is informative only
        pass
    return got


# --- sampled around a timed region ----------------------------------------------------

def other_load(cpus: list[int], interval: float = 0.05) -> Load:
    """Load on our CPUs from other processes over `interval`, while this process is idle.

    Our own process can still burn CPU then (OpenBLAS and OpenMP threads spin-wait after
    a call), so its CPU time over the interval is subtracted from the pinned CPUs' total.
    """
    own0 = system.own_cpu_seconds()
    per_cpu = system.cpu_busy_percent(interval)
    own_percent = 100.0 * (system.own_cpu_seconds() - own0) / interval
    busy = {str(c): per_cpu[c] for c in cpus if c < len(per_cpu)}
    others = max(0.0, sum(busy.values()) - own_percent) / max(len(busy), 1)
    return Load(per_cpu_percent=busy, own_percent=own_percent, others_percent=others)


def clock_ghz(seconds: float = 0.02) -> float | None:
    """The core clock right now, from a dependent add chain (kernels/frequency.py): the OS
    figure is missing or wrong in most VMs. Read right after the timed region, while the core
    is still in the state the work left it in. None where the chain cannot be built."""
    try:
        return registry.clock_reader()(seconds=seconds, sample_adds=500_000)
    except Exception:  # no JIT on this platform: the clock is then unknown, never guessed
        return None


class FaultCounter:
    """Page faults and context switches summed over every `with` block it brackets."""

    def __init__(self):
        self.minor = self.major = self.voluntary_switches = self.involuntary_switches = 0

    def __enter__(self):
        self._r0 = resource.getrusage(resource.RUSAGE_SELF)
        return self

    def __exit__(self, *exc):
        r1, r0 = resource.getrusage(resource.RUSAGE_SELF), self._r0
        self.minor += r1.ru_minflt - r0.ru_minflt
        self.major += r1.ru_majflt - r0.ru_majflt
        self.voluntary_switches += r1.ru_nvcsw - r0.ru_nvcsw
        self.involuntary_switches += r1.ru_nivcsw - r0.ru_nivcsw
        return False


class RegionCounters:
    """Wall time (on `clock`) and hypervisor steal over a region of code."""

    def __init__(self, cpus: list[int], clock=time.perf_counter):
        self.cpus = cpus
        self.clock = clock

    def __enter__(self):
        self._steal0 = system.cpu_steal_seconds(self.cpus)
        self._t0 = self.clock()
        return self

    def __exit__(self, *exc):
        wall = self.clock() - self._t0
        self.wall_s = wall
        steal = system.cpu_steal_seconds(self.cpus) - self._steal0
        self.steal_fraction = steal / (wall * len(self.cpus)) if wall > 0 and self.cpus else 0.0
        return False


# --- the machine's state, read once per run ---------------------------------------------

def machine_state(cpus: list[int] | None = None) -> dict:
    """Governor, turbo, SMT siblings, isolated CPUs, hypervisor and huge pages, with a
    warning for each that threatens the figures. Nothing here is changed."""
    cpus = cpus if cpus is not None else system.available_cpus()
    warnings = []
    governors = system.governors(cpus)
    if governors and any(g != "performance" for g in governors.values()):
        warnings.append("cpufreq governor is not 'performance' on some CPUs: "
                        f"{sorted(set(governors.values()))}; the clock may ramp during timing")
    turbo = system.turbo_enabled()
    if turbo:
        warnings.append("turbo/boost is on: the clock depends on temperature and busy cores")
    siblings = {c: system.smt_siblings(c) for c in cpus}
    shared = sorted({c for c, sib in siblings.items() if len(sib) > 1})
    isolated = system.isolated_cpus()
    hypervisor = "hypervisor" in system.cpu_flags()
    if hypervisor:
        warnings.append("running under a hypervisor: CPUs may be shared with other guests "
                        "(watch steal time) and the guest may not see the real clock")
    if not isolated:
        warnings.append("no isolated CPUs (isolcpus): the OS may schedule other work on pinned CPUs")
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if forced:
        warnings.append(f"OPENBLAS_CORETYPE={forced} forces OpenBLAS's {forced} kernels: BLAS figures "
                        "may sit below what this CPU's widest ISA level reaches")
    thp = system.thp_setting()
    return {
        "cpus": cpus,
        "governors": governors or None,
        "turbo": turbo,
        "smt_siblings": {str(c): s for c, s in siblings.items()},
        "cpus_with_smt_siblings": shared,
        "isolated_cpus": isolated,
        "hypervisor": hypervisor,
        "transparent_hugepages": thp,
        "cpufreq_available": system.cpufreq_available(),
        "warnings": warnings,
    }
