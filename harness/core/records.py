"""The measurement record and the run manifest: typed, with one constructor per kind of
record and one JSON form.

A record is one case's result: its identity (case, kind, params, threads, CPUs), its cost
(FLOPs and bytes per call), its timing (every sample and their statistics), the page
faults and steal of its timed region, the conditions around it, its place on the
roofline (added by the analysis as it arrives) and its warnings. Status:

  ok       measured, and every check of the conditions passed
  suspect  measured, but a documented limit was passed (noise, load, steal, a moving
           clock): kept with its reasons, never used as a ceiling
  failed   the case raised, crashed, hung or ran out of memory (the reason is kept)
  skipped  the case cannot run here (no GPU, an ISA level the CPU lacks); never faked

JSON (`to_json`) is what records.jsonl holds, one object per line, and what `load_run`
flattens into a DataFrame. Schema versions:
  1  the first layout (no `suspect` status; pooled records kept per-process lists in
     timing.first_call_s and timing.warmup_iterations; layer records had no samples)
  2  this one: `status` may be "suspect" with `suspect_reasons`; pooled records keep their
     processes in timing.per_process; conditions.clock_ghz_before; cost.working_set_bytes.
`Record.from_json` reads both; a newer version is an error naming the file.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import UsageError
from harness.core.stats import summarize

SCHEMA_VERSION = 2
STATUSES = ("ok", "suspect", "failed", "skipped")
MEASURED = ("ok", "suspect")


def _plain(value):
    """A JSON-safe copy: dataclasses as dicts, tuples as lists, non-finite floats as None."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _build(cls, data: dict | None):
    """A dataclass from a JSON object, ignoring keys it does not know (written by a later
    minor change) and leaving absent ones at their defaults."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------- parts

@dataclass
class Cost:
    """What one call costs. flops: a multiply-add counts 2; bytes under `bytes_accounting`;
    working_set_bytes: the data one call touches (what must fit in a cache for the call to
    run from it), when it differs from bytes (a call that repeats a kernel moves more bytes
    than it holds)."""

    flops: float | None = None
    bytes: float | None = None
    bytes_accounting: str | None = None
    intensity: float | None = None
    working_set_bytes: float | None = None
    source: str | None = None
    params: int | None = None
    breakdown: dict | None = None  # flops_main, flops_bias, ... of a layer

    @classmethod
    def of(cls, flops, nbytes, **kwargs) -> "Cost":
        intensity = flops / nbytes if flops is not None and nbytes else None
        return cls(flops=flops, bytes=nbytes, intensity=intensity, **kwargs)

    @property
    def placeable(self) -> bool:
        return bool(self.bytes) and self.flops is not None


@dataclass
class Timing:
    """Seconds per call: every sample kept, and their statistics (core/stats.py)."""

    n: int
    median: float
    min: float
    max: float
    mean: float
    stdev: float
    cv: float
    p10: float
    p90: float
    q1: float
    q3: float
    iqr: float
    ci95_low: float
    ci95_high: float
    outliers: list[int] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    unit: str = "s per call"
    clock: str = "perf_counter"
    number: int = 1
    first_call_s: float | None = None
    warmup_samples: int = 0
    warmup_iterations: int = 0
    warmup_converged: bool = True
    timer_resolution_s: float | None = None
    timer_overhead_s: float | None = None
    timer_overhead_per_call_s: float | None = None
    timed_region_s: float | None = None
    policy: dict = field(default_factory=dict)
    processes: int = 1
    per_process: list[dict] | None = None  # median, first_call_s, warmup_iterations, worker_pid
    method: str | None = None  # how samples were taken where not by the core (a profiler)


@dataclass
class Faults:
    """Page faults and context switches over the timed region only, and hypervisor steal."""

    minor: int = 0
    major: int = 0
    minor_per_call: float = 0.0
    major_per_call: float = 0.0
    voluntary_switches: int = 0
    involuntary_switches: int = 0
    steal_fraction: float = 0.0


@dataclass
class Load:
    """Busy share of the pinned CPUs over a short idle interval, ours subtracted."""

    per_cpu_percent: dict = field(default_factory=dict)
    own_percent: float = 0.0
    others_percent: float = 0.0


@dataclass
class Conditions:
    load_before: Load | None = None
    load_after: Load | None = None
    cpufreq_mhz_before: dict | None = None
    cpufreq_mhz_after: dict | None = None
    clock_ghz_before: float | None = None
    clock_ghz_after: float | None = None
    library_threads: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict | None) -> "Conditions | None":
        if data is None:
            return None
        c = _build(cls, data)
        c.load_before = _build(Load, data.get("load_before"))
        c.load_after = _build(Load, data.get("load_after"))
        return c

    @property
    def others_percent(self) -> float:
        """The highest load from other processes seen before or after the case."""
        return max((l.others_percent for l in (self.load_before, self.load_after) if l), default=0.0)

    @property
    def clock_change(self) -> float | None:
        """Relative change of the core clock from before to after the timed region."""
        if self.clock_ghz_before and self.clock_ghz_after:
            return self.clock_ghz_after / self.clock_ghz_before - 1
        return None


@dataclass
class Placement:
    """Where a record stands on the roofline (analysis/placement.py writes it).

    The ceilings are those of the profile snapshot the run froze (`profile`), at the
    record's thread count; the memory side is the level the op's working set fits in
    (`level`, with `level_reason`), and the DRAM figures are kept beside it. source is
    "measured" or "datasheet" (no measured ceiling: the nominal peak, compute only)."""

    source: str
    bound: str
    theoretical_time_s: float | None
    efficiency: float | None
    intensity: float | None
    attained_flops_per_s: float | None
    attained_bytes_per_s: float | None
    peak_flops_per_s: float | None
    bandwidth_bytes_per_s: float | None = None
    ridge_intensity: float | None = None
    level: str | None = None
    level_reason: str | None = None
    dtype: str | None = None
    ceiling_dtype: str | None = None
    threads: int | None = None
    compute_ceiling: str | None = None  # the ceiling's name: "float32 avx512, 2 threads"
    dram_bandwidth_bytes_per_s: float | None = None
    dram_theoretical_time_s: float | None = None
    dram_efficiency: float | None = None
    datasheet_peak_flops_per_s: float | None = None
    datasheet_efficiency: float | None = None
    profile: str | None = None
    explanation: str | None = None  # why an efficiency above 100% is possible, or a distrust flag
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the record

@dataclass
class Record:
    case_id: str
    kind: str
    status: str
    params: dict = field(default_factory=dict)
    threads: int = 1
    cpus_requested: list[int] = field(default_factory=list)
    affinity: list[int] | None = None
    env: dict = field(default_factory=dict)
    started_at: float | None = None
    duration_s: float | None = None
    worker_pid: int | None = None
    cost: Cost | None = None
    timing: Timing | None = None
    faults: Faults | None = None
    conditions: Conditions | None = None
    metrics: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    suspect_reasons: list[str] = field(default_factory=list)
    roofline: Placement | None = None
    error: str | None = None
    traceback: str | None = None
    worker_log_tail: str | None = None
    attempt: int = 1  # a re-measurement of a suspect case is attempt 2; readers keep the last
    run_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    # ---- what readers ask
    @property
    def measured(self) -> bool:
        """ok or suspect: there are samples and a median."""
        return self.status in MEASURED and self.timing is not None

    @property
    def median(self) -> float | None:
        return self.timing.median if self.timing is not None else None

    @property
    def dtype(self) -> str:
        return self.params.get("dtype") or "float32"

    @property
    def reason(self) -> str:
        """The first line of a failed or skipped case's reason, else ''."""
        return (self.error or "").strip().splitlines()[0] if self.error else ""

    # ---- JSON
    def to_json(self) -> dict:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "record") -> "Record":
        if not isinstance(data, dict):
            raise UsageError(f"{where}: not a record (a JSON object was expected, got {type(data).__name__})")
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise UsageError(f"{where}: schema_version {version!r} is not a version number")
        if version > SCHEMA_VERSION:
            raise UsageError(f"{where}: written by a newer harness (schema {version}; this one reads up to "
                             f"{SCHEMA_VERSION})")
        if version < 1:
            raise UsageError(f"{where}: schema_version {version} is not one this harness wrote")
        data = migrate_record(dict(data), version)
        try:
            record = _build(cls, data)
            record.cost = _build(Cost, data.get("cost"))
            record.timing = _build(Timing, data.get("timing"))
            record.faults = _build(Faults, data.get("faults"))
            record.conditions = Conditions.from_json(data.get("conditions"))
            record.roofline = _build(Placement, data.get("roofline"))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{where}: not a record this harness can read ({exc})") from None
        if record.status not in STATUSES:
            raise UsageError(f"{where}: unknown status {record.status!r}")
        record.schema_version = SCHEMA_VERSION
        return record

    def with_(self, **changes) -> "Record":
        return dataclasses.replace(self, **changes)


