"""A run, end to end: a suite into a new run folder, placed against a frozen profile snapshot,
the device profile updated, the report written.

The order (so that every op of a run is placed against one snapshot, and a fresh device's
main job places its ops against what its own probes measured minutes before):
1. The run folder and its manifest; the profile snapshot in force is frozen into it.
2. Probe cases first (in suite order). A probe whose best and median repetitions disagree
   by more than the profile's tolerance, or whose record is suspect, is re-measured in a
   fresh worker, up to REMEASURE_CAP times; every attempt is kept.
3. The probes' measurements join the device profile (health checked), and the snapshot is
   taken again from it and frozen into the run: the one the rest of the run is placed against.
4. The other cases, each placed as it arrives. A suspect case is re-measured once in a
   fresh worker; both attempts are kept, readers report the last.
5. The manifest says how the run ended; the report is written.
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
import time
from pathlib import Path

from harness.analysis import fingerprint as fpmod
from harness.analysis import profile as profiles
from harness.analysis import snapshot as snapshots
from harness.analysis.placement import PLACED_PROBES, placer
from harness.core.records import Manifest, Record
from harness.core.runner import run_cases
from harness.core.errors import UsageError
from harness.core.store import RunStore, StoreError, git_revision
from harness.core.suite import MAX_SECONDS, Case, Suite
from harness.presentation.report import write_report
from harness.session.progress import Progress

ROOT = Path(__file__).resolve().parent.parent.parent


def exit_status(records: list[Record]) -> int:
    """0 when no case failed, 1 otherwise (skips are not failures: they say why)."""
    return 1 if any(r.status == "failed" for r in records) else 0


def blas_library(fp: dict) -> str | None:
    """The BLAS numpy.matmul calls ("openblas 0.3.31"), which keys the BLAS ceiling; a
    fingerprint that does not say which is numpy's (older ones) gives all it lists."""
    blas = fp.get("blas") or []
    mine = [b for b in blas if b.get("numpy_blas")] or [b for b in blas if "numpy_blas" not in b]
    return ", ".join(f"{b.get('internal_api')} {b.get('version')}" for b in mine) or None


def health_context(fp: dict) -> profiles.HealthContext:
    uarch = (fp.get("cpu") or {}).get("uarch") or ""
    return profiles.HealthContext(lambda level, dtype: fpmod.flops_per_cycle(uarch, level, dtype),
                                  (fp.get("cpu") or {}).get("physical_cores") or 1)


def _ending(exc: BaseException) -> tuple[str, str | None]:
    """(manifest status, stop reason) of a run ended by `exc`: a disk that refused a write
    stopped it, anything else (Ctrl-C, SIGTERM, a bug) interrupted it."""
    if isinstance(exc, StoreError):
        return "stopped", str(exc)
    return "interrupted", None


