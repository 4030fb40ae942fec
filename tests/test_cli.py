"""Bad input gets one clear line and exit code 2; the commands do what --help says."""
import json
import os

import pytest

from conftest import harness_cli
from harness.core.suite import parse_suite
from harness.core.errors import UsageError

BAD_SUITES = {
    "unknown top key": ("name: x\ncases: [{kind: diagnostic.empty}]\nextra: 1\n", "extra: unknown top-level key"),
    "unknown case key": ("cases: [{kind: diagnostic.empty, colour: red}]\n", "cases[0].colour: unknown key"),
    "unknown kind": ("cases: [{kind: nope}]\n", "cases[0].kind: unknown case kind 'nope'"),
    "missing kind": ("cases: [{id: a}]\n", "cases[0]: missing required key 'kind'"),
    "wrong param type": ("cases: [{kind: numpy.matmul, params: {n: big}}]\n", "cases[0].params.n: expected int"),
    "impossible param": ("cases: [{kind: numpy.matmul, params: {n: -3}}]\n", "cases[0].params.n: must be >= 1"),
    "unknown param": ("cases: [{kind: numpy.matmul, params: {n: 8, m: 2}}]\n", "cases[0].params.m: unknown parameter"),
    "missing param": ("cases: [{kind: numpy.matmul}]\n", "cases[0].params.n: required parameter missing"),
    "bad choice": ("cases: [{kind: numpy.matmul, params: {n: 8, dtype: int4}}]\n", "cases[0].params.dtype: must be one of"),
    "negative timeout": ("cases: [{kind: diagnostic.empty, timeout: -1}]\n", "cases[0].timeout: must be >="),
    "too many threads": ("cases: [{kind: diagnostic.empty, threads: 4096}]\n", "cases[0].threads: 4096 threads exceed the"),
    "cpu not available": ("cases: [{kind: diagnostic.empty, cpus: [4096]}]\n", "cases[0].cpus: CPUs [4096] are not available"),
    "not yaml": ("cases: [kind: : x\n", "not valid YAML"),
    "not a mapping": ("- 1\n- 2\n", "a suite file must be a mapping"),
    "empty cases": ("cases: []\n", "cases: expected a non-empty list"),
    "nan timeout": ("cases: [{kind: diagnostic.empty, timeout: .nan}]\n", "cases[0].timeout: must be a finite number"),
    "infinite budget": ("cases: [{kind: diagnostic.empty, budget: .inf}]\n", "cases[0].budget: must be a finite number"),
    "nan param": ("cases: [{kind: memory.page_faults, params: {mbytes: .nan}}]\n", "cases[0].params.mbytes: must be a finite"),
    "includes itself": ("include: [suite.yaml]\n", "includes itself"),
    "duplicate ids": ("cases: [{id: a, kind: diagnostic.empty}, {id: a, kind: diagnostic.empty}]\n", "duplicate case id"),
}


@pytest.mark.parametrize("name", sorted(BAD_SUITES))
def test_bad_suite_is_one_clear_line_and_exit_2(name, write_suite):
    text, expected = BAD_SUITES[name]
    path = write_suite(text)
    out = harness_cli("run", path, "--results", path.parent / "r")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {path}"), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in out.stderr


def test_missing_suite_file(tmp_path):
    out = harness_cli("run", tmp_path / "nope.yaml")
    assert out.returncode == 2 and "no such suite file" in out.stderr and "Traceback" not in out.stderr


def test_thread_count_above_the_cores_is_refused():
    with pytest.raises(UsageError, match=r"threads: 3 threads exceed the 2 CPUs"):
        parse_suite({"cases": [{"kind": "diagnostic.empty", "threads": [1, 3]}]}, "s.yaml", allowed=[0, 1])


def test_threads_all_and_matrix_expand():
    suite = parse_suite({"cases": [{"id": "mm", "kind": "numpy.matmul", "params": {"n": 8},
                                    "threads": [1, "all"][1], "matrix": {"dtype": ["float32", "float64"]}}]},
                        "s.yaml", allowed=[0, 1])
    assert [c.case_id for c in suite.cases] == ["mm[dtype=float32,t=2]", "mm[dtype=float64,t=2]"]
    assert all(c.cpus == [0, 1] for c in suite.cases)


def test_device_json_and_table():
    out = harness_cli("device", "--json")
    assert out.returncode == 0, out.stderr
    fp = json.loads(out.stdout)
    assert fp["cpu"]["logical_cpus"] == os.cpu_count()
    assert "scalar" in fp["cpu"]["usable_levels"]
    assert fp["theoretical_peak"]["float32"]["flops_per_cycle_per_core"] > 0
    table = harness_cli("device")
    assert table.returncode == 0 and "Theoretical peak float32" in table.stdout


