"""Where a fleet run lands, and what the driver does with each event a node streams back;
no Ray here, so the routing and the manifests are tested with a fake transport.

  results/<device>/<stamp>-<suite>-<node label>/   one run folder per node, as `harness run`
                                                   writes it (manifest.json with a `fleet`
                                                   entry, records.jsonl, profile.json, logs/,
                                                   report.html)
  results/fleet/<stamp>-<suite>/fleet.json         the fleet manifest: each node's id,
                                                   address, device, status, reason and run

A node's part is waiting (queued behind another harness job on that node), running,
complete, failed (with the reason: no project there, the node lost, the suite refused) or
interrupted (Ctrl-C). Records are appended the moment they arrive, so whatever ends the
fleet run, every record that reached the driver is kept. The fleet's status: complete
(every part complete), partial (some failed), failed (all failed) or interrupted.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from harness.analysis import fingerprint as fpmod
from harness.analysis import profile as profiles
from harness.analysis import snapshot as snapshots
from harness.core.errors import UsageError
from harness.core.records import Manifest, Record
from harness.core.store import RunStore, load_records, slug, write_json_file
from harness.session.pipeline import blas_library, health_context, write_report_safely

FLEET_DIR = "fleet"
FLEET_FILE = "fleet.json"
ENDED = ("complete", "failed", "interrupted")


@dataclasses.dataclass
class NodePart:
    """One node's part of a fleet run, as fleet.json lists it."""

    node_id: str
    address: str
    hostname: str
    label: str
    status: str = "waiting"
    reason: str | None = None
    device: str | None = None
    run: str | None = None  # <device>/<run folder>, relative to the results folder
    records: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None  # the node's harness process, from its start to the end of its run
    exit_code: int | None = None
    git_revision: str | None = None
    python: str | None = None
    project: str | None = None
    dropped_env: dict | None = None  # what Ray had set in the task's environment, kept from the harness

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def make_folder(base: Path, name: str) -> Path:
    """base/name, or base/name-2, ...: made atomically, whichever mkdir wins."""
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{base}: cannot write there ({exc.strerror or exc})") from None
    for n in range(1, 1000):
        path = base / (name + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"{path}: cannot write there ({exc.strerror or exc})") from None
    raise UsageError(f"{base}: a thousand folders named {name}; wait a second")


