"""Bounded input: suite files, numbers and the store refuse what the system cannot do, in one
line, within a second, in bounded memory."""
import json
import os
import time

import pytest

from support import harness_cli, one_line_error, run_cli
from harness.core.errors import UsageError
from harness.core.records import Manifest
from harness.core.store import MANIFEST, RunStore, StoreError, find_runs, load_manifest, load_records
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
        err = one_line_error(run_cli(*argv))
        assert "records.jsonl: line 2" in err and expected in err, (argv, err)


# --------------------------------------------------------------------------- YAML values

@pytest.mark.parametrize("value, expected", [
    ("1" * 5000, "a number of 5000 characters is too long"),
    ("0x" + "f" * 5000, "a number of 5002 characters is too long"),
    (":".join(["59"] * 2000), "characters is too long"),  # a base-60 integer: quadratic to convert
    ("!!float x", "cannot read 'x' as !!float"),
    ("!!int 0x", "cannot read '0x' as !!int"),
    ("!!int 0b2", "cannot read '0b2' as !!int"),
    ("!!bool maybe", "cannot read 'maybe' as !!bool"),
    ("!!timestamp 2001-13-45", "the tag !!timestamp is not allowed"),
    ("!!binary aGk=", "the tag !!binary is not allowed"),
    ("!!set {a: 1}", "the tag !!set is not allowed"),
    ("!!omap [a: 1]", "the tag !!omap is not allowed"),
    ("!!map [1]", "expected a mapping for !!map"),
])
def test_values_yaml_cannot_construct_are_one_line_naming_the_file(tmp_path, value, expected):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: x\ncases: [{{kind: diagnostic.empty, timeout: {value}}}]\n")
    t0 = time.monotonic()
    with pytest.raises(UsageError) as err:
        load_suite(path)
    message = str(err.value)
    assert message.startswith(f"{path}: line 2, column") and expected in message, message
    assert "\n" not in message and len(message) < 400
    assert time.monotonic() - t0 < 1.0


def test_dates_stay_strings(tmp_path):
    # `2001-13-45` is no date (month 13); a suite never needs one, so every date is a string.
    path = tmp_path / "s.yaml"
    path.write_text("name: 2001-13-45\ndescription: 2001-12-14\ncases: [{kind: diagnostic.empty}]\n")
    suite = load_suite(path)
    assert suite.name == "2001-13-45" and suite.description == "2001-12-14"


@pytest.mark.parametrize("text", [
    "name: 2001-13-45x\ncases: [{kind: diagnostic.empty, id: !!int 0x}]\n",
    "cases: [{kind: diagnostic.empty, budget: " + "9" * 4400 + "}]\n",
    "cases: [{kind: diagnostic.empty, params: !!float x}]\n",
])
def test_the_command_line_says_one_line_and_exit_2_for_a_value_that_cannot_construct(tmp_path, capsys, text):
    from harness.commands.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: line") and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- includes

def test_includes_are_bounded_while_they_load(tmp_path):
    (tmp_path / "leaf.yaml").write_text("cases: [{kind: diagnostic.empty}]\n")
    (tmp_path / "wide.yaml").write_text("include: [" + ", ".join(["leaf.yaml"] * 5000) + "]\n")
    # 150 distinct files, each with its own case, two levels down.
    for i in range(150):
        (tmp_path / f"leaf{i}.yaml").write_text(f"cases: [{{id: c{i}, kind: diagnostic.empty}}]\n")
    for j in range(10):
        leaves = ", ".join(f"leaf{i}.yaml" for i in range(15 * j, 15 * j + 15))
        (tmp_path / f"mid{j}.yaml").write_text(f"include: [{leaves}]\n")
    (tmp_path / "nested.yaml").write_text("include: [" + ", ".join(f"mid{j}.yaml" for j in range(10)) + "]\n")
    for name in ("wide.yaml", "nested.yaml"):
        t0 = time.monotonic()
        with pytest.raises(UsageError, match=r"include: more than 100 suite files to read"):
            load_suite(tmp_path / name)
        assert time.monotonic() - t0 < 5.0


