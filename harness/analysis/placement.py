"""Where a measured op stands on the roofline: the one placement every record, table, plot
and report uses.

For a record that counted its bytes (and FLOPs, possibly zero), the roof is the run's
frozen profile snapshot at the record's thread count (`roof_for`):
- compute: the best FMA level measured for the record's dtype (a dtype without a ceiling
  of its own is placed against fp32's, and the placement says so);
- memory: the bandwidth of the level the op's working set fits in (cache-aware: the
  working set against the cache capacity the record's threads hold together), the DRAM
  figure kept beside it. A level without a measured bandwidth at those threads moves the
  op to the next slower level that has one, said in `level_reason`.
Where nothing was measured, the compute side is the nominal peak (cores x GHz from the OS x
FLOP/cycle from the microarchitecture table), labelled "datasheet", and the memory side is
unknown. Efficiency = roofline time / measured median; above 100% it comes with the
specific reason it can happen, or is flagged as a figure to distrust.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.analysis.roofline import efficiency, roofline_bound
from harness.analysis.snapshot import FALLBACK_DTYPE, Snapshot, SnapshotCeiling
from harness.core.records import Placement, Record
from harness.core.text import fmt_bytes_binary, fmt_si

# Efficiency this far above 100% needs an explanation (below it, timing noise covers it).
ABOVE_ROOF = 1.05
# Probes that are also ops worth placing: a BLAS GEMM against the FMA peak.
PLACED_PROBES = ("probe.gemm",)


@dataclass
class Roof:
    """The ceilings one record is placed against."""

    compute: SnapshotCeiling | None
    peak_flops_per_s: float | None
    bandwidth: SnapshotCeiling | None
    level: str | None
    level_reason: str
    dram: SnapshotCeiling | None
    ceiling_dtype: str
    source: str  # measured | datasheet
    notes: list[str]


def working_set(record: Record) -> float:
    return record.cost.working_set_bytes or record.cost.bytes


def memory_level(snap: Snapshot, nbytes: float, threads: int | None, device: str = "cpu"
                 ) -> tuple[SnapshotCeiling | None, str | None, str]:
    """(bandwidth ceiling, level, why) for a working set of `nbytes` at `threads`."""
    levels = snap.memory_levels(threads, device)
    if device != "cpu":
        bw = snap.bandwidth(levels[-1][0], None, device) if levels else None
        return bw, bw.name if bw else None, f"{device}: placed against its {bw.name if bw else 'unknown'} bandwidth"
    fits = next((i for i, (lvl, size) in enumerate(levels) if size is None or nbytes <= size), len(levels) - 1)
    level, size = levels[fits]
    held = f"{fmt_bytes_binary(size)} held by {threads} thread{'s' if threads != 1 else ''}" if size else "past every cache"
    why = f"working set {fmt_bytes_binary(nbytes)} fits in {level} ({held})" if size else \
        f"working set {fmt_bytes_binary(nbytes)} is larger than every cache: DRAM"
    for lvl, _ in levels[fits:]:
        bw = snap.bandwidth(lvl, threads)
        if bw is not None:
            if lvl != level:
                why += f"; no {level} bandwidth measured at {threads} threads, so the next slower level, {lvl}"
            return bw, lvl, why
    return None, None, why + "; no bandwidth measured at these threads"


def roof_for(record: Record, snap: Snapshot) -> Roof:
    """The ceilings `record` is placed against (compute and memory), from the snapshot."""
    return roof_at(record.dtype, record.threads, working_set(record), snap, record.params.get("device") or "cpu")


def roof_at(dtype: str, threads: int | None, working_set_bytes: float, snap: Snapshot, device: str = "cpu") -> Roof:
    """The ceilings an op of `dtype` at `threads` whose working set is `working_set_bytes` is
    placed against: what roof_for gives a record, for an op that has no record yet (a kernel
    whose time is to be predicted)."""
    threads = threads if device == "cpu" else None
    notes = []
    compute, used = snap.compute(dtype, threads, device), dtype
    if compute is None and FALLBACK_DTYPE.get(dtype):
        fallback = FALLBACK_DTYPE[dtype]
        compute = snap.compute(fallback, threads, device)
        if compute is not None:
            used = fallback
            notes.append(f"no {dtype} compute ceiling: placed against {fallback}'s (the FMA converts to it)")
    bandwidth, level, why = memory_level(snap, working_set_bytes, threads, device)
    dram = snap.bandwidth("DRAM" if device == "cpu" else "HBM", threads, device)
    if compute is not None:
        return Roof(compute, compute.value, bandwidth, level, why, dram, used, "measured", notes)
    peak = snap.nominal_peak(dtype, threads) if device == "cpu" else None
    notes.append(f"no measured {dtype} compute ceiling at {threads} threads: the nominal (datasheet) peak")
    return Roof(None, peak, bandwidth, level, why, dram, used if peak else dtype, "datasheet", notes)


def roofline_time(flops: float, nbytes: float, roof: Roof) -> float | None:
    """max(FLOPs / peak, bytes / bandwidth) against `roof`, with whichever side is known."""
    peak, bw = roof.peak_flops_per_s, roof.bandwidth.value if roof.bandwidth else None
    if peak and bw:
        return roofline_bound(flops, nbytes, peak, bw).theoretical_time_s
    if peak and flops:
        return flops / peak
    if bw and nbytes:
        return nbytes / bw
    return None


def _explain(eff: float, bound: str, roof: Roof, record: Record, snap: Snapshot, attained_bps: float) -> str | None:
    if eff <= ABOVE_ROOF:
        return None
    if bound.startswith("compute"):
        if roof.source == "datasheet":
            return ("above the nominal (datasheet) peak: the clock under load can run above the GHz the OS "
                    "reports (in a VM /proc/cpuinfo shows the timestamp-counter rate); `harness probe --quick` "
                    "measures the real ceiling")
        return ("faster than the compute ceiling: distrust this figure (the FLOP count may include work the "
                "kernel skips, such as zero padding or a fused op, or the ceiling was measured low)")
    faster = [snap.bandwidth(lvl, record.threads) for lvl, _ in snap.memory_levels(record.threads)]
    faster = [c for c in faster if c is not None and c.value > (roof.bandwidth.value if roof.bandwidth else 0)]
    if faster and attained_bps <= max(c.value for c in faster):
        best = min((c for c in faster if c.value >= attained_bps), key=lambda c: c.value)
        return (f"above the {roof.level} bandwidth but within {best.name}'s ({fmt_si(best.value, 'B/s')}): part of "
                f"the working set (estimated as every tensor once) stayed in {best.name}")
    return ("faster than every measured bandwidth: distrust this figure (the byte count, every tensor moved "
            "once, may be more than the kernel moves)")


def place(record: Record, snap: Snapshot) -> Placement | None:
    """The record's place on the roofline, or None for a record that is not a placeable op."""
    if not record.measured or record.cost is None or not record.cost.placeable:
        return None
    if record.kind.startswith("probe.") and record.kind not in PLACED_PROBES:
        return None  # a probe measures a ceiling: judging it against the roof is circular
    measured_s = record.timing.median
    if not measured_s > 0:
        return None
    flops, nbytes = record.cost.flops, record.cost.bytes
    roof = roof_for(record, snap)
    notes = list(roof.notes)
    peak, bw = roof.peak_flops_per_s, roof.bandwidth.value if roof.bandwidth else None
    if peak and bw:
        b = roofline_bound(flops, nbytes, peak, bw)
        bound, theory, ridge = b.bound, b.theoretical_time_s, b.ridge_intensity
    elif peak and flops:  # only the compute side of the roof is known
        bound, theory, ridge = "compute (bandwidth unknown)", flops / peak, None
    elif bw:
        bound, theory, ridge = "memory (peak unknown)", nbytes / bw, None
    else:
        return None
    eff = efficiency(measured_s, theory)
    dram_theory = dram_eff = None
    if roof.dram is not None and peak:
        dram_theory = roofline_bound(flops, nbytes, peak, roof.dram.value).theoretical_time_s
        dram_eff = efficiency(measured_s, dram_theory)
    sheet = snap.nominal_peak(roof.ceiling_dtype, record.threads)
    threads = roof.compute.threads if roof.compute else record.threads
    return Placement(
        source=roof.source, bound=bound, theoretical_time_s=theory, efficiency=eff,
        intensity=flops / nbytes, attained_flops_per_s=flops / measured_s, attained_bytes_per_s=nbytes / measured_s,
        peak_flops_per_s=peak, bandwidth_bytes_per_s=bw, ridge_intensity=ridge, level=roof.level,
        level_reason=roof.level_reason, dtype=record.dtype, ceiling_dtype=roof.ceiling_dtype, threads=threads,
        compute_ceiling=(f"{roof.compute.dtype} {roof.compute.name}, {threads} thread{'s' if threads != 1 else ''}"
                         if roof.compute else f"nominal {roof.ceiling_dtype} peak"),
        dram_bandwidth_bytes_per_s=roof.dram.value if roof.dram else None, dram_theoretical_time_s=dram_theory,
        dram_efficiency=dram_eff, datasheet_peak_flops_per_s=sheet,
        datasheet_efficiency=efficiency(measured_s, flops / sheet) if sheet and flops else None,
        profile=snap.profile_path,
        explanation=_explain(eff, bound, roof, record, snap, nbytes / measured_s),
        notes=notes)


def placer(snap: Snapshot):
    """record -> record with its placement: the run's hook as each record arrives."""
    def enrich(record: Record) -> Record:
        record.roofline = place(record, snap)
        return record
    return enrich
