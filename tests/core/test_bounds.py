"""Bounded input: suite files, numbers and the store refuse what the system cannot do, in one
line, within a second, in bounded memory."""
import json
import os
import time

import pytest

from support import harness_cli, one_line_error
from harness.core.errors import UsageError
from harness.core.records import Manifest
from harness.core.store import MANIFEST, RunStore, StoreError, load_manifest, load_records
from harness.core.suite import load_suite, parse_suite

BOMB = """name: bomb
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
description: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
cases: [{kind: diagnostic.empty}]
"""


@pytest.mark.parametrize("text, expected", [
    (BOMB, "YAML aliases (*name) are not allowed"),
    ("cases:\n  - kind: diagnostic.empty\n    matrix: {x: *nothing}\n", "YAML aliases"),
    ("cases: " + "[" * 2000 + "]" * 2000 + "\n", "nested deeper than 32 levels"),
    ("name: a\nname: b\ncases: [{kind: diagnostic.empty}]\n", "key 'name' given twice"),
    ("cases: [{kind: diagnostic.empty, timeout: 1, timeout: 2}]\n", "key 'timeout' given twice"),
])
def test_malformed_suite_files_are_refused_fast(tmp_path, text, expected):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    t0 = time.monotonic()
    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        load_suite(path)
    assert time.monotonic() - t0 < 1.0


def test_special_and_oversized_files_are_refused(tmp_path):
    with pytest.raises(UsageError, match="not a regular file"):
        load_suite("/dev/zero")
    with pytest.raises(UsageError, match="not a regular file"):
        load_suite(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 1_100_000 + "\ncases: [{kind: diagnostic.empty}]\n")
    with pytest.raises(UsageError, match="too big for a suite file"):
        load_suite(big)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        load_suite(fifo)


@pytest.mark.parametrize("case, key, expected", [
    ({"timeout": 1.0e10}, "timeout", "must be <= 86400 s"),
    ({"budget": 1e9}, "budget", "must be <= 86400 s"),
    ({"warmup_max": -1}, "warmup_max", "must be >= 0"),
    ({"memory_limit_gb": 1.0e10}, "memory_limit_gb", "GB (this machine's memory"),
    ({"min_samples": 10**9}, "min_samples", "must be <= 1e+07"),
    ({"processes": 1000}, "processes", "must be <= 100"),
    ({"threads": [[1]]}, "threads", "expected a positive integer, 'all', a range"),
    ({"threads": [{"n": 1}]}, "threads", "expected a positive integer"),
    ({"threads": "1..100000000000000"}, "threads", "range '1..100000000000000': 100000000000000 threads exceed"),
    ({"threads": "3..1"}, "threads", "expected 1 <= first <= last"),
    ({"threads": 2, "cpus": [0, 0]}, "cpus", "CPU 0 listed twice"),
    ({"matrix": {"a": list(range(200)), "b": list(range(200))}}, "matrix", "40000 combinations"),
])
def test_numbers_are_bounded_and_name_their_key(case, key, expected):
    t0 = time.monotonic()
    with pytest.raises(UsageError) as err:
        parse_suite({"cases": [{"kind": "diagnostic.empty", **case}]}, "s.yaml", allowed=[0, 1])
    assert f"cases[0].{key}" in str(err.value) and expected in str(err.value), str(err.value)
    assert time.monotonic() - t0 < 1.0


def test_a_long_description_or_name_is_refused():
    with pytest.raises(UsageError, match="description: expected a string of at most"):
        parse_suite({"description": "x" * 20_000, "cases": [{"kind": "diagnostic.empty"}]}, "s.yaml")
    with pytest.raises(UsageError, match="name: expected a string of 1 to 200"):
        parse_suite({"name": ["x"], "cases": [{"kind": "diagnostic.empty"}]}, "s.yaml")


