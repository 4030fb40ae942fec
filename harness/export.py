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
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

from harness.errors import UsageError

FORMATS = {"csv": "records.csv", "parquet": "records.parquet", "pytest-benchmark": "pytest-benchmark.json"}
SAMPLES = "timing.samples"


def flatten_records(records: list[dict], keep_sample_lists: bool = False):
    """One DataFrame row per record, nested dicts flattened with '.', lists as JSON strings
    (timing.samples as lists of floats too when keep_sample_lists)."""
    import pandas as pd

    df = pd.json_normalize(records, sep=".")
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
        from importlib.metadata import version

        return version("pytest-benchmark")
    except Exception:
        return "unknown"


def pytest_benchmark_json(run_path: Path, manifest: dict, records: list[dict]) -> dict:
    """The run in pytest-benchmark's --benchmark-json layout."""
    fp = manifest.get("fingerprint") or {}
    cpu, osinfo, versions = fp.get("cpu") or {}, fp.get("os") or {}, fp.get("versions") or {}
    machine_info = {
        "node": osinfo.get("hostname"), "processor": cpu.get("model"), "machine": cpu.get("machine"),
        "python_compiler": None, "python_implementation": "CPython",
        "python_implementation_version": versions.get("python"), "python_version": versions.get("python"),
        "python_build": None, "release": osinfo.get("release"), "system": osinfo.get("system"),
        "cpu": {"brand_raw": cpu.get("model"), "vendor_id_raw": cpu.get("vendor"), "arch": cpu.get("machine"),
                "count": cpu.get("logical_cpus"), "uarch": cpu.get("uarch")},
        "harness": {"run_id": manifest.get("run_id"), "run_path": str(run_path),
                    "suite": (manifest.get("suite") or {}).get("name"), "vm": (fp.get("vm") or {}).get("hypervisor"),
                    "warnings": manifest.get("warnings") or []},
    }
    revision = manifest.get("git_revision") or "unversioned"
    commit_info = {"id": revision.removesuffix("-dirty"), "time": None, "author_time": None,
                   "dirty": revision.endswith("-dirty"), "project": "roofline-harness", "branch": None}
    suite = (manifest.get("suite") or {}).get("name") or run_path.name
    benchmarks = []
    for r in records:
        timing = r.get("timing") or {}
        samples = timing.get("samples") or []
        if r.get("status") != "ok" or not samples:
            continue
        policy = timing.get("policy") or {}
        stats = _stats(samples)
        stats["data"] = [float(x) for x in samples]
        stats["iterations"] = int(timing.get("number") or 1)
        case_id = str(r.get("case_id"))
        param = re.search(r"\[(.*)\]$", case_id)
        benchmarks.append({
            "group": r.get("kind"),
            "name": case_id,
            "fullname": f"{suite}::{case_id}",
            "params": {**(r.get("params") or {}), "threads": r.get("threads")},
            "param": param.group(1) if param else None,
            "extra_info": {"kind": r.get("kind"), "threads": r.get("threads"), "cost": r.get("cost"),
                           "metrics": r.get("metrics"), "roofline": r.get("roofline"),
                           "harness_median_ci95": [timing.get("ci95_low"), timing.get("ci95_high")],
                           "warnings": r.get("warnings") or []},
            "options": {"disable_gc": True, "timer": timing.get("clock", "perf_counter"),
                        "min_rounds": policy.get("min_samples"), "max_time": policy.get("budget_s"),
                        "min_time": policy.get("min_sample_s"), "warmup": True,
                        "warmup_iterations": timing.get("warmup_iterations")},
            "stats": stats,
        })
    started = manifest.get("started_at")
    when = (dt.datetime.fromtimestamp(started, dt.timezone.utc) if isinstance(started, (int, float))
            else dt.datetime.now(dt.timezone.utc))
    return {"machine_info": machine_info, "commit_info": commit_info, "benchmarks": benchmarks,
            "datetime": when.isoformat(), "version": _pytest_benchmark_version()}


def export_run(run_path, fmt: str, out=None) -> Path:
    """Writes one run as `fmt` (csv, parquet, pytest-benchmark) to `out`, by default
    RUN/records.csv, RUN/records.parquet or RUN/pytest-benchmark.json; returns the path."""
    from harness.store import load_manifest, load_records, resolve_run

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run folder (results/<device>/<run>) or 'latest'")
    parser.add_argument("--format", required=True, choices=list(FORMATS), dest="format")
    parser.add_argument("--out", help="file to write (default: records.csv / records.parquet / "
                                      "pytest-benchmark.json in the run folder)")
    parser.add_argument("--results", default="results", help="where 'latest' looks (default: results)")


def run(args) -> int:
    from harness.report import resolve_run_arg

    try:
        path = export_run(resolve_run_arg(args.run, args.results), args.format, args.out)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write there ({exc.strerror or exc})") from None
    print(f"exported to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`harness export ...` run as `python -m harness.export ...`."""
    from harness.cli import main as harness_main

    return harness_main(["export", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