def final(records: list[Record]) -> list[Record]:
    """The records a reader reports: the last attempt of each case (a suspect case
    re-measured in a fresh worker keeps both attempts in the store), in the order the
    cases first ran."""
    last: dict[str, Record] = {}
    for r in records:
        if r.case_id not in last or r.attempt >= last[r.case_id].attempt:
            last[r.case_id] = r
    return list(last.values())


def migrate_record(data: dict, version: int) -> dict:
    """A version-`version` record's JSON in the current layout."""
    if version == 1:
        timing = data.get("timing")
        if isinstance(timing, dict):
            timing = dict(timing)
            if isinstance(timing.get("first_call_s"), list):  # a pooled v1 record
                medians = timing.get("process_medians") or []
                firsts, warmups = timing["first_call_s"], timing.get("warmup_iterations") or []
                pids = data.get("worker_pid") if isinstance(data.get("worker_pid"), list) else []
                timing["per_process"] = [
                    {"median": m, "first_call_s": f, "warmup_iterations": w, "worker_pid": p}
                    for m, f, w, p in zip(medians, firsts, warmups + [None] * len(firsts),
                                          pids + [None] * len(firsts))]
                timing["first_call_s"] = firsts[0] if firsts else None
                timing["warmup_iterations"] = warmups[0] if warmups else 0
            timing.pop("process_medians", None)
            timing.pop("warmup_runs", None)
            for key in ("n", "median"):
                timing.setdefault(key, None)
            if "samples" not in timing and timing.get("median") is not None:  # a v1 layer record
                timing["samples"] = [timing["median"]]
            summary = ("min", "max", "mean", "p10", "p90", "q1", "q3", "ci95_low", "ci95_high")
            for key in summary:
                timing.setdefault(key, timing.get("median"))
            for key in ("stdev", "cv", "iqr"):
                timing.setdefault(key, 0.0)
            data["timing"] = timing
        if isinstance(data.get("worker_pid"), list):
            data["worker_pid"] = data["worker_pid"][0] if data["worker_pid"] else None
        roof = data.get("roofline")
        if isinstance(roof, dict):  # v1: a nested datasheet block, ceiling_threads, "theoretical"
            roof = dict(roof)
            sheet = roof.pop("datasheet", None) or {}
            roof.setdefault("datasheet_peak_flops_per_s", sheet.get("peak_flops_per_s"))
            roof.setdefault("datasheet_efficiency", sheet.get("efficiency"))
            ceiling_threads = roof.pop("ceiling_threads", None)
            if isinstance(ceiling_threads, dict):
                roof.setdefault("threads", ceiling_threads.get("compute"))
            if roof.get("source") == "theoretical":
                roof["source"] = "datasheet"
            roof.pop("label", None)
            for key in ("theoretical_time_s", "efficiency", "intensity", "attained_flops_per_s",
                        "attained_bytes_per_s", "peak_flops_per_s"):
                roof.setdefault(key, None)
            roof.setdefault("bound", "unknown")
            data["roofline"] = roof
        cost = data.get("cost")
        if isinstance(cost, dict):
            cost = dict(cost)
            breakdown = {k: cost.pop(k) for k in list(cost) if k.startswith("flops_")}
            if breakdown:
                cost["breakdown"] = breakdown
            data["cost"] = cost
    return data


