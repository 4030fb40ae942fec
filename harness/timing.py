"""How one workload is timed: timer calibration, warm-up to a steady state, adaptive sampling.

The algorithm, in order (after torch.utils.benchmark's blocked_autorange and pyperf):
1. One first call, timed on its own (JIT compilation, lazy initialisation, page faults
   of first touch); reported as first_call_s, never mixed into the samples.
2. Calibrate the inner loop: `number` calls per sample, grown until one sample lasts at
   least max(min_sample_s, 1000 x timer resolution), so the clock's granularity costs
   under 0.1% of a sample.
3. Warm-up: take samples until the last `warmup_window` agree within `warmup_tolerance`
   (max - min over median), capped in count and time; the iterations it took are recorded,
   with a warning if it never settled. The clock of a CPU needs ~0.2 s of load to settle.
4. Timed region, gc off: samples until the time budget is spent (at least min_samples),
   or earlier once the 95% CI of the median is within ci_target of it, or at max_samples.
   Page faults, context switches and hypervisor steal are counted over this region only.
Sample values are seconds per call (sample time / number); every sample is kept.
"""
from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass

import numpy as np

from harness import conditions, stats
from harness.workload import Workload


@dataclass
class TimingPolicy:
    min_sample_s: float = 0.002
    warmup_window: int = 5
    warmup_tolerance: float = 0.05
    warmup_max_samples: int = 200
    warmup_max_s: float = 3.0
    budget_s: float = 1.0
    min_samples: int = 10
    max_samples: int = 2000
    ci_target: float = 0.005

    @classmethod
    def from_dict(cls, d: dict | None) -> "TimingPolicy":
        return cls(**(d or {}))


def timer_resolution(reads: int = 2000) -> float:
    """Smallest non-zero step of perf_counter, in seconds."""
    clock = time.perf_counter_ns
    steps = []
    for _ in range(reads):
        t0 = clock()
        t1 = clock()
        while t1 == t0:
            t1 = clock()
        steps.append(t1 - t0)
    return min(steps) * 1e-9


def timer_overhead(reads: int = 2000) -> float:
    """Median cost of one back-to-back pair of clock reads, in seconds: what bracketing a
    sample with the timer adds to it."""
    clock = time.perf_counter
    pairs = np.empty(reads)
    for i in range(reads):
        t0 = clock()
        t1 = clock()
        pairs[i] = t1 - t0
    return float(np.median(pairs))


def _sampler(workload: Workload):
    """Returns sample(number) -> seconds for `number` calls, on the host or the device clock."""
    fn = workload.fn
    if workload.device_timer is not None:
        device_timer = workload.device_timer
        return lambda number: device_timer(fn, number)
    clock = time.perf_counter

    def sample(number: int) -> float:
        t0 = clock()
        for _ in range(number):
            fn()
        return clock() - t0

    return sample


def calibrate(sample, target_s: float) -> int:
    number = 1
    while True:
        elapsed = sample(number)
        if elapsed >= target_s or number >= 10**9:
            return number
        # Grow by the measured shortfall, at least x2 and at most x10, so one long call
        # in an early sample cannot make us overshoot by orders of magnitude.
        factor = target_s / max(elapsed, 1e-9) * 1.2
        number = int(number * min(10.0, max(2.0, factor)))


def warm_up(sample, number: int, policy: TimingPolicy) -> tuple[int, bool]:
    """Samples until steady; returns (warm-up samples taken, whether it converged)."""
    window: list[float] = []
    start = time.perf_counter()
    taken = 0
    while taken < policy.warmup_max_samples and time.perf_counter() - start < policy.warmup_max_s:
        window.append(sample(number) / number)
        taken += 1
        window = window[-policy.warmup_window:]
        if len(window) == policy.warmup_window:
            med = float(np.median(window))
            if med > 0 and (max(window) - min(window)) / med <= policy.warmup_tolerance:
                return taken, True
    return taken, False


def measure(workload: Workload, policy: TimingPolicy, cpus: list[int]) -> dict:
    """Times `workload.fn` under `policy`; returns the timing part of a record."""
    sample = _sampler(workload)
    resolution = timer_resolution()
    overhead = timer_overhead()

    t0 = time.perf_counter()
    workload.fn()
    first_call_s = time.perf_counter() - t0

    number = calibrate(sample, max(policy.min_sample_s, 1000 * resolution))
    warmup_samples, converged = warm_up(sample, number, policy)

    samples: list[float] = []
    # Faults are counted around the samples only, not the harness's own bookkeeping between them.
    faults = conditions.FaultCounter()
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        with conditions.RegionCounters(cpus) as region:
            start = time.perf_counter()
            while len(samples) < policy.max_samples:
                with faults:
                    elapsed = sample(number)
                samples.append(elapsed / number)
                n = len(samples)
                if n < policy.min_samples:
                    continue
                if time.perf_counter() - start >= policy.budget_s:
                    break
                if n % 10 == 0:
                    low, high = stats.bootstrap_median_ci(samples, resamples=200)
                    med = float(np.median(samples))
                    if med > 0 and (high - low) / 2 <= policy.ci_target * med:
                        break
    finally:
        if gc_was_enabled:
            gc.enable()

    iterations = len(samples) * number
    summary = stats.summarize(samples)
    return {
        "timing": {
            "unit": "s per call",
            "clock": "device" if workload.device_timer is not None else "perf_counter",
            **summary,
            "number": number,
            "first_call_s": first_call_s,
            "warmup_samples": warmup_samples,
            "warmup_iterations": warmup_samples * number,
            "warmup_converged": converged,
            "timer_resolution_s": resolution,
            "timer_overhead_s": overhead,
            "timer_overhead_per_call_s": overhead / number,
            "timed_region_s": region.wall_s,
            "policy": asdict(policy),
            "samples": samples,
        },
        "faults": {
            "minor": faults.minor,
            "major": faults.major,
            "minor_per_call": faults.minor / iterations,
            "major_per_call": faults.major / iterations,
            "voluntary_switches": faults.voluntary_switches,
            "involuntary_switches": faults.involuntary_switches,
            "steal_fraction": region.steal_fraction,
        },
    }
