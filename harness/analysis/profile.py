"""The device profile: every measurement of every ceiling, with its run, time, conditions and
health, and the rule that picks the ceiling in force.

A ceiling is a compute peak (FLOP/s per dtype, ISA level and thread count) or a bandwidth
(bytes/s per memory level and thread count), on the CPU or a GPU.

Measuring one (the standard rule, ERT's and likwid-bench's): the best of repeated
measurements, i.e. the work of one call over the fastest sample, FLOP/s or bytes/s; the
median sample is kept beside it. A probe case whose best and median disagree by more than
SPREAD_TOLERANCE is re-measured in a fresh worker, up to REMEASURE_CAP times (the session
does that); every attempt is kept, and one whose best another attempt reproduced within
SPREAD_TOLERANCE is healthy however noisy its median.

Health: a measurement is suspect, kept but never used as a ceiling, when its record was
suspect (noise, load or steal on the pinned CPUs, a clock that moved) or when it fails a
check against the others (`health_checks`): the bandwidth hierarchy (L1 >= L2 >= L3 >= DRAM
at each thread count), thread scaling (k threads of FMA well below k x one thread: the CPUs
may share a physical core, or the host oversubscribes them), a peak above the theoretical
peak at the clock measured with it, and a GEMM not far enough past the ridge to measure a
compute ceiling.

The ceiling in force, per (device, kind, name, dtype, threads): the best healthy measurement
among those of the RECENT_RUNS most recent runs that measured it (for BLAS: with the BLAS
library the device has now). Best, because every disturbance of a peak measurement slows
it down; recent, so that a machine that changed (another host, a BIOS, a library) moves its
ceilings within a few probe runs. `harness profile` shows every ceiling, its history and
why the one in force was chosen; `--forget RUN` drops a run's measurements, `--reset`
starts afresh (the old file is kept aside).

File: results/<device-slug>/profile.json, schema 2 (schema 1 files, which kept only the
latest figure per ceiling, are read as one measurement each of unknown health: healthy).
Every run freezes the ceilings in force into RUN/profile.json (`Snapshot`, snapshot.py);
placement, tables, plots and later reports of that run read only that snapshot.
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.analysis import plateaus as plateau_finder
from harness.core import isa
from harness.core.errors import UsageError
from harness.core.records import Record
from harness.core.store import write_json_file
from harness.core.text import fmt_si

PROFILE = "profile.json"
PROFILE_SCHEMA = 2
RECENT_RUNS = 5
# A probe whose best repetition is this much faster than its median is re-measured.
SPREAD_TOLERANCE = 0.10
REMEASURE_CAP = 2
# k threads of FMA must reach this share of k x the 1-thread figure to count as scaling.
SCALING_FLOOR = 0.75
# A faster memory level may be this much slower than the next one before it is suspect
# (two levels can legitimately measure alike where a cache brings no speed-up).
HIERARCHY_TOLERANCE = 0.05
# A peak this far above cores x measured clock x FLOP/cycle is not a peak but an error.
ABOVE_THEORY_TOLERANCE = 0.05
# A GEMM measures a compute ceiling only at an intensity this many times the ridge.
GEMM_RIDGE_FACTOR = 4.0
MEMORY_LEVELS = ("L1", "L2", "L3", "DRAM")
PROBE_KINDS = ("probe.fma", "probe.bf16_dot", "probe.gemm", "probe.stream", "probe.sweep", "probe.frequency",
               "probe.cuda_fma", "probe.cuda_gemm", "probe.cuda_copy")


@dataclass
class CeilingMeasurement:
    """One measurement of one ceiling."""

    kind: str  # compute | bandwidth | clock
    name: str  # ISA level (avx512, blas, avx512_bf16, cuda_fma...), memory level (L1..DRAM, HBM) or "core"
    value: float  # best repetition: FLOP/s, bytes/s or GHz
    median: float | None = None
    dtype: str | None = None
    threads: int | None = None
    device: str = "cpu"
    repetitions: int = 1
    source: str = ""
    case_id: str | None = None
    run_id: str | None = None
    measured_at: float | None = None
    library: str | None = None  # the BLAS library and version, for name "blas"
    clock_ghz: float | None = None  # the core clock read right after the measurement
    health: list[str] = field(default_factory=list)  # why it is suspect; empty = healthy

    @property
    def key(self) -> tuple:
        return (self.device, self.kind, self.name, self.dtype, self.threads)

    @property
    def healthy(self) -> bool:
        return not self.health

    @property
    def spread(self) -> float | None:
        """How much faster the best repetition was than the median."""
        return self.value / self.median - 1 if self.median else None

    def label(self) -> str:
        what = f"{self.dtype} {self.name}" if self.dtype else self.name
        where = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        return f"{what}{where}" + ("" if self.device == "cpu" else f" ({self.device})")


@dataclass
class Ceiling:
    """The ceiling in force for one key, and why it was chosen."""

    measurement: CeilingMeasurement
    rule: str
    candidates: int

    def __getattr__(self, name):  # the measurement's fields read through
        return getattr(self.measurement, name)


@dataclass
class DeviceProfile:
    device: dict = field(default_factory=dict)
    measurements: list[CeilingMeasurement] = field(default_factory=list)
    plateaus: list[dict] = field(default_factory=list)  # the latest sweep curve's plateaus per (op, threads)
    sweep: list[dict] = field(default_factory=list)  # the latest sweep curve's points per (op, threads)
    forgotten_runs: list[str] = field(default_factory=list)
    schema_version: int = PROFILE_SCHEMA

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "DeviceProfile":
        version = data.get("schema_version", 1)
        if version == 1:
            return cls.from_v1(data)
        if version != PROFILE_SCHEMA:
            raise ValueError(f"schema_version {version!r} is not one this harness reads")
        fields = {f.name for f in dataclasses.fields(CeilingMeasurement)}
        return cls(device=data.get("device") or {},
                   measurements=[CeilingMeasurement(**{k: v for k, v in m.items() if k in fields})
                                 for m in data.get("measurements") or []],
                   plateaus=data.get("plateaus") or [], sweep=data.get("sweep") or [],
                   forgotten_runs=data.get("forgotten_runs") or [])

    @classmethod
    def from_v1(cls, data: dict) -> "DeviceProfile":
        """A schema-1 profile (the latest figure per ceiling, no history): one measurement each."""
        out = []
        for e in data.get("compute") or []:
            out.append(CeilingMeasurement("compute", e["isa"], e["flops_per_s"], dtype=e.get("dtype"),
                                          threads=e.get("threads"), source=e.get("source", ""),
                                          run_id=e.get("run_id")))
        for e in data.get("bandwidth") or []:
            out.append(CeilingMeasurement("bandwidth", e["level"], e["bytes_per_s"], threads=e.get("threads"),
                                          source=e.get("source", ""), run_id=e.get("run_id")))
        for section, device in (("cuda", "cuda"),):
            for e in (data.get(section) or {}).get("compute") or []:
                out.append(CeilingMeasurement("compute", e["isa"], e["flops_per_s"], dtype=e.get("dtype"),
                                              device=device, source=e.get("source", ""), run_id=e.get("run_id")))
            for e in (data.get(section) or {}).get("bandwidth") or []:
                out.append(CeilingMeasurement("bandwidth", e["level"], e["bytes_per_s"], device=device,
                                              source=e.get("source", ""), run_id=e.get("run_id")))
        if data.get("frequency_ghz"):
            out.append(CeilingMeasurement("clock", "core", data["frequency_ghz"],
                                          source=data.get("frequency_source", "probe.frequency")))
        return cls(device=data.get("device") or {}, measurements=out, plateaus=data.get("plateaus") or [])

    # ---------------------------------------------------------------- the rule

    def runs_in_order(self) -> list[str]:
        """Run ids, oldest first, by the time their measurements were taken."""
        first: dict[str, float] = {}
        for m in self.measurements:
            if m.run_id is not None:
                first[m.run_id] = min(first.get(m.run_id, m.measured_at or 0), m.measured_at or 0)
        return sorted(first, key=lambda r: (first[r], r))

    def recent(self, blas_library: str | None = None) -> dict[tuple, list[CeilingMeasurement]]:
        """Per ceiling key, every measurement (healthy or not) of the RECENT_RUNS most recent runs
        that measured it, oldest first: what the rule chooses from (for BLAS, with this library)."""
        by_key: dict[tuple, list[CeilingMeasurement]] = {}
        for m in sorted(self.measurements, key=lambda m: m.measured_at or 0):
            by_key.setdefault(m.key, []).append(m)
        out = {}
        for key, history in by_key.items():
            if key[2] == "blas" and blas_library:
                history = [m for m in history if m.library in (None, blas_library)]
            recent = set(list(dict.fromkeys(m.run_id for m in history))[-RECENT_RUNS:])
            out[key] = [m for m in history if m.run_id in recent]
        return out

    def in_force(self, blas_library: str | None = None) -> list[Ceiling]:
        """The ceiling in force for every key that has a healthy recent measurement."""
        chosen = []
        for key, history in self.recent(blas_library).items():
            recent = {m.run_id for m in history}
            candidates = [m for m in history if m.healthy]
            if not candidates:
                continue
            best = max(candidates, key=lambda m: m.value)
            rule = (f"best of {len(candidates)} healthy measurement{'s' if len(candidates) != 1 else ''} "
                    f"from the {len(recent)} most recent run{'s' if len(recent) != 1 else ''} that measured it")
            if key[2] == "blas" and blas_library:
                rule += f", with {blas_library}"
            chosen.append(Ceiling(best, rule, len(candidates)))
        return chosen

    def history(self, key: tuple) -> list[CeilingMeasurement]:
        return sorted((m for m in self.measurements if m.key == key), key=lambda m: m.measured_at or 0)

    def forget(self, run_id: str) -> int:
        before = len(self.measurements)
        self.measurements = [m for m in self.measurements if m.run_id != run_id]
        self.plateaus = [p for p in self.plateaus if p.get("run_id") != run_id]
        self.sweep = [p for p in self.sweep if p.get("run_id") != run_id]
        if before != len(self.measurements):
            self.forgotten_runs.append(run_id)
        return before - len(self.measurements)


# --------------------------------------------------------------------------- reading and writing

def profile_path(results_root: str | Path, device_slug: str) -> Path:
    return Path(results_root) / device_slug / PROFILE


def load_profile(path: str | Path) -> DeviceProfile | None:
    """The device profile at `path`, or None where there is none. A damaged one is moved aside
    (never overwritten: it holds measurements) and said so, and the run goes on without it.
    One written by a newer harness is no damage: it is left alone, and that is an error."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("kind") != "snapshot":
            version = data.get("schema_version")
            if isinstance(version, int) and not isinstance(version, bool) and version > PROFILE_SCHEMA:
                raise UsageError(f"{path}: written by a newer harness (profile schema {version}; this one reads "
                                 f"up to {PROFILE_SCHEMA}); update the harness, or give another --results")
            return DeviceProfile.from_json(data)
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        pass
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    try:
        os.replace(path, aside)
    except OSError as exc:
        raise UsageError(f"{path}: not a readable device profile, and it cannot be moved aside "
                         f"({exc.strerror or exc})") from None
    print(f"warning: {path} was not a readable device profile; moved it to {aside}", file=sys.stderr)
    return None