@contextlib.contextmanager
def signals_held():
    """Ctrl-C and SIGTERM wait for the end of the block, then take effect as they would have
    (a handler that raises raises there). Python runs signal handlers in the main thread
    only, so elsewhere there is nothing to hold."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    before = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
              for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        for sig in caught:
            signal.raise_signal(sig)


def _retry(case: Case, attempt: int) -> Case:
    return dataclasses.replace(case, attempt=attempt, fresh_process=True)


class Session:
    """One run: its store, the profile it reads and updates, the snapshot it places against."""

    def __init__(self, suite: Suite, results: Path, argv: list[str] | None = None, progress: bool = True):
        self.suite = suite
        self.results = Path(results)
        self.fp = fpmod.fingerprint()
        self.device = fpmod.device_slug(self.fp)
        # Read before the run folder exists: a profile this harness cannot read stops here.
        self.profile_file = profiles.profile_path(self.results, self.device)
        self.profile = profiles.load_profile(self.profile_file)
        self.blas = blas_library(self.fp)
        revision = git_revision(ROOT)
        self.records: list[Record] = []
        self.progress = Progress(suite.cases, suite.name, enabled=progress)
        self.store: RunStore | None = None
        try:
            with signals_held():  # the run folder and its manifest come into being together
                self.store = RunStore.create(self.results, self.device, suite.name)
                self.store.write_manifest(Manifest(
                    run_id=self.store.run_id, status="running",
                    suite={"name": suite.name, "description": suite.description,
                           "path": str(suite.path) if suite.path else None,
                           "cases": [c.to_dict() for c in suite.cases]},
                    command_line=list(argv if argv is not None else sys.argv), git_revision=revision,
                    started_at=time.time(), fingerprint=self.fp, profile="profile.json",
                    warnings=list(self.fp["machine_state"]["warnings"])))
            self.snapshot = snapshots.take(self.profile, self.fp, self.profile_file if self.profile else None,
                                           self.blas)
            snapshots.write(self.store.path, self.snapshot)
        except BaseException as exc:  # the manifest says how the run ended, whatever ended it
            if self.store is not None:
                self._finish(*_ending(exc))
            raise

    def _run(self, cases: list[Case], enrich=None) -> list[Record]:
        done = run_cases(cases, self.store, on_start=self.progress.start, on_record=self.progress.done, enrich=enrich)
        self.records.extend(done)
        return done

    def _probes(self, cases: list[Case]) -> list[Record]:
        done = self._run(cases)
        by_id = {c.case_id: c for c in cases}
        for attempt in range(2, profiles.REMEASURE_CAP + 2):
            again = []
            for r in done:
                spread = profiles.repetition_spread(r)
                if r.case_id in by_id and r.measured and (r.status == "suspect" or
                                                          (spread or 0) > profiles.SPREAD_TOLERANCE):
                    again.append(_retry(by_id[r.case_id], attempt))
            if not again:
                break
            for case in again:
                self.progress.add(case)
            done = self._run(again)
        return done

    def run(self, report: bool = True) -> tuple[RunStore, list[Record]]:
        probes = [c for c in self.suite.cases if c.kind.startswith("probe.")]
        others = [c for c in self.suite.cases if not c.kind.startswith("probe.")]
        status, stop_reason = "interrupted", None
        try:
            if probes:
                self._probes(probes)
                self._update_profile()
                # A BLAS GEMM is a probe and an op: placed, for the summary, against the snapshot
                # its own measurements joined (the report places it the same way from the store).
                place = placer(self.snapshot)
                for r in self.records:
                    if r.kind in PLACED_PROBES:
                        place(r)
            done = self._run(others, enrich=placer(self.snapshot))
            suspect = [c for c in others if any(r.case_id == c.case_id and r.status == "suspect" for r in done)]
            if suspect:
                retries = [_retry(c, 2) for c in suspect]
                for case in retries:
                    self.progress.add(case)
                self._run(retries, enrich=placer(self.snapshot))
            status = "complete"
        except BaseException as exc:
            status, stop_reason = _ending(exc)
            raise
        finally:
            self._finish(status, stop_reason)
        self.store.report = write_report_safely(self.store.path) if report else None
        return self.store, self.records

    def _finish(self, status: str, stop_reason: str | None) -> None:
        """The manifest says how the run ended; the records file is closed."""
        self.progress.close()
        try:
            self.store.update_manifest(status=status, finished_at=time.time(), stop_reason=stop_reason)
        except UsageError as exc:  # the disk refused even that: say so, the records stand
            print(f"warning: {exc}", file=sys.stderr)
        self.store.close()

    def _update_profile(self) -> None:
        profile = self.profile or profiles.DeviceProfile(device={"slug": self.device,
                                                                 "model": self.fp["cpu"]["model"]})
        capacity = {int(k): v for k, v in self.snapshot.cache_capacity.items()}
        added = profiles.add_run(profile, self.records, self.store.run_id, health_context(self.fp), self.blas,
                                 capacity)
        if not added:
            return
        profiles.save_profile(self.profile_file, profile)
        self.profile = profile
        self.snapshot = snapshots.take(profile, self.fp, self.profile_file, self.blas)
        snapshots.write(self.store.path, self.snapshot)


def run_suite(suite: Suite, results: Path, progress: bool = True, argv: list[str] | None = None,
              report: bool = True):
    """Runs a loaded suite into a new run folder; returns (store, records). report=False leaves
    the report to the caller (a command that adds to the run folder first, or none at all)."""
    return Session(suite, results, argv, progress).run(report)


def write_report_safely(run_path: Path) -> Path | None:
    """The run's HTML report; a report that fails to build never fails the run."""
    try:
        return write_report(run_path)[0]
    except Exception as exc:
        print(f"report not written: {exc!r} (the run itself is stored)", file=sys.stderr)
        return None


def scale_budgets(suite: Suite, scale: float) -> None:
    """Every case's sampling budget times `scale` (--budget-scale), held to the suite's bound:
    the suite was validated before the scale applied."""
    for case in suite.cases:
        scaled = case.policy.scaled(scale)
        if scaled.budget_s > MAX_SECONDS:
            raise UsageError(f"--budget-scale {scale:g}: {case.case_id}'s budget of {case.policy.budget_s:g} s "
                             f"would become {scaled.budget_s:g} s, past the {MAX_SECONDS:g} s bound")
        case.policy = scaled
