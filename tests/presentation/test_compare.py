"""compare_runs on synthetic runs with known shifts."""
import numpy as np
import pytest

from harness.commands.cli import main as harness_main
from harness.presentation import compare
from harness.core.errors import UsageError
from synthetic_runs import make_record, samples, write_run

RNG = np.random.default_rng(42)
BASE = (1e-3 * (1 + 0.01 * RNG.standard_normal(60))).tolist()
BASE_FINE = (1e-3 * (1 + 0.001 * RNG.standard_normal(400))).tolist()


def gemm(case_id, samples, threads=1, status="ok"):
    return make_record(case_id, "numpy.matmul", {"n": 256, "dtype": "float32"}, threads,
                       samples if status == "ok" else None, status=status)


def two_runs(tmp_path):
    a = [gemm("slow[t=1]", BASE), gemm("same[t=2]", BASE, threads=2),
         make_record("fast[t=1]", "probe.stream", {"op": "triad"}, 1, BASE),
         make_record("tiny[t=1]", "probe.sweep", {"kbytes": 16}, 1, BASE_FINE),
         make_record("old-name[a=1]", "conv.torch", {"ic": 3, "oc": 8}, 1, BASE),
         make_record("gone[t=1]", "probe.fma", {"isa": "avx2"}, 1, BASE),
         make_record("broken[t=1]", "model.torch", {"name": "m"}, 1, BASE)]
    b = [gemm("slow[t=1]", [x * 1.2 for x in BASE]),
         gemm("same[t=2]", list(BASE), threads=2),
         make_record("fast[t=1]", "probe.stream", {"op": "triad"}, 1, [x * 0.8 for x in BASE]),
         make_record("tiny[t=1]", "probe.sweep", {"kbytes": 16}, 1, [x * 1.005 for x in BASE_FINE]),
         make_record("new-name[a=1]", "conv.torch", {"ic": 3, "oc": 8}, 1, [x * 1.2 for x in BASE]),
         make_record("broken[t=1]", "model.torch", {"name": "m"}, 1, status="failed", error="boom"),
         make_record("extra[t=1]", "probe.fma", {"isa": "avx512"}, 1, BASE)]
    return write_run(tmp_path, "20260101-000000-a", a), write_run(tmp_path, "20260102-000000-b", b)


def test_compare_verdicts(tmp_path):
    a, b = two_runs(tmp_path)
    df = compare.compare_runs([a, b])
    later = df[df["run_index"] == 1].set_index("case")
    slow = later.loc["slow[t=1]"]
    assert slow["verdict"] == "slower" and slow["ratio"] == pytest.approx(1.2)
    assert 1 < slow["ratio_low"] < 1.2 < slow["ratio_high"] and slow["units"] == "samples"
    same = later.loc["same[t=2]"]
    assert same["verdict"] == "same" and same["ratio"] == pytest.approx(1.0) and same["min_effect"] == 0.05
    assert later.loc["fast[t=1]", "verdict"] == "faster"
    # a clear 0.5% shift within one process each: well inside the 5% minimum effect, so "same"
    assert later.loc["tiny[t=1]", "ratio_low"] > 1 and later.loc["tiny[t=1]", "verdict"] == "same"
    # ids differ, kind + params + threads agree: one line
    assert later.loc["old-name[a=1]", "verdict"] == "slower"
    assert "new-name[a=1]" not in set(df["case"])
    assert later.loc["broken[t=1]", "verdict"] == "failed"
    # cases in one run only are listed apart, not as rows
    assert df.attrs["unmatched"] == {"20260101-000000-a": ["gone[t=1]"], "20260102-000000-b": ["extra[t=1]"]}
    assert "gone[t=1]" not in set(df["case"]) and "extra[t=1]" not in set(df["case"])
    assert (df[df["run_index"] == 0]["verdict"] == "baseline").all()
    assert df.attrs["runs"] == ["20260101-000000-a", "20260102-000000-b"]
    means = compare.geometric_means(df)
    # slow x1.2, same 1.0, fast x0.8, tiny 1.005, renamed x1.2
    assert means["20260102-000000-b"] == (pytest.approx((1.2 * 1.0 * 0.8 * 1.005 * 1.2) ** (1 / 5), rel=1e-3), 5)


def pooled(case_id, medians):
    """A record pooled over len(medians) processes, each a tight cloud around its median."""
    samples = [m * (1 + 0.001 * k) for m in medians for k in (-1, 0, 1)]
    r = make_record(case_id, "numpy.matmul", {"n": 256, "dtype": "float32"}, 1, samples)
    r["timing"]["processes"] = len(medians)
    r["timing"]["per_process"] = [{"median": m} for m in medians]
    return r