def save_profile(path: str | Path, profile: DeviceProfile) -> None:
    """Written whole or not at all; a write the disk refuses is a StoreError."""
    write_json_file(Path(path), profile.to_json(), "device profile")


# --------------------------------------------------------------------------- from records

def best_and_median(work: float, record: Record) -> tuple[float, float]:
    """(work / fastest sample, work / median sample): the best-of-N figure and the median's."""
    return work / min(record.timing.samples), work / record.timing.median


def repetition_spread(record: Record) -> float | None:
    """How much faster a probe's fastest sample was than its median (0.1 = 10%)."""
    if not record.measured or not record.timing.samples:
        return None
    return record.timing.median / min(record.timing.samples) - 1


def _clock(record: Record) -> float | None:
    return record.conditions.clock_ghz_after if record.conditions else None


def measurements_from(records: list[Record], run_id: str, blas_library: str | None = None,
                      cache_capacity: dict | None = None) -> tuple[list[CeilingMeasurement], list[dict], list[dict]]:
    """The ceilings one run measured (every attempt), the sweep plateaus and the sweep points."""
    out: list[CeilingMeasurement] = []
    now = time.time()

    def add(kind, name, work, r: Record, **extra):
        best, median = best_and_median(work, r)
        out.append(CeilingMeasurement(kind, name, best, median, threads=r.threads, repetitions=r.timing.n,
                                      case_id=r.case_id, run_id=run_id, measured_at=r.started_at or now,
                                      clock_ghz=_clock(r), health=[f"suspect record: {why}" for why in
                                                                   r.suspect_reasons], **extra))

    for r in records:
        if not r.measured or r.kind not in PROBE_KINDS:
            continue
        cost = r.cost
        if r.kind == "probe.fma":
            add("compute", r.info.get("isa", r.params["isa"]), cost.flops, r, dtype=r.params["dtype"],
                source="probe.fma")
        elif r.kind == "probe.bf16_dot":
            add("compute", "avx512_bf16", cost.flops, r, dtype="bfloat16", source="probe.bf16_dot")
        elif r.kind == "probe.gemm":
            add("compute", "blas", cost.flops, r, dtype=r.params["dtype"], library=blas_library,
                source=f"probe.gemm n={r.params['n']} (intensity {cost.intensity:.3g} FLOP/B)")
        elif r.kind == "probe.stream":
            name = "DRAM" if r.params["op"] == "triad" else f"DRAM {r.params['op']}"
            kind = "bandwidth" if r.params["op"] == "triad" else "stream"
            add(kind, name, cost.bytes, r, source=f"probe.stream {r.params['op']} ({r.params['impl']}, STREAM bytes)")
        elif r.kind == "probe.frequency":
            ghz = [r.info["adds"] / s / 1e9 for s in r.timing.samples]
            out.append(CeilingMeasurement("clock", "core", max(ghz), statistics.median(ghz), threads=1,
                                          repetitions=r.timing.n, source="probe.frequency (dependent add chain)",
                                          case_id=r.case_id, run_id=run_id, measured_at=r.started_at or now,
                                          health=[f"suspect record: {why}" for why in r.suspect_reasons]))
        elif r.kind in ("probe.cuda_fma", "probe.cuda_gemm"):
            add("compute", r.kind.split(".", 1)[1], cost.flops, r, dtype=r.params["dtype"], device="cuda",
                source=r.kind)
        elif r.kind == "probe.cuda_copy":
            level = "GPU L2" if r.info.get("resident") == "L2" else "HBM"
            add("bandwidth", level, cost.bytes, r, device="cuda",
                source=f"probe.cuda_copy ({r.params.get('impl')}; bytes read + written)")
    plateaus, points = sweep_ceilings(records, run_id, out, cache_capacity)
    return out, plateaus, points


