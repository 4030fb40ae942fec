"""Whether a measurement can be trusted: the warnings it carries and the documented limits
past which it is suspect.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.core.records import Conditions, Faults, Timing

# A pinned CPU busy above this share (from other processes) makes a figure suspect.
LOAD_WARN_PERCENT = 25.0
# Hypervisor steal above this share of the timed region's CPU time makes a figure suspect.
STEAL_WARN_FRACTION = 0.02
# A coefficient of variation above this marks a measurement as noisy.
NOISY_CV = 0.10


@dataclass
class Verdict:
    warnings: list[str] = field(default_factory=list)
    suspect_reasons: list[str] = field(default_factory=list)


def assess(timing: Timing, faults: Faults, where: Conditions, affinity: list[int], cpus: list[int],
           kind: str) -> Verdict:
    warnings = []
    if faults.minor_per_call > 0 or faults.major_per_call > 0:
        warnings.append(f"page faults in the timed region: {faults.minor} minor, {faults.major} major "
                        f"({faults.minor_per_call:.3g} and {faults.major_per_call:.3g} per call)")
    for label, load in (("before", where.load_before), ("after", where.load_after)):
        if load is not None and load.others_percent > LOAD_WARN_PERCENT:
            warnings.append(f"other processes kept the pinned CPUs {load.others_percent:.0f}% busy "
                            f"{label} the case (per CPU: {load.per_cpu_percent})")
    if faults.steal_fraction > STEAL_WARN_FRACTION:
        warnings.append(f"hypervisor steal took {100 * faults.steal_fraction:.1f}% of the timed region")
    if not timing.warmup_converged:
        warnings.append(f"warm-up did not reach a steady state in {timing.warmup_samples} samples")
    if timing.cv > NOISY_CV:
        warnings.append(f"noisy: coefficient of variation {100 * timing.cv:.1f}%")
    if len(timing.outliers) > 0.1 * timing.n:
        warnings.append(f"{len(timing.outliers)} of {timing.n} samples are outliers")
    if sorted(affinity) != sorted(cpus):
        warnings.append(f"asked for CPUs {cpus}, got {affinity}")
    return Verdict(warnings, [])
