"""Bad input gets one clear line and exit code 2; the commands do what --help says."""
import contextlib
import io
import json
import re
import os

import pytest

from support import harness_cli
from harness.commands.cli import main as harness_main
from harness.core.errors import UsageError

def test_device_json_and_table():
    out = harness_cli("device", "--json")
    assert out.returncode == 0, out.stderr
    fp = json.loads(out.stdout)
    assert fp["cpu"]["logical_cpus"] == os.cpu_count()
    assert "scalar" in fp["cpu"]["usable_levels"]
    assert fp["nominal_peak"]["float32"]["flops_per_cycle_per_core"] > 0
    table = harness_cli("device")
    assert table.returncode == 0 and "Nominal peak float32" in table.stdout


def test_help_lists_every_command_and_python_m_harness_works():
    from harness.commands.cli import COMMANDS

    out = harness_cli("--help")  # support.harness_cli runs `python -m harness`
    assert out.returncode == 0
    for command in COMMANDS:
        assert command in out.stdout
    # each command's own help, in this process: one subprocess (above) shows `python -m harness` works
    for command in COMMANDS:
        with pytest.raises(SystemExit) as done, contextlib.redirect_stdout(io.StringIO()) as printed:
            harness_main([command, "--help"])
        assert done.value.code == 0 and "usage: harness" in printed.getvalue(), command


def test_run_prints_summary_and_store_path(write_suite):
    path = write_suite("defaults: {budget: 0.05, min_samples: 3, warmup_max: 0.1}\n"
                       "cases: [{id: e, kind: diagnostic.empty}]\n")
    out = harness_cli("run", path, "--results", path.parent / "r", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "e[t=1]" in out.stdout and re.search(r"(1 ok|0 ok, 1 suspect), 0 failed", out.stdout)
    assert "run stored in" in out.stdout


def test_a_run_with_a_failed_case_exits_1_and_one_that_only_skips_exits_0(write_suite):
    failing = write_suite("defaults: {budget: 0.05, min_samples: 3, warmup_max: 0.1}\n"
                          "cases: [{id: e, kind: diagnostic.empty}, {id: x, kind: diagnostic.crash, params: {how: exception}}]\n")
    out = harness_cli("run", failing, "--results", failing.parent / "r", "--no-progress")
    assert out.returncode == 1 and re.search(r"(1 ok|0 ok, 1 suspect), 1 failed", out.stdout)
    skipping = write_suite("cases: [{id: g, kind: probe.cuda_gemm}]\n", name="skip.yaml")
    out = harness_cli("run", skipping, "--results", skipping.parent / "r", "--no-progress")
    import torch
    if not torch.cuda.is_available():
        assert out.returncode == 0 and "0 ok, 0 failed, 1 skipped" in out.stdout


@pytest.mark.parametrize("args, expected", [
    (["run", "/", "--results", "/tmp/x"], "not a regular file"),
    (["run", "suites/quick.yaml", "--budget-scale", "0"], "argument --budget-scale: must be > 0"),
    (["run", "suites/quick.yaml", "--results", "/proc/no-such-dir"], "cannot write the run there"),
    (["throttle", "--seconds", "nan"], "argument --seconds: expected a finite number, got 'nan'"),
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
    a = '{"case_id": "a", "kind": "diagnostic.empty", "status": "skipped", "error": "x"}'
    (run / "records.jsonl").write_text(f'{a}\ngarbage\n{a}\n')
    from harness.core.store import load_records
    with pytest.raises(UsageError, match="line 2 is not a JSON record"):
        load_records(run)
    (run / "records.jsonl").write_text(f'{a}\n{{"case_id": "b", "cut off by a ki')
    assert [r.case_id for r in load_records(run)] == ["a"]  # a run killed mid-write


def test_a_suspect_case_is_re_measured_once_in_a_fresh_worker_and_shown_apart(write_suite):
    from harness.core.records import final
    from harness.core.store import find_runs, load_records

    path = write_suite("defaults: {budget: 0.05, min_samples: 6, warmup_max: 0.05}\n"
                       "cases: [{id: n, kind: diagnostic.noisy, params: {seconds: 0.002, spread: 3}},\n"
                       "        {id: e, kind: diagnostic.empty}]\n")
    out = harness_cli("run", path, "--results", path.parent / "r", "--no-progress")
    assert out.returncode == 0, out.stderr
    records = load_records(find_runs(path.parent / "r")[-1])
    attempts = [r for r in records if r.case_id == "n[t=1]"]
    assert [r.attempt for r in attempts] == [1, 2] and {r.status for r in attempts} == {"suspect"}
    assert attempts[0].worker_pid != attempts[1].worker_pid  # a fresh worker
    assert sorted(r.case_id for r in final(records)) == ["e[t=1]", "n[t=1]"]
    assert re.search(r"\d ok, [12] suspect, 0 failed", out.stdout) and "re-measured" in out.stdout
    # other reasons (load, clock) may come first on a busy machine; the noise is always there
    assert re.search(r"^suspect: n\[t=1\]: .*noisy: coefficient of variation", out.stdout, re.M), out.stdout