def sweep_ceilings(records: list[Record], run_id: str, out: list[CeilingMeasurement],
                   cache_capacity: dict | None) -> tuple[list[dict], list[dict]]:
    """Cache-level ceilings from the working-set sweep: per (op, threads), the plateaus of the
    best-of curve, each named by the cache it fits in; DRAM is left to STREAM triad."""
    # One point per size: a size re-measured in a fresh worker (attempt 2) replaces attempt 1.
    latest: dict[tuple, Record] = {}
    for r in records:
        key = (r.params.get("op"), r.threads, r.params.get("kbytes"))
        if r.measured and r.kind == "probe.sweep" and (key not in latest or r.attempt >= latest[key].attempt):
            latest[key] = r
    curves: dict[tuple, list[Record]] = {}
    for r in latest.values():
        curves.setdefault((r.params["op"], r.threads), []).append(r)
    plateaus, points = [], []
    for (op, threads), recs in sorted(curves.items()):
        recs = sorted(recs, key=lambda r: r.params["kbytes"])
        sizes = [r.params["kbytes"] * 1024 for r in recs]
        best = [best_and_median(r.cost.bytes, r)[0] for r in recs]
        capacity = recs[0].info.get("cache_capacity") or (cache_capacity or {}).get(threads) or {}
        for r, size, bw in zip(recs, sizes, best):
            points.append({"op": op, "threads": threads, "bytes": size, "bytes_per_s": bw,
                           "median_bytes_per_s": r.metrics.get("bytes_per_s"), "run_id": run_id,
                           "suspect": bool(r.suspect_reasons)})
        if len(recs) >= 6:
            found = plateau_finder.detect_plateaus(sizes, best, capacity)
        else:  # a few points only (the quick probe): name each by the cache it fits in
            found = []
            for size, bw in zip(sizes, best):
                level = next((lvl for lvl, cap in sorted(capacity.items(), key=lambda kv: kv[1])
                              if size <= cap), "DRAM")
                found.append({"level": level, "first_bytes": size, "last_bytes": size, "points": 1,
                              "median_gbs": bw / 1e9, "nominal_bytes": capacity.get(level)})
        by_size = {size: r for size, r in zip(sizes, recs)}
        for p in found:
            plateaus.append({"op": op, "threads": threads, "run_id": run_id, **p})
            if p["level"] == "DRAM":
                continue
            inside = [by_size[s] for s in sizes if p["first_bytes"] <= s <= p["last_bytes"]]
            health = [f"suspect record {r.case_id}: {why}" for r in inside for why in r.suspect_reasons]
            out.append(CeilingMeasurement(
                "bandwidth", p["level"], p["median_gbs"] * 1e9,
                statistics.median(r.metrics.get("bytes_per_s") or 0 for r in inside),
                threads=threads, repetitions=sum(r.timing.n for r in inside), case_id=inside[0].case_id,
                source=f"probe.sweep {op} plateau, {p['points']} point{'s' if p['points'] != 1 else ''}",
                run_id=run_id, measured_at=inside[0].started_at or time.time(), clock_ghz=_clock(inside[0]),
                health=health))
    return plateaus, points


