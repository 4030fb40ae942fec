"""The profile snapshot a run is placed against: the ceilings in force when its ops ran,
frozen into RUN/profile.json, so that re-rendering a run always gives the same roof.

It holds what placement and the report need and nothing that can change afterwards: the
ceilings in force (each with its measurement's provenance and the rule that chose it), the
nominal peak per dtype (cores x GHz from the OS x FLOP/cycle from the microarchitecture
table: what the datasheet arithmetic gives, used only where nothing was measured), the
cache capacity the threads of each thread count hold together, the clock measured under
load and the sweep's plateaus.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.analysis.profile import MEMORY_LEVELS, PROFILE, RECENT_RUNS, CeilingMeasurement, DeviceProfile
from harness.core import conditions, system
from harness.core.errors import UsageError
from harness.core.store import write_json_file

# Dtypes with no ceiling of their own are placed against the fp32 one on CPUs that convert
# them to fp32 for the FMA; the placement says so.
FALLBACK_DTYPE = {"bfloat16": "float32", "float16": "float32", "int8": "float32", "uint8": "float32"}
SNAPSHOT_SCHEMA = 1  # snapshots written before the field existed are version 1
RULE = (f"each ceiling is the best healthy measurement among the {RECENT_RUNS} most recent runs that "
        "measured it on this device (for BLAS, with the BLAS library it has now)")


@dataclass
class SnapshotCeiling:
    kind: str
    name: str
    value: float
    dtype: str | None = None
    threads: int | None = None
    device: str = "cpu"
    median: float | None = None
    source: str = ""
    run_id: str | None = None
    measured_at: float | None = None
    rule: str = ""

    @property
    def label(self) -> str:
        what = f"{self.dtype} {self.name}" if self.dtype else self.name
        unit = "GB/s" if self.kind == "bandwidth" else "GFLOP/s" if self.kind == "compute" else "GHz"
        value = self.value / 1e9 if self.kind != "clock" else self.value
        return f"{what} {value:.3g} {unit}"


@dataclass
class Snapshot:
    device: dict = field(default_factory=dict)
    nominal: dict = field(default_factory=dict)  # dtype -> nominal peak facts (see fingerprint)
    ceilings: list[SnapshotCeiling] = field(default_factory=list)
    cache_capacity: dict = field(default_factory=dict)  # "threads" -> {level: bytes}
    plateaus: list[dict] = field(default_factory=list)
    sweep: list[dict] = field(default_factory=list)
    rule: str = RULE
    profile_path: str | None = None
    taken_at: float | None = None
    # The measurements the rule chose from (profile.recent), with their health: what a report
    # shows as each ceiling's history and as a probe run's own measurements.
    history: list[dict] = field(default_factory=list)
    kind: str = "snapshot"
    schema_version: int = SNAPSHOT_SCHEMA

    # ---------------------------------------------------------------- lookups
    def _pick(self, kind, name=None, dtype=None, threads=None, device="cpu", exclude=()):
        found = [c for c in self.ceilings if c.kind == kind and c.device == device
                 and (name is None or c.name == name) and c.name not in exclude
                 and (dtype is None or c.dtype == dtype) and (device != "cpu" or c.threads == threads)]
        return max(found, key=lambda c: c.value) if found else None

    def compute(self, dtype: str, threads: int | None, device: str = "cpu") -> SnapshotCeiling | None:
        """The compute ceiling for dtype at threads: the best FMA level measured (a library's
        GEMM is a figure of its own, never the roof)."""
        return self._pick("compute", dtype=dtype, threads=threads, device=device, exclude=("blas",))

    def blas(self, dtype: str, threads: int) -> SnapshotCeiling | None:
        return self._pick("compute", "blas", dtype, threads)

    def bandwidth(self, level: str, threads: int | None, device: str = "cpu") -> SnapshotCeiling | None:
        return self._pick("bandwidth", level, None, threads, device)

    @property
    def clock_ghz(self) -> float | None:
        c = self._pick("clock", "core", threads=1)
        return c.value if c else None

    def capacity(self, threads: int) -> dict[str, int]:
        return self.cache_capacity.get(str(threads)) or {}

    def memory_levels(self, threads: int | None, device: str = "cpu") -> list[tuple[str, int | None]]:
        """(level, bytes the threads hold there) from the fastest level, DRAM last (None: no limit)."""
        if device != "cpu":
            return [(c.name, None) for c in sorted((c for c in self.ceilings if c.kind == "bandwidth"
                                                    and c.device == device), key=lambda c: -c.value)]
        capacity = self.capacity(threads or 1)
        levels = sorted(((lvl, size) for lvl, size in capacity.items() if lvl in MEMORY_LEVELS),
                        key=lambda item: item[1])
        return levels + [("DRAM", None)]

    def nominal_peak(self, dtype: str, threads: int | None) -> float | None:
        """The nominal peak for the cores in use: a 1-thread op is judged against one core."""
        entry = self.nominal.get(dtype) or self.nominal.get(FALLBACK_DTYPE.get(dtype, "float32")) or {}
        value, cores = entry.get("flops_per_s"), entry.get("cores") or 1
        if not value:
            return None
        return value * min(threads or cores, cores) / cores

    def thread_counts(self) -> list[int]:
        return sorted({c.threads for c in self.ceilings if c.device == "cpu" and c.threads})

    # ---------------------------------------------------------------- JSON
    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict, source: str = "snapshot") -> "Snapshot":
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise UsageError(f"{source}: schema_version {version!r} is not a version number")
        if version > SNAPSHOT_SCHEMA:
            raise UsageError(f"{source}: written by a newer harness (snapshot schema {version}; this one reads up "
                             f"to {SNAPSHOT_SCHEMA}); update the harness to read this run")
        names = {f.name for f in dataclasses.fields(SnapshotCeiling)}
        snap = cls(**{k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}})
        snap.ceilings = [SnapshotCeiling(**{k: v for k, v in c.items() if k in names}) for c in data.get("ceilings") or []]
        return snap


def nominal_peaks(fingerprint: dict) -> dict:
    return dict(fingerprint.get("nominal_peak") or fingerprint.get("theoretical_peak") or {})


def capacity_from_caches(caches: list[dict], threads: int) -> dict[str, int]:
    """Cache bytes by level that `threads` threads on distinct cores hold, from one CPU's cache
    list (the fingerprint's): a cache shared by one CPU is private and adds up per core, a
    shared one counts once. For a stored run, where the live sysfs is not this machine's."""
    out: dict[str, int] = {}
    for c in caches or []:
        if c.get("type") not in ("Data", "Unified") or not c.get("size_bytes"):
            continue
        private = len(system.cpu_list(c.get("shared_cpu_list"))) <= 1
        level = f"L{c['level']}"
        out[level] = out.get(level, 0) + c["size_bytes"] * (threads if private else 1)
    return out


def take(profile: DeviceProfile | None, fingerprint: dict, profile_path: str | Path | None = None,
         blas_library: str | None = None, live: bool = True) -> Snapshot:
    """The snapshot of `profile`'s ceilings in force on the device `fingerprint` describes;
    `live`: this machine, whose cache topology is read from sysfs (else from the fingerprint)."""
    ceilings = []
    for chosen in (profile.in_force(blas_library) if profile else []):
        m: CeilingMeasurement = chosen.measurement
        ceilings.append(SnapshotCeiling(m.kind, m.name, m.value, m.dtype, m.threads, m.device, m.median, m.source,
                                        m.run_id, m.measured_at, chosen.rule))
    cpu = fingerprint.get("cpu") or {}
    cpus = cpu.get("available_cpus") or system.available_cpus()
    if live:
        capacity = {str(k): system.cache_capacity(conditions.choose_cpus(k, cpus)) for k in range(1, len(cpus) + 1)}
    else:
        capacity = {str(k): capacity_from_caches(cpu.get("caches"), k) for k in range(1, len(cpus) + 1)}
    return Snapshot(
        device={"model": cpu.get("model"), "uarch": cpu.get("uarch"), "physical_cores": cpu.get("physical_cores"),
                "logical_cpus": cpu.get("logical_cpus"), "available_cpus": cpus, "caches": cpu.get("caches"),
                "gpus": fingerprint.get("gpus") or []},
        nominal=nominal_peaks(fingerprint), ceilings=ceilings, cache_capacity=capacity,
        plateaus=list(profile.plateaus) if profile else [], sweep=list(profile.sweep) if profile else [],
        history=[dataclasses.asdict(m) for ms in (profile.recent(blas_library).values() if profile else []) for m in ms],
        profile_path=str(profile_path) if profile_path else None, taken_at=time.time() if live else None)


def write(run_path: Path, snap: Snapshot) -> Path:
    """Written whole or not at all; a write the disk refuses is a StoreError."""
    path = Path(run_path) / PROFILE
    write_json_file(path, snap.to_json(), "profile snapshot")
    return path


def load(run_path: Path, fingerprint: dict) -> Snapshot:
    """The snapshot a run froze. A run written before snapshots existed kept a copy of the
    device profile there instead: its ceilings become the snapshot. A run with neither has
    only the nominal peaks: it was placed against nothing measured, and stays so."""
    path = Path(run_path) / PROFILE
    if not path.exists():
        return take(None, fingerprint, live=False)
    try:
        data = json.loads(path.read_text())
        if data.get("kind") == "snapshot":
            return Snapshot.from_json(data, str(path))
        return take(DeviceProfile.from_json(data), fingerprint, path, live=False)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UsageError(f"{path}: not a readable profile snapshot ({type(exc).__name__}: {exc})") from None
