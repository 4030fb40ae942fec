"""The runner survives crashing, raising and hanging cases, and a killed run keeps its records."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from support import ROOT
from harness.core.store import RunStore, find_runs, load_manifest, load_run
from harness.core.suite import parse_suite
from harness.core.runner import TEMP_PREFIX, remove_stale_temp_roots, run_cases

FAST = "defaults: {budget: 0.05, min_samples: 3, warmup_max: 0.1, timeout: 20}\n"


def _run(tmp_path, text, on_record=None):
    suite = parse_suite(__import__("yaml").safe_load(text), "test.yaml")
    store = RunStore.create(tmp_path, "dev", "test")
    records = run_cases(suite.cases, store, on_record=on_record)
    store.close()
    return store, {r.case_id: r for r in records}


def _temp_folders(pid: int, pattern: str = "") -> list[Path]:
    """The runner's temporary folder of process `pid` (pattern "/worker-*": its workers')."""
    return list(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}{pid}-*{pattern}"))


def test_crash_exception_and_hang_become_failed_records_and_the_run_completes(tmp_path):
    # Each worker's temporary folder (its TMPDIR) is removed when the worker ends, however it ends.
    left = {}
    store, by_id = _run(tmp_path, FAST + """
cases:
  - {id: before, kind: diagnostic.empty}
  - {id: abort, kind: diagnostic.crash, params: {how: abort}}
  - {id: raises, kind: diagnostic.crash, params: {how: exception}}
  - {id: hangs, kind: diagnostic.hang, timeout: 2}
  - {id: after, kind: diagnostic.sleep, params: {seconds: 0.0001}}
""", on_record=lambda r: left.update({r.case_id: _temp_folders(os.getpid(), "/worker-*")}))
    assert len(left["before[t=1]"]) == 1  # its worker runs on, to crash on the next case
    assert left["abort[t=1]"] == [] and left["hangs[t=1]"] == []  # killed (SIGABRT, SIGKILL): removed
    assert not _temp_folders(os.getpid())  # and the runner's own folder, once it returns
    assert by_id["before[t=1]"].measured
    assert by_id["after[t=1]"].measured
    assert by_id["abort[t=1]"].status == "failed"
    assert "SIGABRT" in by_id["abort[t=1]"].error
    assert by_id["raises[t=1]"].status == "failed"
    assert "raised on purpose" in by_id["raises[t=1]"].error
    assert by_id["hangs[t=1]"].status == "failed"
    assert "timed out after 2 s" in by_id["hangs[t=1]"].error
    df = load_run(store.path)
    assert len(df) == 5 and set(df["status"]) <= {"ok", "suspect", "failed"} and "failed" in set(df["status"])


def test_out_of_memory_under_a_memory_limit_is_a_failed_record(tmp_path):
    _, by_id = _run(tmp_path, FAST + """
cases:
  - {id: big, kind: diagnostic.allocate, params: {gbytes: 4}, memory_limit_gb: 1.5}
  - {id: ok, kind: diagnostic.empty, memory_limit_gb: 1.5}
""")
    assert by_id["big[t=1]"].status == "failed"
    assert "MemoryError" in by_id["big[t=1]"].error
    assert by_id["ok[t=1]"].measured


def test_affinity_and_threads_are_applied_in_the_worker(tmp_path):
    _, by_id = _run(tmp_path, FAST + """
cases:
  - {id: mm, kind: numpy.matmul, params: {n: 64}, threads: 1, cpus: [0]}
