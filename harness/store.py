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

from harness import SCHEMA_VERSION
from harness.errors import UsageError

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


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


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

    @classmethod
    def create(cls, root: Path, device_slug: str, suite_name: str) -> "RunStore":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(root) / device_slug
        path = base / f"{stamp}-{slug(suite_name)}"
        n = 1
        while path.exists():
            n += 1
            path = base / f"{stamp}-{slug(suite_name)}-{n}"
        return cls(path)

    @property
    def run_id(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    def write_manifest(self, manifest: dict) -> None:
        _write_json_atomic(self.path / MANIFEST, {"schema_version": SCHEMA_VERSION, **manifest})

    def update_manifest(self, **fields) -> None:
        manifest = load_manifest(self.path)
        manifest.update(fields)
        _write_json_atomic(self.path / MANIFEST, manifest)

    def append(self, record: dict) -> dict:
        """Writes one record and returns it as stored (schema version and run id added)."""
        record = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, **record}
        self._records.write(json.dumps(record, default=str) + "\n")
        self._records.flush()
        os.fsync(self._records.fileno())
        return record

    def close(self) -> None:
        self._records.close()


def resolve_run(path: str | Path) -> Path:
    p = Path(path)
    if (p / MANIFEST).exists() or (p / RECORDS).exists():
        return p
    raise UsageError(f"{path}: not a run folder (no {MANIFEST} or {RECORDS} in it)")


def load_manifest(path: str | Path) -> dict:
    p = resolve_run(path) / MANIFEST
    if not p.exists():
        return {}
    try:
        manifest = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{p}: not a readable manifest ({exc.__class__.__name__})") from None
    if not isinstance(manifest, dict):
        raise UsageError(f"{p}: not a manifest (a JSON object was expected)")
    return manifest


def load_records(path: str | Path) -> list[dict]:
    """Every record of records.jsonl. A last line cut off by a kill mid-write is skipped;
    a bad line anywhere else means the file was damaged, and that is an error."""
    p = resolve_run(path) / RECORDS
    records = []
    if not p.exists():
        return records
    lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                continue  # the partial last line of a run killed mid-write
            raise UsageError(f"{p}: line {number} is not a JSON record (the file was damaged)") from None
    return records


def load_run(path: str | Path):
    """One run as a pandas DataFrame, one row per record, nested fields joined with '.'."""
    import pandas as pd

    records = load_records(path)
    for r in records:
        if r.get("schema_version", SCHEMA_VERSION) > SCHEMA_VERSION:
            raise UsageError(f"{path}: written by a newer harness (schema {r['schema_version']} > {SCHEMA_VERSION})")
    if not records:
        return pd.DataFrame()
    # Samples stay as lists in one column rather than exploding into thousands of columns.
    return pd.json_normalize(records, sep=".", max_level=None)


def find_runs(root: str | Path = "results") -> list[Path]:
    """Every run folder under root, oldest first."""
    root = Path(root)
    if not root.exists():
        return []
    runs = [p.parent for p in root.glob(f"*/*/{MANIFEST}")]
    return sorted(runs, key=lambda p: p.name)
