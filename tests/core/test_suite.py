"""Suite files: one clear line and exit code 2 for every malformed one; cases expand as documented."""
import pytest

from support import ROOT, harness_cli
from harness.core.errors import UsageError
from harness.core.suite import load_suite, parse_suite

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


def test_suite_include_runs_the_included_cases_first(tmp_path):
    (tmp_path / "base.yaml").write_text("cases: [{id: base, kind: diagnostic.empty}]\n")
    (tmp_path / "top.yaml").write_text("include: [base.yaml]\ncases: [{id: top, kind: diagnostic.empty}]\n")
    assert [c.case_id for c in load_suite(tmp_path / "top.yaml").cases] == ["base[t=1]", "top[t=1]"]
    (tmp_path / "bad.yaml").write_text("include: [missing.yaml]\n")
    with pytest.raises(UsageError, match="include: no such suite file"):
        load_suite(tmp_path / "bad.yaml")


def test_shipped_suites_validate():
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        assert load_suite(path).cases, path


def test_thread_ranges_expand():
    suite = parse_suite({"cases": [{"id": "e", "kind": "diagnostic.empty", "threads": "1..all"}]},
                        "s.yaml", allowed=[0, 1, 2])
    assert [c.threads for c in suite.cases] == [1, 2, 3]
    with pytest.raises(UsageError, match=r"threads: expected a range like"):
        parse_suite({"cases": [{"kind": "diagnostic.empty", "threads": "1..lots"}]}, "s.yaml", allowed=[0, 1])
    with pytest.raises(UsageError, match=r"threads: range '1..5': 5 threads exceed"):
        parse_suite({"cases": [{"kind": "diagnostic.empty", "threads": "1..5"}]}, "s.yaml", allowed=[0, 1])




def test_a_missing_suite_named_like_a_shipped_one_gets_a_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"quick.yaml: no such suite file \(did you mean suites/quick.yaml\?\)"):
        load_suite("quick.yaml")


def test_a_case_that_cannot_fit_in_memory_is_refused_at_validation(monkeypatch):
    from harness.core import system

    monkeypatch.setattr(system, "available_memory", lambda: 8 * 10**9)
    with pytest.raises(UsageError, match=r"cases\[0\].params: the case needs about 756 GB .* more than the 8 GB available"):
        parse_suite({"cases": [{"kind": "conv", "params": {"backend": "torch", "ic": 256, "oc": 256, "h": 1024,
                                                           "kh": 3, "pad": 1, "n": 64}}]}, "s.yaml", allowed=[0, 1])
    with pytest.raises(UsageError, match=r"cases\[0\].params: the case needs about .* GB .* memory_limit_gb"):
        parse_suite({"cases": [{"kind": "numpy.matmul", "params": {"n": 20000}, "memory_limit_gb": 1}]},
                    "s.yaml", allowed=[0, 1])
    with pytest.raises(UsageError, match=r"the case needs about"):
        parse_suite({"cases": [{"kind": "model.torch", "params": {"model": "resnet18", "batch": 256, "image": 1024}}]},
                    "s.yaml", allowed=[0, 1])
    # what fits passes
    assert parse_suite({"cases": [{"kind": "numpy.matmul", "params": {"n": 1024}}]}, "s.yaml", allowed=[0, 1]).cases
