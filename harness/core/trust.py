"""Whether a measurement can be trusted: the warnings it carries, and the documented limits
past which it is suspect (kept, shown apart from ok, re-measured once in a fresh worker by
`harness run`, never used as a ceiling).

Suspect when, over the case:
- the coefficient of variation of the samples is above SUSPECT_CV (a figure that wide
  says more about the machine than about the op);
- other processes kept the pinned CPUs busier than LOAD_WARN_PERCENT before or after it;
- the hypervisor stole more than STEAL_WARN_FRACTION of the timed region;
- the core clock read before and after the timed region moved by more than CLOCK_MOVE.
Noise above NOISY_CV, page faults in the timed region, a warm-up that never settled,
many outliers and an affinity that differs from the one asked for are warnings only. A kind
whose call lasts a set time (SET_DURATION_KINDS) is judged by load, steal and clock alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.core.records import Conditions, Faults, Timing

# A pinned CPU busy above this share (from other processes) makes a figure suspect.
LOAD_WARN_PERCENT = 25.0
# Hypervisor steal above this share of the timed region's CPU time makes a figure suspect.
STEAL_WARN_FRACTION = 0.02
# A coefficient of variation above this marks a measurement as noisy (a warning) ...
NOISY_CV = 0.10
# ... and above this, suspect.
SUSPECT_CV = 0.25
# The core clock may move this much (relative) between the reads after warm-up and after the
# samples. A 20 ms add chain reads the clock to a few percent in a VM whose host moves it.
CLOCK_MOVE = 0.10
# Kinds whose call lasts a set time and whose figure is not the time (a throttle cell's is the
# clock its busy cores read): the timing's noise, warm-up and outliers say nothing of it, and
# the page faults of starting its threads are outside what it measures.
SET_DURATION_KINDS = ("probe.throttle",)
# Kinds that time nothing (a model's kernels listed for harness predict): nothing to judge.
UNTIMED_KINDS = ("kernels.onnxruntime", "kernels.torch")


@dataclass
class Verdict:
    warnings: list[str] = field(default_factory=list)
    suspect_reasons: list[str] = field(default_factory=list)


def assess(timing: Timing, faults: Faults, where: Conditions, affinity: list[int], cpus: list[int],
           kind: str) -> Verdict:
    warnings, suspect = [], []
    if kind in UNTIMED_KINDS:
        return Verdict(warnings, suspect)
    timed = kind not in SET_DURATION_KINDS
    if timed and (faults.minor_per_call > 0 or faults.major_per_call > 0):
        warnings.append(f"page faults in the timed region: {faults.minor} minor, {faults.major} major "
                        f"({faults.minor_per_call:.3g} and {faults.major_per_call:.3g} per call)")
    for label, load in (("before", where.load_before), ("after", where.load_after)):
        if load is not None and load.others_percent > LOAD_WARN_PERCENT:
            busy = ", ".join(f"CPU {cpu} {pct:.0f}%" for cpu, pct in load.per_cpu_percent.items())
            suspect.append(f"other processes kept the pinned CPUs {load.others_percent:.0f}% busy {label} the "
                           f"case ({busy}; limit {LOAD_WARN_PERCENT:.0f}%)")
    if faults.steal_fraction > STEAL_WARN_FRACTION:
        suspect.append(f"hypervisor steal took {100 * faults.steal_fraction:.1f}% of the timed region "
                       f"(limit {100 * STEAL_WARN_FRACTION:.0f}%)")
    change = where.clock_change
    if change is not None and abs(change) > CLOCK_MOVE:
        suspect.append(f"the core clock moved {100 * change:+.1f}% over the case ({where.clock_ghz_before:.3g} -> "
                       f"{where.clock_ghz_after:.3g} GHz; limit {100 * CLOCK_MOVE:.0f}%)")
    if timed and not timing.warmup_converged:
        warnings.append(f"warm-up did not reach a steady state in {timing.warmup_samples} samples")
    if timed and timing.cv > SUSPECT_CV:
        suspect.append(f"noisy: coefficient of variation {100 * timing.cv:.0f}% (limit {100 * SUSPECT_CV:.0f}%)")
    elif timed and timing.cv > NOISY_CV:
        warnings.append(f"noisy: coefficient of variation {100 * timing.cv:.1f}%")
    if timed and len(timing.outliers) > 0.1 * timing.n:
        warnings.append(f"{len(timing.outliers)} of {timing.n} samples are outliers")
    if sorted(affinity) != sorted(cpus):
        warnings.append(f"asked for CPUs {cpus}, got {affinity}")
    return Verdict(warnings, suspect)