# --------------------------------------------------------------------------- the manifest

@dataclass
class Manifest:
    """One run's identity and circumstances (manifest.json). status: running until the run
    ends (a killed run says so), then complete, interrupted or stopped (with `stop_reason`:
    the disk filled up, a permission was refused)."""

    run_id: str
    status: str = "running"
    suite: dict = field(default_factory=dict)  # name, description, path, cases
    command_line: list[str] = field(default_factory=list)
    git_revision: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    fingerprint: dict = field(default_factory=dict)
    profile: str | None = None  # the profile snapshot file the run places against
    warnings: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    fleet: dict | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "manifest") -> "Manifest":
        if not isinstance(data, dict):
            raise UsageError(f"{where}: not a manifest (a JSON object was expected)")
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise UsageError(f"{where}: schema_version {version!r} is not one this harness reads "
                             f"(1 to {SCHEMA_VERSION})")
        data = dict(data)
        data.setdefault("run_id", "")
        try:
            manifest = _build(cls, data)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{where}: not a manifest this harness can read ({exc})") from None
        manifest.schema_version = SCHEMA_VERSION
        return manifest


# --------------------------------------------------------------------------- constructors
# One per kind of record: measured (the worker), failed and skipped (the worker or the
# runner), pooled (several processes of one case) and layer (one layer of a profiled model).