""")
    r = by_id["mm[t=1]"]
    assert r.affinity == [0]
    assert r.conditions.library_threads["blas_threads"]["openblas"] == 1


def test_record_schema(tmp_path):
    store, by_id = _run(tmp_path, FAST + "cases:\n  - {id: mm, kind: numpy.matmul, params: {n: 64}}\n")
    r = json.loads((store.path / "records.jsonl").read_text().splitlines()[0])
    for key in ("schema_version", "run_id", "case_id", "kind", "params", "threads", "affinity", "attempt",
                "status", "cost", "timing", "faults", "metrics", "conditions", "warnings", "suspect_reasons", "info"):
        assert key in r, key
    for key in ("n", "median", "min", "p10", "p90", "iqr", "mean", "stdev", "cv", "ci95_low",
                "ci95_high", "outliers", "samples", "warmup_iterations", "timer_overhead_s", "number"):
        assert key in r["timing"], key
    assert r["schema_version"] == 2
    assert r["cost"]["flops"] == 2 * 64**3
    assert r["metrics"]["flops_per_s"] == r["cost"]["flops"] / r["timing"]["median"]


def test_page_fault_demo_fresh_buffers_fault_and_the_pool_does_not(tmp_path):
    _, by_id = _run(tmp_path, FAST + """
cases:
  - {id: pf, kind: memory.page_faults, params: {mbytes: 4}, matrix: {mode: [fresh, pool]}}
""")
    fresh, pool = by_id["pf[mode=fresh,t=1]"], by_id["pf[mode=pool,t=1]"]
    pages = fresh.info["pages_4k"]
    # One first-touch fault per 4 KiB page of the fresh buffer: an anonymous mmap without
    # MADV_HUGEPAGE gets 4 KiB pages unless transparent huge pages are "always" on.
    thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    expected = pages / 512 if "[always]" in thp else pages
    assert fresh.faults.minor_per_call >= 0.9 * expected
    assert pool.faults.minor_per_call == 0


def test_killed_run_keeps_every_finished_record(tmp_path, write_suite):
    suite = write_suite(FAST + """
cases:
  - {id: one, kind: diagnostic.empty}
  - {id: two, kind: diagnostic.sleep, params: {seconds: 0.001}}
  - {id: forever, kind: diagnostic.hang, timeout: 600}
""")
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--results", str(results),
                             "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    records = None
    while time.time() < deadline:
        runs = find_runs(results)
        if runs and (runs[0] / "records.jsonl").exists():
            lines = (runs[0] / "records.jsonl").read_text().splitlines()
            if len(lines) >= 2:
                records = lines
                break
        time.sleep(0.1)
    assert records is not None, "the run never wrote two records"
    import psutil

    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "the hanging case's worker should be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = find_runs(results)[0]
    df = load_run(run)
    assert sorted(df["case_id"]) == ["one[t=1]", "two[t=1]"]
    assert df["status"].isin(["ok", "suspect"]).all()  # measured (a noisy machine may make one suspect)
    assert load_manifest(run).status == "running"  # never marked complete: it was killed
    # The orphaned worker dies with its parent (PR_SET_PDEATHSIG) instead of hanging on a core.
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers outlived the killed run: {alive}"
    # A runner killed with SIGKILL cannot clean up: the next run removes what it left.
    assert _temp_folders(proc.pid, "/worker-*")
    remove_stale_temp_roots()
    assert not _temp_folders(proc.pid)


def _start_hanging_run(tmp_path, write_suite):
    suite = write_suite(FAST + """
cases:
  - {id: one, kind: diagnostic.empty}
  - {id: forever, kind: diagnostic.hang, timeout: 600}