def exit_reason(code: int | None, stderr: str) -> str:
    """Why a node's harness process did not complete its run, in one line."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if code in (130, 143):
        return f"the harness process on the node was stopped (exit code {code})"
    if errors:
        return errors[-1][len("error:"):].strip()
    return f"harness run exited with code {code}" + (f": {lines[-1][:300]}" if lines else "")


class FleetRun:
    """The fleet folder and the node runs, fed events by the driver (one thread)."""

    def __init__(self, results: Path, suite_name: str, parts: list[NodePart], info: dict,
                 stamp: str | None = None, progress=None):
        self.results = Path(results)
        self.stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
        self.suite_name = suite_name
        self.path = make_folder(self.results / FLEET_DIR, f"{self.stamp}-{slug(suite_name)}")
        self.parts = {p.node_id: p for p in parts}
        self.info = dict(info)
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.status = "running"
        self.stores: dict[str, RunStore] = {}
        self.manifests: dict[str, Manifest] = {}
        self.progress = progress  # called (part, record) for every record stored
        self.write()

    @property
    def run_id(self) -> str:
        return f"{FLEET_DIR}/{self.path.name}"

    def write(self) -> None:
        write_json_file(self.path / FLEET_FILE, {
            "kind": "fleet", "run_id": self.run_id, "suite": self.suite_name, "status": self.status,
            "started_at": self.started_at, "finished_at": self.finished_at, **self.info,
            "nodes": [p.to_json() for p in self.parts.values()]}, "fleet manifest")

    # ------------------------------------------------------------------ events

    def handle(self, node_id: str, event: dict) -> Record | None:
        """One event from a node (harness.session.fleet_node lists them); the record stored, if any."""
        part = self.parts[node_id]
        kind = event.get("event")
        if kind == "node":
            for key in ("hostname", "python", "project", "dropped_env"):
                if event.get(key):
                    setattr(part, key, event[key])
            if part.status == "waiting":
                part.status, part.started_at = "running", event.get("started_at") or time.time()
            self.write()
        elif kind == "error":
            self.fail(node_id, event.get("reason") or "the node could not start the run")
        elif kind == "manifest":
            self._manifest(part, event["data"])
        elif kind == "snapshot" and node_id in self.stores:
            write_json_file(self.stores[node_id].path / profiles.PROFILE, event["data"], "profile snapshot")
        elif kind == "record":
            return self._record(part, event["line"])
        elif kind == "logs" and node_id in self.stores:
            for name, text in (event.get("files") or {}).items():
                (self.stores[node_id].path / "logs" / Path(name).name).write_text(text, encoding="utf-8")
        elif kind == "exit":
            part.exit_code = None if event.get("stopped_after_run") else event.get("code")
            part.duration_s = event.get("duration_s")
            manifest = self.manifests.get(node_id)
            if manifest is not None and manifest.status == "complete":
                part.status = "complete"
            else:
                self.fail(node_id, exit_reason(part.exit_code, event.get("stderr", "")))
        return None

    def _store(self, part: NodePart, fp: dict) -> RunStore:
        store = self.stores.get(part.node_id)
        if store is None:
            part.device = fpmod.device_slug(fp) if (fp or {}).get("cpu") else "unknown-device"
            path = make_folder(self.results / part.device, f"{self.stamp}-{slug(self.suite_name)}-{part.label}")
            store = self.stores[part.node_id] = RunStore(path)
            part.run = store.run_id
            self.write()
        return store

    def _manifest(self, part: NodePart, data: dict) -> None:
        manifest = Manifest.from_json(data, f"{part.label}: manifest")
        store = self._store(part, manifest.fingerprint)
        manifest.fleet = {"fleet_run": self.run_id, "node_id": part.node_id, "address": part.address,
                          "hostname": part.hostname, "label": part.label, "node_run_id": manifest.run_id}
        manifest.run_id = store.run_id
        part.git_revision = manifest.git_revision
        self.manifests[part.node_id] = manifest
        store.write_manifest(manifest)

    def _record(self, part: NodePart, line: str) -> Record | None:
        try:
            data = json.loads(line)
        except ValueError:
            print(f"warning: {part.label}: a record line that is not JSON was dropped", file=sys.stderr)
            return None
        store = self.stores.get(part.node_id) or self._store(part, {})
        record = store.append(Record.from_json(data, f"{part.label}: record"))
        part.records += 1
        if self.progress is not None:
            self.progress(part, record)
        return record

    def fail(self, node_id: str, reason: str, status: str = "failed") -> None:
        part = self.parts[node_id]
        if part.status not in ENDED:
            part.status, part.reason = status, reason
            self.write()

    # ------------------------------------------------------------------ endings

    def end(self, node_id: str) -> NodePart:
        """The node's task is over, however it ended: its run manifest says how, its store is
        closed, its report written, its probe measurements join the device profile."""
        part = self.parts[node_id]
        if part.status not in ENDED:
            part.status, part.reason = "failed", part.reason or "the node's task ended without saying how"
        part.finished_at = time.time()
        store = self.stores.get(node_id)
        if store is not None:
            manifest = self.manifests.get(node_id) or Manifest(run_id=store.run_id)
            if part.status != "complete" or manifest.status != "complete":
                manifest.status = part.status
                manifest.stop_reason = part.reason
                manifest.finished_at = manifest.finished_at or part.finished_at
                try:
                    store.write_manifest(manifest)
                except UsageError as exc:
                    print(f"warning: {exc}", file=sys.stderr)
            store.close()
            if part.records:
                store.report = write_report_safely(store.path)
            if part.status == "complete":
                self._merge_profile(part, store, manifest)
        self.write()
        return part

    def _merge_profile(self, part: NodePart, store: RunStore, manifest: Manifest) -> None:
        """The node run's probe measurements join this results folder's device profile, as
        a run on this machine adds its own (pipeline.Session._update_profile)."""
        records = load_records(store.path)
        fp = manifest.fingerprint or {}
        if not fp.get("cpu") or not any(r.kind.startswith("probe.") for r in records):
            return
        path = profiles.profile_path(self.results, part.device)
        profile = profiles.load_profile(path) or profiles.DeviceProfile(
            device={"slug": part.device, "model": fp["cpu"].get("model")})
        capacity = {int(k): v for k, v in snapshots.load(store.path, fp).cache_capacity.items()}
        if profiles.add_run(profile, records, store.run_id, health_context(fp), blas_library(fp), capacity):
            profiles.save_profile(path, profile)

    def interrupt(self) -> None:
        """Ctrl-C: every part still going is interrupted; what arrived is kept."""
        for node_id, part in self.parts.items():
            if part.status not in ENDED:
                self.fail(node_id, "cancelled by Ctrl-C or SIGTERM on the driver", status="interrupted")
                self.end(node_id)
        self.finish(interrupted=True)

    def finish(self, interrupted: bool = False) -> str:
        statuses = [p.status for p in self.parts.values()]
        if interrupted or "interrupted" in statuses:
            self.status = "interrupted"
        elif all(s == "complete" for s in statuses):
            self.status = "complete"
        elif any(s == "complete" for s in statuses):
            self.status = "partial"
        else:
            self.status = "failed"
        self.finished_at = time.time()
        self.write()
        return self.status


# ---------------------------------------------------------------------- reading

def load_fleet(path: str | Path) -> dict:
    p = Path(path)
    p = p if p.name == FLEET_FILE else p / FLEET_FILE
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{p}: not a readable fleet manifest ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise UsageError(f"{p}: not a fleet manifest (no node list)")
    return data


def is_fleet(path: str | Path) -> bool:
    return (Path(path) / FLEET_FILE).is_file()


def fleet_runs(path: str | Path) -> list[Path]:
    """The node runs a fleet run folder links, in its node order (those with a run folder)."""
    folder = Path(path)
    results = folder.parent.parent
    runs = [results / n["run"] for n in load_fleet(folder)["nodes"] if n.get("run")]
    return [r for r in runs if r.is_dir()]


def latest_fleet(results: str | Path) -> Path | None:
    runs = sorted(p.parent for p in (Path(results) / FLEET_DIR).glob(f"*/{FLEET_FILE}"))
    return runs[-1] if runs else None