# --------------------------------------------------------------------------- health

@dataclass
class HealthContext:
    """What the checks need beyond the measurements: the per-level FLOP/cycle table and the
    cores available (fingerprint.flops_per_cycle, physical cores)."""

    flops_per_cycle: object  # (level, dtype) -> FLOP/cycle/core, or None where unknown
    physical_cores: int
    clock_ghz: float | None = None  # the run's own clock measurement, where the record has none


def _flag(m: CeilingMeasurement, why: str) -> None:
    if why not in m.health:
        m.health.append(why)


def health_checks(new: list[CeilingMeasurement], reference: list[Ceiling], ctx: HealthContext,
                  gemm_intensity: dict | None = None) -> None:
    """Marks suspect (in place) each new measurement that fails a check against the others
    of its run and the ceilings already in force (`reference`)."""
    in_force = {c.measurement.key: c.measurement for c in reference}
    fresh = {id(m) for m in new}

    def best(kind, name, dtype, threads, device="cpu"):
        """A healthy figure for the key from this run, else the one in force."""
        mine = [m for m in new if m.key == (device, kind, name, dtype, threads) and m.healthy]
        if mine:
            return max(mine, key=lambda m: m.value)
        return in_force.get((device, kind, name, dtype, threads))

    for m in new:
        if m.device != "cpu" or m.kind != "compute":
            continue
        # A peak above what the cores can do at the clock measured with it is an error.
        level = {"blas": None, "avx512_bf16": "avx512"}.get(m.name, m.name)
        ghz = m.clock_ghz or ctx.clock_ghz
        fpc = ctx.flops_per_cycle(level, "float32" if m.dtype == "bfloat16" else m.dtype) if level else None
        if fpc and m.name == "avx512_bf16":
            fpc *= 2  # vdpbf16ps: two bf16 multiply-adds per fp32 lane
        if fpc and ghz and m.threads:
            theory = min(m.threads, ctx.physical_cores) * ghz * 1e9 * fpc
            if m.value > theory * (1 + ABOVE_THEORY_TOLERANCE):
                _flag(m, f"above the theoretical peak at the measured clock: {fmt_si(m.value, 'FLOP/s', 4)} > "
                         f"{min(m.threads, ctx.physical_cores)} cores x {ghz:.3g} GHz x {fpc:g} FLOP/cycle = "
                         f"{fmt_si(theory, 'FLOP/s', 4)}")
        # k threads of FMA must scale from one thread.
        if m.name != "blas" and m.threads and m.threads > 1:
            one = best("compute", m.name, m.dtype, 1)
            cores = min(m.threads, ctx.physical_cores)
            if one is not None and m.value < SCALING_FLOOR * cores * one.value:
                _flag(m, f"thread scaling: {m.threads} threads reach {m.value / one.value:.2f}x one thread "
                         f"(expected about {cores}x): these CPUs may share a physical core, or the host "
                         "oversubscribes them")
        # A GEMM measures a compute ceiling only far past the ridge.
        if m.name == "blas":
            peak = best("compute", _widest(new, reference, m.dtype, m.threads), m.dtype, m.threads)
            dram = best("bandwidth", "DRAM", None, m.threads)
            intensity = (gemm_intensity or {}).get(m.case_id)
            if peak is None or dram is None or intensity is None:
                _flag(m, "GEMM: the ridge is unknown (no FMA peak or DRAM bandwidth at these threads), so it "
                         "cannot be told whether this size is compute-bound")
            elif intensity < GEMM_RIDGE_FACTOR * peak.value / dram.value:
                _flag(m, f"GEMM intensity {intensity:.3g} FLOP/B is not far past the ridge "
                         f"({peak.value / dram.value:.3g} FLOP/B; at least {GEMM_RIDGE_FACTOR:g}x is needed)")
    # The memory hierarchy at each thread count: a faster level may not measure slower.
    for threads in sorted({m.threads for m in new if m.kind == "bandwidth" and m.device == "cpu"}):
        levels = [(lvl, best("bandwidth", lvl, None, threads)) for lvl in MEMORY_LEVELS]
        levels = [(lvl, m) for lvl, m in levels if m is not None]
        for (upper, fast), (lower, slow) in zip(levels, levels[1:]):
            if fast.value < slow.value * (1 - HIERARCHY_TOLERANCE):
                target = fast if id(fast) in fresh else slow if id(slow) in fresh else None
                if target is not None:
                    _flag(target, f"memory hierarchy: {upper} {fmt_si(fast.value, 'B/s')} is below {lower} "
                                  f"{fmt_si(slow.value, 'B/s')} at {threads} thread{'s' if threads != 1 else ''}")
        # ... and more threads may not measure slower than one thread at the same level.
        if threads > 1:
            for lvl, m in levels:
                one = best("bandwidth", lvl, None, 1)
                if id(m) in fresh and one is not None and m.value < one.value * (1 - HIERARCHY_TOLERANCE):
                    _flag(m, f"thread scaling: {lvl} at {threads} threads {fmt_si(m.value, 'B/s')} is below one "
                             f"thread's {fmt_si(one.value, 'B/s')}: these CPUs may share a physical core, or the "
                             "host oversubscribes them")
    # Repetitions that still disagree after the re-measurements: suspect, unless another attempt
    # in a fresh worker reproduced the same best within the tolerance. Noise only ever slows a
    # peak down, so a best that two independent attempts agree on is the peak, however noisy
    # the medians around it (on a busy host no attempt may ever pass the spread check).
    for m in new:
        if m.spread is not None and m.spread > SPREAD_TOLERANCE and m.kind in ("compute", "bandwidth"):
            if not any(o is not m and o.key == m.key and abs(o.value / m.value - 1) <= SPREAD_TOLERANCE
                       for o in new if o.value):
                _flag(m, f"repetitions disagree: the best is {100 * m.spread:.0f}% faster than the median "
                         f"(tolerance {100 * SPREAD_TOLERANCE:.0f}%) and no other attempt reproduced it")