""")
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--results", str(results),
                             "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        runs = find_runs(results)
        if runs and (runs[0] / "records.jsonl").exists() and (runs[0] / "records.jsonl").read_text().strip():
            break
        time.sleep(0.1)
    time.sleep(0.5)  # the hanging case has started
    return proc, results


@pytest.mark.parametrize("signals, gap, code, word", [
    ([signal.SIGINT], 0, 130, "interrupted"),
    ([signal.SIGINT, signal.SIGINT], 0.02, 130, "interrupted"),  # two Ctrl-C 20 ms apart
    ([signal.SIGINT] * 3, 0.2, 130, "interrupted"),  # three, 200 ms apart
    ([signal.SIGTERM], 0, 143, "terminated"),
    ([signal.SIGTERM, signal.SIGINT], 0.05, 143, "terminated"),
])
def test_signals_stop_the_run_keep_its_records_and_mark_it_interrupted(tmp_path, write_suite, signals, gap, code,
                                                                        word):
    import psutil

    proc, results = _start_hanging_run(tmp_path, write_suite)
    workers = psutil.Process(proc.pid).children(recursive=True)
    # The hanging case's worker has a temporary folder of its own as TMPDIR.
    (folder,) = _temp_folders(proc.pid, "/worker-*")
    assert [w.environ().get("TMPDIR") for w in workers] == [str(folder)]
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(gap)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert f"{word}: every record finished so far is kept" in err and "Traceback" not in err, err
    run = find_runs(results)[0]
    assert list(load_run(run)["case_id"]) == ["one[t=1]"]
    assert load_manifest(run).status == "interrupted"
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers outlived the run: {alive}"
    # What each worker was asked lives beside its log in the run folder, not in /tmp; the
    # workers' temporary folders (killed with SIGKILL) and the runner's are removed.
    assert list((run / "logs").glob("worker-*.cases.json"))
    assert not _temp_folders(proc.pid)


def test_a_case_pooled_over_processes_runs_in_fresh_workers_and_pools_its_samples(tmp_path):
    _, by_id = _run(tmp_path, FAST + """
cases:
  - {id: mm, kind: numpy.matmul, params: {n: 64}, processes: 3}
  - {id: solo, kind: diagnostic.empty}
""")
    r = by_id["mm[t=1]"]
    t = r.timing
    assert r.measured and t.processes == 3 and len(t.per_process) == 3
    assert len({p["worker_pid"] for p in t.per_process}) == 3  # three fresh processes
    assert t.n == len(t.samples) >= 3 * 3
    import numpy as np
    assert t.median == np.median(t.samples)
    assert r.metrics["flops_per_s"] == r.cost.flops / t.median
    assert by_id["solo[t=1]"].measured


def test_a_pooled_case_fails_when_any_process_fails(tmp_path):
    _, by_id = _run(tmp_path, FAST + "cases:\n  - {id: c, kind: diagnostic.crash, processes: 2}\n")
    assert by_id["c[t=1]"].status == "failed" and by_id["c[t=1]"].error.startswith("process 1 of 2")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_commands_are_still_importing_ends_quietly(tmp_path, sig, code):
    # entry.py's handler is in place within milliseconds; the commands take a second or more
    # to import, so 0.3 s lands in the imports (harness.commands.cli is not imported yet).
    proc = subprocess.Popen([sys.executable, "-c", "import sys\nfrom harness.commands import entry\n"
                             "entry.quit_quietly_on_signals()\nprint('ready', flush=True)\nsys.argv = ['harness', 'kinds']\nsys.exit(entry.main())"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code and "Traceback" not in err, err
    assert out == ""  # it stopped before listing anything


@pytest.mark.parametrize("where", ["between the run folder and its manifest", "freezing the snapshot"])
def test_a_signal_while_a_session_starts_leaves_a_manifest_that_says_interrupted(tmp_path, monkeypatch, where):
    from harness.session import pipeline

    suite = parse_suite({"cases": [{"kind": "diagnostic.empty"}]}, "s.yaml")
    if where == "freezing the snapshot":
        def take(*args, **kwargs):
            raise KeyboardInterrupt
        monkeypatch.setattr(pipeline.snapshots, "take", take)
    else:  # Ctrl-C the moment the run folder exists: it is held back until the manifest is written
        create = RunStore.create

        def create_then_ctrl_c(*args, **kwargs):
            store = create(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGINT)
            assert not (store.path / "manifest.json").exists()
            return store
        monkeypatch.setattr(pipeline.RunStore, "create", create_then_ctrl_c)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.Session(suite, tmp_path / "r", progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    (run,) = [p for p in (tmp_path / "r").glob("*/*") if p.is_dir()]
    manifest = load_manifest(run)
    assert manifest.status == "interrupted" and manifest.finished_at