def test_the_case_bound_counts_included_cases_as_they_load(tmp_path):
    (tmp_path / "big.yaml").write_text("cases: [{kind: diagnostic.sleep, matrix: {seconds: [" +
                                       ", ".join(f"{i}.0e-9" for i in range(6000)) + "]}}]\n")
    (tmp_path / "twice.yaml").write_text("include: [big.yaml, big.yaml, big.yaml]\n")
    with pytest.raises(UsageError, match=r"big.yaml: cases\[0\]: the suite expands to more than 10000 cases"):
        load_suite(tmp_path / "twice.yaml")


def test_duplicate_ids_among_ten_thousand_cases_are_found_in_linear_time():
    many = {"kind": "diagnostic.sleep", "id": "a", "matrix": {"seconds": [i * 1e-9 for i in range(9_999)]}}
    t0 = time.monotonic()
    with pytest.raises(UsageError, match=r"duplicate case id 'a\[seconds=0.0,t=1\]'"):
        parse_suite({"cases": [many, {**many, "matrix": {"seconds": [0.0]}}]}, "s.yaml", allowed=[0, 1])
    assert time.monotonic() - t0 < 20.0  # generous: a slow, busy machine


# --------------------------------------------------------------------------- kernel parameters

def test_every_numeric_parameter_of_every_kind_is_bounded_on_both_sides():
    from harness.core import registry

    unbounded = [f"{kind.name}.{key}" for kind in registry.kinds().values() for key, spec in kind.params.items()
                 if spec.choices is None and {int, float} & set(spec.type if isinstance(spec.type, tuple) else
                                                                (spec.type,))
                 and (spec.min is None or spec.max is None)]
    assert not unbounded


@pytest.mark.parametrize("kind, key, value", [
    ("probe.sweep", "kbytes", 1e15),
    ("probe.fma", "iterations", 10**15),
    ("probe.frequency", "adds", 10**15),
    ("probe.throttle", "seconds", 1e9),
    ("probe.stream", "mbytes", 1e12),
    ("probe.intensity", "mbytes", 1e12),
    ("probe.intensity", "reps", 10**15),
    ("memory.page_faults", "mbytes", 1e12),
    ("diagnostic.sleep", "seconds", 1e12),
])
def test_a_huge_kernel_parameter_is_one_line_naming_its_key(kind, key, value):
    with pytest.raises(UsageError) as err:
        parse_suite({"cases": [{"kind": kind, "params": {key: value}}]}, "s.yaml", allowed=[0, 1])
    assert f"cases[0].params.{key}: must be <=" in str(err.value), str(err.value)


def test_a_sweep_that_cannot_fit_is_refused_at_validation():
    with pytest.raises(UsageError, match=r"params: the case needs about 2.05 GB .* its memory_limit_gb"):
        parse_suite({"cases": [{"kind": "probe.sweep", "params": {"kbytes": 2e6}, "memory_limit_gb": 1}]},
                    "s.yaml", allowed=[0, 1])


# --------------------------------------------------------------------------- --budget-scale