def measured(identity: dict, *, affinity: list[int], cost: Cost, timing: Timing, faults: Faults,
             conditions: Conditions, metrics: dict, info: dict, warnings: list[str],
             suspect_reasons: list[str], worker_pid: int, started_at: float) -> Record:
    return Record(**identity, status="suspect" if suspect_reasons else "ok", affinity=affinity, cost=cost,
                  timing=timing, faults=faults, conditions=conditions, metrics=metrics, info=info,
                  warnings=warnings, suspect_reasons=suspect_reasons, worker_pid=worker_pid,
                  started_at=started_at)


def failed(identity: dict, reason: str, *, traceback: str | None = None, log_tail: str | None = None,
           info: dict | None = None, started_at: float | None = None, worker_pid: int | None = None) -> Record:
    return Record(**identity, status="failed", error=reason, traceback=traceback, worker_log_tail=log_tail,
                  info=info or {}, started_at=started_at, worker_pid=worker_pid)


def skipped(identity: dict, reason: str, *, started_at: float | None = None,
            worker_pid: int | None = None) -> Record:
    return Record(**identity, status="skipped", error=reason, started_at=started_at, worker_pid=worker_pid)


def pooled(records: list[Record]) -> Record:
    """One record from the same case run in several fresh worker processes (pyperf's way to
    average out what differs between processes: memory layout, a clock that moved).

    Samples are pooled and summarised afresh; each process's median, first call and warm-up
    are kept in timing.per_process. Faults are summed over all iterations; FLOP/s and B/s
    follow the pooled median, other numeric metrics are the median over processes. A
    failure in any process fails the case; a suspect process makes the case suspect."""
    bad = [r for r in records if not r.measured]
    if bad:
        first = bad[0]
        return first.with_(error=f"process {records.index(first) + 1} of {len(records)}: {first.error}")
    base = records[0]
    timings = [r.timing for r in records]
    samples = [s for t in timings for s in t.samples]
    iterations = sum(t.n * t.number for t in timings)
    timing = dataclasses.replace(
        base.timing, **summarize(samples), samples=samples, processes=len(records),
        per_process=[{"median": t.median, "first_call_s": t.first_call_s, "warmup_iterations": t.warmup_iterations,
                      "worker_pid": r.worker_pid} for t, r in zip(timings, records)])
    faults = Faults(**{key: sum(getattr(r.faults, key) for r in records)
                       for key in ("minor", "major", "voluntary_switches", "involuntary_switches")})
    faults.minor_per_call = faults.minor / iterations
    faults.major_per_call = faults.major / iterations
    faults.steal_fraction = max(r.faults.steal_fraction for r in records)
    metrics = {}
    for key, value in base.metrics.items():
        values = [r.metrics.get(key) for r in records]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        metrics[key] = statistics.median(values) if numeric else value
    if base.cost and base.cost.flops and timing.median > 0:
        metrics["flops_per_s"] = base.cost.flops / timing.median
    if base.cost and base.cost.bytes and timing.median > 0:
        metrics["bytes_per_s"] = base.cost.bytes / timing.median
    reasons = list(dict.fromkeys(f"process {i + 1}: {why}" for i, r in enumerate(records)
                                 for why in r.suspect_reasons))
    return base.with_(status="suspect" if reasons else "ok", timing=timing, faults=faults, metrics=metrics,
                      suspect_reasons=reasons,
                      warnings=list(dict.fromkeys(w for r in records for w in r.warnings)),
                      duration_s=sum(r.duration_s or 0 for r in records))


def layer(parent: Record, *, name: str, op: str, index: int, samples: list[float], cost: Cost | None,
          info: dict, method: str) -> Record:
    """One layer of a model profiled by a `layers.*` case: its own samples (one per profiled
    run), its cost, and the parent case's identity."""
    framework = parent.kind.split(".", 1)[-1]  # layers.torch -> layer.torch
    timing = Timing(**summarize(samples), samples=list(samples), method=method)
    metrics = {}
    if cost is not None and timing.median > 0:
        if cost.flops is not None:
            metrics["flops_per_s"] = cost.flops / timing.median
        if cost.bytes:
            metrics["bytes_per_s"] = cost.bytes / timing.median
    return Record(case_id=f"{parent.case_id}/{name}", kind=f"layer.{framework}", status="ok",
                  params={**parent.params, "layer": name, "op": op}, threads=parent.threads,
                  cpus_requested=parent.cpus_requested, affinity=parent.affinity, env=parent.env,
                  started_at=parent.started_at, worker_pid=parent.worker_pid, cost=cost, timing=timing,
                  metrics=metrics, info={"layer_index": index, "parent_case": parent.case_id, **info})