def test_help_lists_commands():
    out = harness_cli("--help")
    assert out.returncode == 0
    for command in ("device", "run", "kinds"):
        assert command in out.stdout


def test_run_prints_summary_and_store_path(write_suite):
    path = write_suite("defaults: {budget: 0.05, min_samples: 3, warmup_max: 0.1}\n"
                       "cases: [{id: e, kind: diagnostic.empty}]\n")
    out = harness_cli("run", path, "--results", path.parent / "r", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "e[t=1]" in out.stdout and "1 ok, 0 failed" in out.stdout
    assert "run stored in" in out.stdout


def test_suite_include_runs_the_included_cases_first(tmp_path):
    (tmp_path / "base.yaml").write_text("cases: [{id: base, kind: diagnostic.empty}]\n")
    (tmp_path / "top.yaml").write_text("include: [base.yaml]\ncases: [{id: top, kind: diagnostic.empty}]\n")
    from harness.core.suite import load_suite

    assert [c.case_id for c in load_suite(tmp_path / "top.yaml").cases] == ["base[t=1]", "top[t=1]"]
    (tmp_path / "bad.yaml").write_text("include: [missing.yaml]\n")
    with pytest.raises(UsageError, match="include: no such suite file"):
        load_suite(tmp_path / "bad.yaml")


def test_shipped_suites_validate():
    from conftest import ROOT
    from harness.core.suite import load_suite

    for path in sorted((ROOT / "suites").glob("*.yaml")):
        assert load_suite(path).cases, path


def test_thread_ranges_expand():
    suite = parse_suite({"cases": [{"id": "e", "kind": "diagnostic.empty", "threads": "1..all"}]},
                        "s.yaml", allowed=[0, 1, 2])
    assert [c.threads for c in suite.cases] == [1, 2, 3]
    with pytest.raises(UsageError, match=r"threads: expected a range like"):
        parse_suite({"cases": [{"kind": "diagnostic.empty", "threads": "1..lots"}]}, "s.yaml", allowed=[0, 1])
    with pytest.raises(UsageError, match=r"threads: 3 threads exceed"):
        parse_suite({"cases": [{"kind": "diagnostic.empty", "threads": "1..5"}]}, "s.yaml", allowed=[0, 1])


def test_a_run_with_a_failed_case_exits_1_and_one_that_only_skips_exits_0(write_suite):
    failing = write_suite("defaults: {budget: 0.05, min_samples: 3, warmup_max: 0.1}\n"
                          "cases: [{id: e, kind: diagnostic.empty}, {id: x, kind: diagnostic.crash, params: {how: exception}}]\n")
    out = harness_cli("run", failing, "--results", failing.parent / "r", "--no-progress")
    assert out.returncode == 1 and "1 ok, 1 failed" in out.stdout
    skipping = write_suite("cases: [{id: g, kind: probe.cuda_gemm}]\n", name="skip.yaml")
    out = harness_cli("run", skipping, "--results", skipping.parent / "r", "--no-progress")
    import torch
    if not torch.cuda.is_available():
        assert out.returncode == 0 and "0 ok, 0 failed, 1 skipped" in out.stdout


@pytest.mark.parametrize("args, expected", [
    (["run", "/", "--results", "/tmp/x"], "cannot read the suite file"),
    (["run", "suites/quick.yaml", "--budget-scale", "0"], "--budget-scale 0.0: must be a number > 0"),
    (["run", "suites/quick.yaml", "--results", "/proc/no-such-dir"], "cannot write the run there"),
    (["throttle", "--seconds", "nan"], "--seconds nan: must be a number > 0"),
    (["conv", "--ic", "8"], "the following arguments are required"),
])
def test_bad_command_lines_are_one_line_and_exit_2(args, expected):
    out = harness_cli(*args)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and expected in out.stderr.strip().splitlines()[-1]


def test_damaged_runs_are_clear_errors(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{not json")
    out = harness_cli("report", run)
    assert out.returncode == 2 and "not a readable manifest" in out.stderr
    (run / "manifest.json").write_text("{}")
    (run / "records.jsonl").write_text('{"case_id": "a"}\ngarbage\n{"case_id": "b"}\n')
    from harness.core.store import load_records
    with pytest.raises(UsageError, match="line 2 is not a JSON record"):
        load_records(run)
    (run / "records.jsonl").write_text('{"case_id": "a"}\n{"case_id": "b", "cut off by a ki')
    assert [r["case_id"] for r in load_records(run)] == ["a"]  # a run killed mid-write
