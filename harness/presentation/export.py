"""`harness export RUN --format csv|parquet|pytest-benchmark`: a stored run for other tools.

csv      one row per record, nested fields flattened with '.' (timing.median, cost.flops);
         list fields (timing.samples, warnings, affinity, ...) as JSON strings.
parquet  the same rows; timing.samples stays a list<double> column, other lists JSON strings.
pytest-benchmark
         the JSON that `pytest --benchmark-json` writes (machine_info, commit_info,
         benchmarks[] with stats and the raw samples as data, datetime, version), so that
         `pytest-benchmark compare FILE...` and other tooling built on it read our runs.
         Statistics are computed by pytest-benchmark's own Stats class, so that min, q1,
         iqr, outliers, ops ... mean exactly what they mean there. Each sample is a time
         per call over `iterations` (our inner-loop count) calls, as in pytest-benchmark.
         Only ok records with samples are written: pytest-benchmark has no failed entries.

pytest-benchmark and pyarrow are imported inside functions (deferred on purpose: only their
formats need them).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from harness.core.errors import UsageError
from harness.core.records import Manifest, Record, final
from harness.core.store import load_manifest, load_records, resolve_run

FORMATS = {"csv": "records.csv", "parquet": "records.parquet", "pytest-benchmark": "pytest-benchmark.json"}
SAMPLES = "timing.samples"


def flatten_records(records: list[Record], keep_sample_lists: bool = False):
    """One DataFrame row per record, nested dicts flattened with '.', lists as JSON strings
    (timing.samples as lists of floats too when keep_sample_lists)."""
    df = pd.json_normalize([r.to_json() for r in records], sep=".")
    for column in df.columns:
        values = df[column]
        if not values.map(lambda v: isinstance(v, (list, dict))).any():
            continue
        if keep_sample_lists and column == SAMPLES:
            df[column] = values.map(lambda v: [float(x) for x in v] if isinstance(v, list) else None)
        else:
            df[column] = values.map(lambda v: json.dumps(v, default=str) if isinstance(v, (list, dict)) else v)
    return df


def _parquet_safe(df):
    """Object columns holding more than one kind of value (an int in one record's params, a
    string in another's) become strings: Parquet wants one type per column."""
    for column in df.columns:
        if df[column].dtype != object or column == SAMPLES:
            continue
        kinds = {type(v) for v in df[column] if v is not None and v == v}
        if len(kinds) > 1 and not kinds <= {int, float}:
            df[column] = df[column].map(lambda v: None if v is None or v != v else str(v))
    return df


def _stats(samples: list[float]) -> dict:
    try:
        from pytest_benchmark.stats import Stats
    except ImportError as exc:
        raise UsageError("--format pytest-benchmark needs the pytest-benchmark package") from exc
    stats = Stats()
    for x in samples:
        stats.update(float(x))
    return stats.as_dict()


def _pytest_benchmark_version() -> str:
    try:
        return version("pytest-benchmark")
    except PackageNotFoundError:
        return "unknown"


def pytest_benchmark_json(run_path: Path, manifest: Manifest, records: list[Record]) -> dict:
    """The run in pytest-benchmark's --benchmark-json layout."""
    fp = manifest.fingerprint or {}
    cpu, osinfo, versions = fp.get("cpu") or {}, fp.get("os") or {}, fp.get("versions") or {}
    machine_info = {
        "node": osinfo.get("hostname"), "processor": cpu.get("model"), "machine": cpu.get("machine"),
        "python_compiler": None, "python_implementation": "CPython",
        "python_implementation_version": versions.get("python"), "python_version": versions.get("python"),
        "python_build": None, "release": osinfo.get("release"), "system": osinfo.get("system"),
        "cpu": {"brand_raw": cpu.get("model"), "vendor_id_raw": cpu.get("vendor"), "arch": cpu.get("machine"),
                "count": cpu.get("logical_cpus"), "uarch": cpu.get("uarch")},
        "harness": {"run_id": manifest.run_id, "run_path": str(run_path),
                    "suite": (manifest.suite or {}).get("name"), "vm": (fp.get("vm") or {}).get("hypervisor"),
                    "warnings": manifest.warnings},
    }
    revision = manifest.git_revision or "unversioned"
    commit_info = {"id": revision.removesuffix("-dirty"), "time": None, "author_time": None,
                   "dirty": revision.endswith("-dirty"), "project": "roofline-harness", "branch": None}
    suite = (manifest.suite or {}).get("name") or run_path.name
    benchmarks = []
    for r in final(records):
        if not r.measured or not r.timing.samples:
            continue
        timing, policy = r.timing, r.timing.policy or {}
        stats = _stats(timing.samples)
        stats["data"] = [float(x) for x in timing.samples]
        stats["iterations"] = int(timing.number or 1)
        param = re.search(r"\[(.*)\]$", r.case_id)
        as_json = r.to_json()
        benchmarks.append({
            "group": r.kind,
            "name": r.case_id,
            "fullname": f"{suite}::{r.case_id}",
            "params": {**r.params, "threads": r.threads},
            "param": param.group(1) if param else None,
            "extra_info": {"kind": r.kind, "threads": r.threads, "status": r.status, "cost": as_json["cost"],
                           "metrics": r.metrics, "roofline": as_json["roofline"],
                           "harness_median_ci95": [timing.ci95_low, timing.ci95_high],
                           "warnings": r.warnings, "suspect_reasons": r.suspect_reasons},
            "options": {"disable_gc": True, "timer": timing.clock or "perf_counter",
                        "min_rounds": policy.get("min_samples"), "max_time": policy.get("budget_s"),
                        "min_time": policy.get("min_sample_s"), "warmup": True,
                        "warmup_iterations": timing.warmup_iterations},
            "stats": stats,
        })
    started = manifest.started_at
    when = (dt.datetime.fromtimestamp(started, dt.timezone.utc) if isinstance(started, (int, float))
            else dt.datetime.now(dt.timezone.utc))
    return {"machine_info": machine_info, "commit_info": commit_info, "benchmarks": benchmarks,
            "datetime": when.isoformat(), "version": _pytest_benchmark_version()}


def export_run(run_path, fmt: str, out=None) -> Path:
    """Writes one run as `fmt` (csv, parquet, pytest-benchmark) to `out`, by default
    RUN/records.csv, RUN/records.parquet or RUN/pytest-benchmark.json; returns the path."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: must be one of {', '.join(FORMATS)}")
    run_path = resolve_run(run_path)
    records = load_records(run_path)
    if not records:
        raise UsageError(f"{run_path}: the run holds no records")
    out = Path(out) if out else run_path / FORMATS[fmt]
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        flatten_records(records).to_csv(out, index=False)
    elif fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise UsageError("--format parquet needs the pyarrow package") from exc
        _parquet_safe(flatten_records(records, keep_sample_lists=True)).to_parquet(out, index=False)
    else:
        data = pytest_benchmark_json(run_path, load_manifest(run_path), records)
        if not data["benchmarks"]:
            raise UsageError(f"{run_path}: no ok record with samples to export")
        out.write_text(json.dumps(data, indent=2, default=str))
    return out