def _widest(new, reference, dtype, threads) -> str:
    """The widest ISA level with an FMA figure for dtype at threads (the ridge's peak)."""
    order = isa.LEVELS
    names = {m.name for m in new if m.kind == "compute" and m.dtype == dtype and m.threads == threads}
    names |= {c.measurement.name for c in reference if c.measurement.kind == "compute"
              and c.measurement.dtype == dtype and c.measurement.threads == threads}
    ranked = [n for n in order if n in names]
    return ranked[-1] if ranked else "avx512"


def add_run(profile: DeviceProfile, records: list[Record], run_id: str, ctx: HealthContext,
            blas_library: str | None = None, cache_capacity: dict | None = None) -> list[CeilingMeasurement]:
    """Adds one run's probe measurements (health checked) to the profile; returns them."""
    new, plateaus, points = measurements_from(records, run_id, blas_library, cache_capacity)
    if not new and not plateaus:
        return []
    clocks = [m.value for m in new if m.kind == "clock" and m.healthy]
    ctx = dataclasses.replace(ctx, clock_ghz=ctx.clock_ghz or (max(clocks) if clocks else None))
    gemm = {r.case_id: r.cost.intensity for r in records if r.kind == "probe.gemm" and r.measured}
    health_checks(new, profile.in_force(blas_library), ctx, gemm)
    profile.measurements.extend(new)
    if plateaus:  # a new sweep of an (op, threads) replaces its whole curve
        redone = {(p["op"], p["threads"]) for p in plateaus}
        profile.plateaus = [p for p in profile.plateaus if (p["op"], p["threads"]) not in redone] + plateaus
        profile.sweep = [p for p in profile.sweep if (p["op"], p["threads"]) not in redone] + points
    return new
