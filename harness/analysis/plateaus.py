"""The plateaus of a working-set sweep: where the bandwidth curve is flat, one per memory
level, each set beside the cache it lines up with.
"""
from __future__ import annotations

import math

import numpy as np


def _segments(y, penalty: float) -> list[tuple[int, int]]:
    """Optimal split of y into constant pieces: least squares plus `penalty` per piece.
    Exact dynamic programme, O(n^2); n is a few dozen points."""
    n = len(y)
    s1 = np.concatenate([[0.0], np.cumsum(y)])
    s2 = np.concatenate([[0.0], np.cumsum(np.square(y))])

    def sse(i, j):
        m = j - i
        return s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / m

    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            cost = best[i] + sse(i, j) + penalty
            if cost < best[j]:
                best[j], cut[j] = cost, i
    pieces = []
    j = n
    while j > 0:
        pieces.append((cut[j], j))
        j = cut[j]
    return pieces[::-1]


def detect_plateaus(sizes_bytes, bandwidths, cache_sizes: dict[str, int], min_points: int = 3,
                    min_step: float = 0.1) -> list[dict]:
    """The bandwidth plateaus of a working-set sweep, one per memory level, each set beside
    the cache it lines up with.

    sizes_bytes, bandwidths -- the curve (bandwidths in bytes/s; points in any order).
    cache_sizes             -- cache bytes by level the sweep's threads hold together: for one
                               thread `cache_sizes()`, for several `cache_capacity(cpus)`
                               (private caches add up across cores).

    How: on log bandwidth (levels differ by ratios), split the curve into constant pieces by
    penalised least squares. The penalty per piece is the larger of two: one from the noise
    (robust spread of neighbour differences), so noise starts no piece, and the cost of
    ignoring a `min_step` step (relative) over `min_points` points each side, so slow drifts
    are not cut into slivers. Pieces shorter than `min_points` are transitions and are left
    out; neighbouring pieces within `min_step` of each other are joined.
    Each piece is named after the smallest cache whose size is at least the piece's last size
    / 1.5 (a plateau can run a little past the nominal size: victim caches, the point grid),
    or DRAM past every cache. A level keeps its longest piece (most points, then fastest);
    its other pieces (a bump, or a shared cache slowly filling up) are counted in "pieces".
    A level with no piece (a cache that brings no speed-up) is absent from the list.

    Returns, smallest sizes first: {"level", "first_bytes", "last_bytes", "points",
    "median_gbs", "nominal_bytes" (None for DRAM), "pieces"}.
    """
    order = np.argsort(np.asarray(sizes_bytes, dtype=float), kind="stable")
    sizes = np.asarray(sizes_bytes, dtype=float)[order]
    bw = np.asarray(bandwidths, dtype=float)[order]
    if len(sizes) < min_points or np.any(bw <= 0):
        return []
    y = np.log(bw)
    steps = np.diff(y)
    # Normal-equivalent spread of one point, from neighbour differences; the steps between
    # plateaus are few, so the median ignores them.
    sigma = 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / math.sqrt(2)
    # Splitting 2 x min_points points at a step of d lowers the squared error by min_points/2 * d^2.
    penalty = max(4.0 * sigma**2 * math.log(len(y)), min_points / 2 * math.log1p(min_step) ** 2)

    pieces = []
    for lo, hi in _segments(y, penalty):
        if hi - lo < min_points:
            continue
        if pieces and abs(np.median(y[lo:hi]) - pieces[-1]["log_median"]) < math.log1p(min_step):
            lo = pieces.pop()["lo"]  # same level split by a few disturbed points: join them
        pieces.append({"lo": lo, "hi": hi, "log_median": float(np.median(y[lo:hi]))})

    levels = sorted(cache_sizes.items(), key=lambda item: item[1])
    found: dict[str, dict] = {}
    for piece in pieces:
        lo, hi = piece["lo"], piece["hi"]
        level, nominal = "DRAM", None
        for name, size in levels:
            if size >= sizes[hi - 1] / 1.5:
                level, nominal = name, size
                break
        entry = {"level": level, "first_bytes": int(sizes[lo]), "last_bytes": int(sizes[hi - 1]),
                 "points": hi - lo, "median_gbs": round(float(np.median(bw[lo:hi])) / 1e9, 3),
                 "nominal_bytes": nominal, "pieces": 1}
        kept = found.get(level)
        if kept is None:
            found[level] = entry
            continue
        entry["pieces"] = kept["pieces"] + 1
        if (entry["points"], entry["median_gbs"]) > (kept["points"], kept["median_gbs"]):
            found[level] = entry
        else:
            kept["pieces"] = entry["pieces"]
    return sorted(found.values(), key=lambda entry: entry["first_bytes"])
