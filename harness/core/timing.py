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
   or earlier once the 95% CI of the median is within ci_target of it (checked every
   ci_check_every samples), or at max_samples. Page faults, context switches and
   hypervisor steal are counted over this region only.
Sample values are seconds per call (sample time / number); every sample is kept.

The clock is a parameter (`measure(..., clock=time.perf_counter)`), so tests drive every
rule above with a fake clock, as torch.utils.benchmark's tests do with a mock timer.
"""
from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.core import conditions, stats
from harness.core.records import Faults, Timing
from harness.core.workload import Workload

Clock = Callable[[], float]


@dataclass
class TimingPolicy:
    """Every timing default, in one place (a suite's defaults and keys map onto these)."""

    min_sample_s: float = 0.002
    warmup_window: int = 5
    warmup_tolerance: float = 0.05
    warmup_max_samples: int = 200
    warmup_max_s: float = 3.0
    budget_s: float = 1.0
    min_samples: int = 10
    max_samples: int = 2000
    ci_target: float = 0.005
    ci_check_every: int = 10

    @classmethod
    def from_dict(cls, d: dict | None) -> "TimingPolicy":
        return cls(**(d or {}))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def scaled(self, budget_scale: float) -> "TimingPolicy":
        return dataclasses.replace(self, budget_s=self.budget_s * budget_scale)


@dataclass
class Measurement:
    timing: Timing
    faults: Faults
    clock_ghz_before: float | None = None  # the core clock read after warm-up, before the samples
    clock_ghz_after: float | None = None  # ... and right after them


def timer_resolution(clock: Clock = time.perf_counter, reads: int = 2000) -> float:
    """Smallest non-zero step between two reads of `clock`, in seconds."""
    steps = []
    for _ in range(reads):
        t0 = clock()
        t1 = clock()
        while t1 == t0:
            t1 = clock()
        steps.append(t1 - t0)
    return min(steps)


def timer_overhead(clock: Clock = time.perf_counter, reads: int = 2000) -> float:
    """Median cost of one back-to-back pair of clock reads, in seconds: what bracketing a
    sample with the timer adds to it."""
    pairs = np.empty(reads)
    for i in range(reads):
        t0 = clock()
        t1 = clock()
        pairs[i] = t1 - t0
    return float(np.median(pairs))


def sampler(workload: Workload, clock: Clock = time.perf_counter) -> Callable[[int], float]:
    """sample(number) -> seconds for `number` calls, on `clock` or the device's own timer."""
    fn = workload.fn
    if workload.device_timer is not None:
        device_timer = workload.device_timer
        return lambda number: device_timer(fn, number)

    def sample(number: int) -> float:
        t0 = clock()
        for _ in range(number):
            fn()
        return clock() - t0

    return sample


def calibrate(sample: Callable[[int], float], target_s: float) -> int:
    """The inner-loop count: calls per sample so that one sample lasts at least target_s."""
    number = 1
    while True:
        elapsed = sample(number)
        if elapsed >= target_s or number >= 10**9:
            return number
        # Grow by the measured shortfall, at least x2 and at most x10, so one long call
        # in an early sample cannot make us overshoot by orders of magnitude.
        factor = target_s / max(elapsed, 1e-9) * 1.2
        number = int(number * min(10.0, max(2.0, factor)))


def steady(window: list[float], tolerance: float) -> bool:
    """Whether samples agree within tolerance: (max - min) / median."""
    med = float(np.median(window))
    return med > 0 and (max(window) - min(window)) / med <= tolerance


def warm_up(sample: Callable[[int], float], number: int, policy: TimingPolicy,
            clock: Clock = time.perf_counter) -> tuple[int, bool]:
    """Samples until steady; returns (warm-up samples taken, whether it converged)."""
    window: list[float] = []
    start = clock()
    taken = 0
    while taken < policy.warmup_max_samples and clock() - start < policy.warmup_max_s:
        window.append(sample(number) / number)
        taken += 1
        window = window[-policy.warmup_window:]
        if len(window) == policy.warmup_window and steady(window, policy.warmup_tolerance):
            return taken, True
    return taken, False


def ci_reached(samples: list[float], target: float) -> bool:
    """Whether the bootstrap 95% CI of the median has a half-width within target x median."""
    low, high = stats.bootstrap_median_ci(samples, resamples=200)
    med = float(np.median(samples))
    return med > 0 and (high - low) / 2 <= target * med


def measure(workload: Workload, policy: TimingPolicy, cpus: list[int],
            clock: Clock = time.perf_counter, read_clock: Callable[[], float | None] | None = None) -> Measurement:
    """Times `workload.fn` under `policy` on `clock`; returns its timing and faults, and the core
    clock `read_clock` gives after warm-up and after the samples (the clock the work ran at)."""
    sample = sampler(workload, clock)
    resolution = timer_resolution(clock)
    overhead = timer_overhead(clock)

    t0 = clock()
    workload.fn()
    first_call_s = clock() - t0

    number = calibrate(sample, max(policy.min_sample_s, 1000 * resolution))
    warmup_samples, converged = warm_up(sample, number, policy, clock)
    ghz_before = read_clock() if read_clock is not None else None

    samples: list[float] = []
    # Faults are counted around the samples only, not the harness's own bookkeeping between them.
    faults = conditions.FaultCounter()
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        with conditions.RegionCounters(cpus, clock) as region:
            start = clock()
            while len(samples) < policy.max_samples:
                with faults:
                    elapsed = sample(number)
                samples.append(elapsed / number)
                n = len(samples)
                if n < policy.min_samples:
                    continue
                if clock() - start >= policy.budget_s:
                    break
                if n % policy.ci_check_every == 0 and ci_reached(samples, policy.ci_target):
                    break
    finally:
        if gc_was_enabled:
            gc.enable()
    ghz_after = read_clock() if read_clock is not None else None

    iterations = len(samples) * number
    timing = Timing(**stats.summarize(samples), samples=samples,
                    clock="device" if workload.device_timer is not None else getattr(clock, "__name__", "clock"),
                    number=number, first_call_s=first_call_s, warmup_samples=warmup_samples,
                    warmup_iterations=warmup_samples * number, warmup_converged=converged,
                    timer_resolution_s=resolution, timer_overhead_s=overhead,
                    timer_overhead_per_call_s=overhead / number, timed_region_s=region.wall_s,
                    policy=policy.to_dict())
    return Measurement(timing, Faults(
        minor=faults.minor, major=faults.major, minor_per_call=faults.minor / iterations,
        major_per_call=faults.major / iterations, voluntary_switches=faults.voluntary_switches,
        involuntary_switches=faults.involuntary_switches, steal_fraction=region.steal_fraction),
        ghz_before, ghz_after)
