"""The roofline model: where a (FLOPs, bytes) point sits under a two-line roof.

The model (the first source document, Part 02): a program of arithmetic intensity
I = FLOPs / bytes can at best run at

    attainable FLOP/s = min(I x bandwidth, peak FLOP/s)

so its run time is at least max(FLOPs / peak, bytes / bandwidth): memory-bound ops are
timed by the bytes they move, compute-bound ops by the FLOPs they do. The intensity at
which the two meet, peak / bandwidth, is the ridge point.

Units are decimal SI: FLOP/s, bytes/s, seconds. A multiply-add counts as 2 FLOPs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass
class Bound:
    """Where one (FLOPs, bytes) point sits under a two-line roof."""

    intensity: float  # FLOP/byte
    attainable_flops_per_s: float  # min(I x bandwidth, peak)
    theoretical_time_s: float  # max(FLOPs / peak, bytes / bandwidth)
    bound: Literal["compute", "memory"]
    ridge_intensity: float  # peak / bandwidth


def ridge_point(peak_flops: float, bandwidth: float) -> float:
    """The intensity (FLOP/byte) where the bandwidth line meets the compute peak."""
    if peak_flops <= 0 or bandwidth <= 0:
        raise ValueError(f"peak and bandwidth must be > 0; got {peak_flops!r}, {bandwidth!r}")
    return peak_flops / bandwidth


def roofline_bound(flops: float, bytes: float, peak_flops: float, bandwidth: float) -> Bound:
    """Places a point of `flops` FLOPs and `bytes` bytes under the roof min(I x bandwidth, peak).

    A point exactly at the ridge (both times equal) is called compute-bound: it can reach the peak.
    No bytes means infinite intensity (compute-bound); no FLOPs means intensity 0 (memory-bound).
    """
    if flops < 0 or bytes < 0:
        raise ValueError(f"flops and bytes must be >= 0; got {flops!r}, {bytes!r}")
    ridge = ridge_point(peak_flops, bandwidth)
    compute_time = flops / peak_flops
    memory_time = bytes / bandwidth
    if bytes > 0:
        intensity = flops / bytes
    else:
        intensity = math.inf if flops > 0 else 0.0
    # Compare flops*bandwidth with bytes*peak rather than the two quotients, so that a
    # point built to sit exactly on the ridge is not pushed to one side by rounding.
    is_compute = flops > 0 and flops * bandwidth >= bytes * peak_flops
    return Bound(
        intensity=intensity,
        attainable_flops_per_s=min(intensity * bandwidth, peak_flops),
        theoretical_time_s=max(compute_time, memory_time),
        bound="compute" if is_compute else "memory",
        ridge_intensity=ridge,
    )


def efficiency(measured_s: float, theoretical_s: float) -> float:
    """Fraction of the roofline reached: theoretical (roofline) time / measured time; 1.0 = on the roof."""
    if measured_s <= 0:
        raise ValueError(f"measured time must be > 0; got {measured_s!r}")
    return theoretical_s / measured_s