def test_pooled_processes_put_run_to_run_variation_into_the_interval(tmp_path):
    # Within each process the samples agree to 0.1%; between processes the medians move 6%.
    # One process per run would call a 3% shift "slower" past a 1% effect; the per-process
    # medians show it is within what a rerun does.
    a = write_run(tmp_path, "a", [pooled("mm[t=1]", [1.00, 1.06, 0.97]), pooled("big[t=1]", [1.00, 1.01, 0.99])])
    b = write_run(tmp_path, "b", [pooled("mm[t=1]", [1.03, 0.98, 1.07]), pooled("big[t=1]", [1.30, 1.31, 1.29])])
    later = compare.compare_runs([a, b]).set_index("case")
    later = later[later["run_index"] == 1]
    assert (later["units"] == "process medians").all() and (later["min_effect"] == 0.01).all()
    assert later.loc["mm[t=1]", "verdict"] == "unclear"
    assert later.loc["mm[t=1]", "ratio_low"] < 1 < later.loc["mm[t=1]", "ratio_high"]
    assert later.loc["big[t=1]", "verdict"] == "slower"


def test_regression_gate_counts_only_what_is_slower_beyond_the_noise(tmp_path):
    a, b = two_runs(tmp_path)
    df = compare.compare_runs([a, b])
    assert set(compare.regressions(df, 10)["case"]) == {"slow[t=1]", "old-name[a=1]"}  # x1.2, interval above 1.1
    assert compare.regressions(df, 30).empty
    out = tmp_path / "cmp"
    assert harness_main(["compare", str(a), str(b), "--out", str(out), "--fail-slower", "10"]) == 1
    assert harness_main(["compare", str(a), str(b), "--out", str(out), "--fail-slower", "30"]) == 0


def test_runs_that_share_no_case_are_one_line(tmp_path, capsys):
    a = write_run(tmp_path, "a", [gemm("x[t=1]", BASE)])
    b = write_run(tmp_path, "b", [make_record("y[t=1]", "probe.fma", {"isa": "avx2"}, 1, BASE)])
    assert harness_main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shares no case" in err[0]


def test_pivot_marks_the_fastest_and_conditions_mark_what_differs(tmp_path):
    a = write_run(tmp_path, "a", [make_record(f"conv[backend={bk},t={t}]", "conv.torch", {"backend": bk, "ic": 8}, t,
                                              samples(m, seed=t)) for bk, t, m in
                                  (("torch", 1, 2e-3), ("torch", 2, 1.2e-3), ("onnxruntime", 1, 1e-3),
                                   ("onnxruntime", 2, 0.6e-3))])
    b = write_run(tmp_path, "b", [make_record("conv[backend=torch,t=1]", "conv.torch", {"backend": "torch", "ic": 8},
                                              1, samples(1.5e-3))], manifest_extra={"git_revision": "other"})
    df = compare.compare_runs([a, b])
    (family, headers, rows), = compare.pivot_tables(df)
    assert family == "conv" and rows[0][0] == "conv"
    assert headers == ["case", "A onnxruntime t=1", "A onnxruntime t=2", "A torch t=1", "A torch t=2", "B torch t=1"]
    fastest = [cell for cell in rows[0] if cell.endswith(" *")]
    assert len(fastest) == 1 and fastest[0].startswith("600")  # 0.6 ms, onnxruntime at 2 threads
    _, cond = compare.conditions_rows(df)
    git = next(r for r in cond if r[0] == "git revision")
    assert git[-1] == "≠" and "other" in git


def test_compare_command_writes_table_plot_and_files(tmp_path, capsys):
    a, b = two_runs(tmp_path)
    out = tmp_path / "cmp"
    assert harness_main(["compare", str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "slow[t=1]" in printed and "slower" in printed
    for name in ("comparison.html", "comparison.md", "comparison.csv", "comparison.png", "comparison.svg"):
        assert (out / name).stat().st_size > 0
    assert "<svg" in (out / "comparison.html").read_text()  # the plot inline
    # default folder: results/comparisons/<runs>
    assert harness_main(["compare", str(a), str(b)]) == 0
    assert (tmp_path / "comparisons" / f"{a.name}--{b.name}" / "comparison.html").exists()


def test_compare_bad_inputs(tmp_path, capsys):
    a, _ = two_runs(tmp_path)
    with pytest.raises(UsageError):
        compare.compare_runs([a])
    with pytest.raises(UsageError):
        compare.compare_runs([a, tmp_path / "missing"])
    assert harness_main(["compare", str(a)]) == 2
    assert harness_main(["compare", str(a), str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