def test_the_command_line_says_one_line_and_exit_2_for_a_bomb(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    line = one_line_error(harness_cli("run", path, "--results", tmp_path / "r"))
    assert "aliases" in line


def test_run_folders_are_created_atomically_with_a_suffix_on_collision(tmp_path):
    stores = [RunStore.create(tmp_path, "dev", "same") for _ in range(3)]
    names = [s.path.name for s in stores]
    assert len(set(names)) == 3 and all(s.path.is_dir() for s in stores)
    if names[0][:15] == names[2][:15]:  # all three in the same second
        assert names[1:] == [names[0] + "-2", names[0] + "-3"]
    for s in stores:
        s.close()


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_every_record(tmp_path, write_suite):
    # RLIMIT_FSIZE makes the kernel refuse growing a file past a size, as a full disk would
    # (EFBIG instead of ENOSPC: the same path). The manifest fits; records.jsonl does not.
    import resource
    import signal
    import subprocess
    import sys

    from support import ROOT

    suite = write_suite("defaults: {budget: 0.02, min_samples: 3, warmup_max: 0.01}\ncases:\n"
                        + "".join(f"  - {{id: e{i}, kind: diagnostic.sleep, params: {{seconds: 0.0001}}}}\n"
                                  for i in range(16)))
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    results = tmp_path / "r"
    out = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--results", str(results),
                          "--no-progress"], cwd=ROOT, capture_output=True, text=True, preexec_fn=limit, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    (line,) = [l for l in out.stderr.splitlines() if l.startswith("error:")]  # beside "running 16 cases"
    assert "cannot write record" in line and "stay readable" in line
    run = next(results.glob("*/*"))
    manifest = load_manifest(run)
    assert manifest.status == "stopped" and "cannot write record" in manifest.stop_reason
    records = load_records(run)
    assert 0 < len(records) < 16 and all(r.case_id.startswith("e") for r in records)


def test_the_manifest_is_rewritten_in_place_when_the_disk_is_full(tmp_path, monkeypatch):
    store = RunStore.create(tmp_path, "dev", "full")
    store.write_manifest(Manifest(run_id=store.run_id, status="running", suite={"name": "x" * 200}))
    size = (store.path / MANIFEST).stat().st_size

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_text", full)
    store.update_manifest(status="stopped", stop_reason="disk full")
    monkeypatch.undo()
    assert (store.path / MANIFEST).stat().st_size == size  # not a byte more
    manifest = load_manifest(store.path)
    assert manifest.status == "stopped" and manifest.stop_reason == "disk full"
    assert json.loads((store.path / MANIFEST).read_text())["suite"]["name"] == "x" * 200
    store.close()
    from support import record

    store._records = open("/dev/full", "a")  # every write: ENOSPC
    with pytest.raises(StoreError, match="cannot write record 1 .*No space left on device"):
        store.append(record("x", {}, 1))


@pytest.mark.parametrize("line, expected", [
    ("[1, 2, 3]", "not a record (a JSON object was expected, got list)"),
    ('"text"', "not a record (a JSON object was expected, got str)"),
    ('{"case_id": "a", "kind": "k", "status": "ok", "schema_version": 999}', "written by a newer harness"),
    ('{"case_id": "a", "kind": "k", "status": "ok", "schema_version": "2"}', "is not a version number"),
    ('{"case_id": "a", "kind": "k", "status": "ok", "timing": [1]}', "not a record this harness can read"),
])
def test_every_reader_refuses_a_record_it_cannot_read_in_one_line(tmp_path, line, expected):
    run = tmp_path / "dev" / "run"
    run.mkdir(parents=True)
    good = '{"case_id": "b", "kind": "diagnostic.empty", "status": "skipped", "error": "x"}'
    (run / "records.jsonl").write_text(f"{good}\n{line}\n{good}\n")
    (run / MANIFEST).write_text(json.dumps({"run_id": "dev/run", "status": "complete"}))
    for argv in (["report", run], ["compare", run, run], ["export", run, "--format", "csv"]):
        err = one_line_error(harness_cli(*argv))
        assert "records.jsonl: line 2" in err and expected in err, (argv, err)
