"""Where runs land: results/<device-slug>/<timestamp>-<suite>/.

A run folder holds:
  manifest.json   -- fingerprint, machine state, versions, command line, git revision,
                     suite, status ("running" until the run ends: a killed run says so).
  records.jsonl   -- one JSON object per case, appended and flushed as each finishes,
                     so a run killed at any moment keeps every record written before.
  logs/           -- each worker's stdout and stderr.
Every record and the manifest carry `schema_version`. `load_run` reads a run into one
pandas DataFrame, nested fields flattened with '.' (timing.median, cost.flops, ...).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pandas as pd

from harness.core.errors import UsageError
from harness.core.records import SCHEMA_VERSION, Manifest, Record

RECORDS = "records.jsonl"
MANIFEST = "manifest.json"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def git_revision(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                             text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


# Manifests are written with this much trailing white space (valid JSON), so that a run
# stopped by a full disk can still record why, in place, without a byte more of disk.
MANIFEST_RESERVE = 2048


class StoreError(UsageError):
    """The disk refused a write during a run (full, read-only, a permission taken away)."""


def write_json_file(path: Path, data: dict, what: str, indent: int | None = 1) -> None:
    """`data` as JSON at `path`, written whole or not at all (through path.tmp, removed if the
    write fails); a write the disk refuses is a StoreError naming `what` and the file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=indent))
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise StoreError(f"{path}: cannot write the {what} ({exc.strerror or exc})") from None


def _write_json_atomic(path: Path, data: dict, reserve: int = 0) -> None:
    text = json.dumps(data, indent=2, default=str) + " " * reserve + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        compact = json.dumps(data, default=str)
        # In place, within the space the file already has (the reserve): no new block needed.
        if path.exists() and len(compact) < path.stat().st_size:
            with open(path, "r+") as fh:
                fh.write(compact + " " * (path.stat().st_size - len(compact) - 1) + "\n")
            return
        raise


class RunStore:
    """One run's folder; records are appended one at a time."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / "logs").mkdir(exist_ok=True)
            self._records = open(self.path / RECORDS, "a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot write the run there ({exc.strerror or exc})") from None
        self.report: Path | None = None  # set once the run's report is written
        self.appended = 0  # records written so far

    @classmethod
    def create(cls, root: Path, device_slug: str, suite_name: str) -> "RunStore":
        """A new run folder, made atomically: two runs started in the same second get
        <stamp>-<suite> and <stamp>-<suite>-2, whichever mkdir wins."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(root) / device_slug
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{base}: cannot write the run there ({exc.strerror or exc})") from None
        for n in range(1, 1000):
            path = base / (f"{stamp}-{slug(suite_name)}" + (f"-{n}" if n > 1 else ""))
            try:
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise UsageError(f"{path}: cannot write the run there ({exc.strerror or exc})") from None
            return cls(path)
        raise UsageError(f"{base}: a thousand runs of {suite_name} started this second; wait a second")

    @property
    def run_id(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    def write_manifest(self, manifest: Manifest) -> None:
        self.manifest = manifest
        try:
            _write_json_atomic(self.path / MANIFEST, manifest.to_json(), reserve=MANIFEST_RESERVE)
        except OSError as exc:
            raise StoreError(f"{self.path / MANIFEST}: cannot write the manifest ({exc.strerror or exc})") from None

    def update_manifest(self, **fields) -> None:
        manifest = load_manifest(self.path)
        for key, value in fields.items():
            setattr(manifest, key, value)
        self.write_manifest(manifest)

    def append(self, record: Record) -> Record:
        """Writes one record and returns it as stored (run id set). A write the disk refuses
        is a StoreError: every record written before stays readable (a cut-off last line is
        skipped by load_records)."""
        record.run_id = self.run_id
        record.schema_version = SCHEMA_VERSION
        try:
            self._records.write(json.dumps(record.to_json(), default=str) + "\n")
            self._records.flush()
            os.fsync(self._records.fileno())
        except OSError as exc:
            raise StoreError(f"{self.path / RECORDS}: cannot write record {self.appended + 1} "
                             f"({exc.strerror or exc}); the run stopped, the {self.appended} record(s) "
                             "written before stay readable") from None
        self.appended += 1
        return record

    def close(self) -> None:
        try:
            self._records.close()
        except OSError:  # the buffer could not be flushed: a full disk, already reported
            pass


def resolve_run(path: str | Path) -> Path:
    p = Path(path)
    if (p / MANIFEST).exists() or (p / RECORDS).exists():
        return p
    raise UsageError(f"{path}: not a run folder (no {MANIFEST} or {RECORDS} in it)")


def load_manifest(path: str | Path) -> Manifest:
    """The run's manifest; a run whose manifest is missing (records only) gets an empty one."""
    run = resolve_run(path)
    p = run / MANIFEST
    if not p.exists():
        return Manifest(run_id=f"{run.parent.name}/{run.name}", status="unknown")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{p}: not a readable manifest ({exc.__class__.__name__})") from None
    return Manifest.from_json(data, str(p))


def load_records(path: str | Path) -> list[Record]:
    """Every record of records.jsonl, in the current schema (older ones migrated). A last
    line cut off by a kill mid-write is skipped; a bad line anywhere else means the file was
    damaged, and that is an error naming the line."""
    p = resolve_run(path) / RECORDS
    records: list[Record] = []
    if not p.exists():
        return records
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UsageError(f"{p}: cannot read the records ({exc.strerror or exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue  # the partial last line of a run killed mid-write
            raise UsageError(f"{p}: line {number} is not a JSON record (the file was damaged)") from None
        records.append(Record.from_json(data, f"{p}: line {number}"))
    return records


def load_run(path: str | Path):
    """One run as a pandas DataFrame, one row per record, nested fields joined with '.'
    (timing.median, cost.flops, roofline.efficiency, ...); samples stay lists in one column."""
    records = load_records(path)
    if not records:
        return pd.DataFrame()
    return pd.json_normalize([r.to_json() for r in records], sep=".", max_level=None)


def resolve_run_arg(arg: str, results: str | Path = "results") -> Path:
    """A run folder from the command line: a path, 'latest' for the newest under results/, or
    'latest~N' for the one N runs before it (as git names commits)."""
    if arg == "latest" or arg.startswith("latest~"):
        back = arg.partition("~")[2] or "0"
        if not back.isdigit():
            raise UsageError(f"{arg}: expected latest or latest~N with N a whole number")
        runs = find_runs(results)
        if int(back) >= len(runs):
            raise UsageError(f"{arg}: there are {len(runs)} runs under {results}/")
        return runs[-1 - int(back)]
    return resolve_run(arg)


def find_runs(root: str | Path = "results") -> list[Path]:
    """Every run folder under root, oldest first."""
    root = Path(root)
    if not root.exists():
        return []
    runs = [p.parent for p in root.glob(f"*/*/{MANIFEST}")]
    return sorted(runs, key=lambda p: p.name)