def test_a_scaled_budget_is_held_to_the_bound(tmp_path, capsys):
    from harness.commands import options
    from harness.commands.cli import main
    from harness.core import suite as suite_module
    from harness.session.pipeline import scale_budgets

    assert options.MAX_SECONDS is suite_module.MAX_SECONDS  # one home
    suite = parse_suite({"cases": [{"kind": "diagnostic.empty", "budget": 100}]}, "s.yaml", allowed=[0])
    scale_budgets(suite, 2.0)
    assert suite.cases[0].policy.budget_s == 200
    with pytest.raises(UsageError, match=r"--budget-scale 1000: diagnostic.empty\[t=1\]'s budget of 200 s would "
                                         r"become 200000 s, past the 86400 s bound"):
        scale_budgets(suite, 1000.0)
    path = tmp_path / "s.yaml"
    path.write_text("cases: [{kind: diagnostic.empty, budget: 100}]\n")
    assert main(["run", str(path), "--budget-scale", "1000", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --budget-scale 1000:") and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- the disk refuses

def _refuse_replace_onto(name: str, monkeypatch):
    """os.replace onto a file called `name` fails as a full disk would."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) == name:
            raise OSError(28, "No space left on device")
        return real(src, dst, *args, **kwargs)
    monkeypatch.setattr(os, "replace", replace)


def test_profile_and_snapshot_writes_the_disk_refuses_are_store_errors(tmp_path, monkeypatch):
    from harness.analysis import profile as profiles
    from harness.analysis import snapshot as snapshots

    _refuse_replace_onto("profile.json", monkeypatch)
    with pytest.raises(StoreError, match=r"profile.json: cannot write the device profile \(No space left on device\)"):
        profiles.save_profile(tmp_path / "dev" / "profile.json", profiles.DeviceProfile())
    with pytest.raises(StoreError, match=r"profile.json: cannot write the profile snapshot \(No space left"):
        snapshots.write(tmp_path, snapshots.Snapshot())
    monkeypatch.undo()
    (tmp_path / "file").write_text("")  # a file where a folder should be
    with pytest.raises(StoreError, match="cannot write the device profile"):
        profiles.save_profile(tmp_path / "file" / "profile.json", profiles.DeviceProfile())
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file stays


def test_worker_files_the_disk_refuses_are_store_errors(tmp_path):
    from harness.core.runner import run_cases

    suite = parse_suite({"cases": [{"kind": "diagnostic.empty"}]}, "s.yaml", allowed=[0])
    store = RunStore.create(tmp_path, "dev", "x")
    (store.path / "logs").rmdir()
    (store.path / "logs").write_text("")  # the worker's spec and log cannot go there
    with pytest.raises(StoreError, match=r"logs: cannot write the worker's files \(Not a directory\); the run stopped"):
        run_cases(suite.cases, store)
    store.close()


def test_a_run_the_disk_refuses_stops_with_one_line_and_says_so_in_its_manifest(tmp_path, monkeypatch, capsys):
    from harness.commands.cli import main

    path = tmp_path / "s.yaml"
    path.write_text("cases: [{kind: diagnostic.empty}]\n")
    _refuse_replace_onto("profile.json", monkeypatch)  # the snapshot the session freezes first
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--no-progress"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("error: ") and \
        "cannot write the profile snapshot (No space left on device)" in err.splitlines()[-1], err
    (run,) = find_runs(tmp_path / "r")
    manifest = load_manifest(run)
    assert manifest.status == "stopped" and "cannot write the profile snapshot" in manifest.stop_reason
    assert not list(run.rglob("*.tmp"))


def test_records_that_cannot_be_read_are_one_line(tmp_path):
    run = tmp_path / "dev" / "run"
    (run / "records.jsonl").mkdir(parents=True)  # a folder where the records file should be
    (run / MANIFEST).write_text(json.dumps({"run_id": "dev/run", "status": "complete"}))
    with pytest.raises(UsageError, match=r"records.jsonl: cannot read the records \(Is a directory\)"):
        load_records(run)
    err = one_line_error(harness_cli("report", run))
    assert "cannot read the records" in err


# --------------------------------------------------------------------------- versions

def test_a_profile_from_a_newer_harness_is_an_error_and_left_alone(tmp_path):
    from harness.analysis import profile as profiles

    path = tmp_path / "profile.json"
    text = json.dumps({"schema_version": profiles.PROFILE_SCHEMA + 1, "measurements": "a new layout"})
    path.write_text(text)
    with pytest.raises(UsageError, match=r"profile.json: written by a newer harness \(profile schema 3; this one "
                                         r"reads up to 2\)"):
        profiles.load_profile(path)
    assert path.read_text() == text and [p.name for p in tmp_path.iterdir()] == ["profile.json"]
    path.write_text("{not json")  # a damaged one is still moved aside, and the run goes on
    assert profiles.load_profile(path) is None and not path.exists()


@pytest.mark.parametrize("version, expected", [(2, "written by a newer harness (snapshot schema 2"),
                                               ("1", "schema_version '1' is not a version number"),
                                               (0, "schema_version 0 is not a version number")])
def test_a_snapshot_of_an_unknown_version_is_one_line(tmp_path, version, expected):
    from harness.analysis import snapshot as snapshots

    data = snapshots.Snapshot().to_json()
    assert data["schema_version"] == 1 and snapshots.Snapshot.from_json(data) == snapshots.Snapshot()
    (tmp_path / "profile.json").write_text(json.dumps({**data, "schema_version": version}))
    with pytest.raises(UsageError) as err:
        snapshots.load(tmp_path, {})
    assert str(err.value).startswith(f"{tmp_path / 'profile.json'}: ") and expected in str(err.value)
