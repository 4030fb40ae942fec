"""compare_runs on synthetic runs with known shifts."""
import numpy as np
import pytest

from harness.commands.cli import main as harness_main
from harness.presentation import compare
from harness.core.errors import UsageError
from synthetic_runs import make_record, write_run

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
    assert later.loc["slow[t=1]", "verdict"] == "slower"
    assert later.loc["slow[t=1]", "ratio"] == pytest.approx(1.2)
    assert later.loc["slow[t=1]", "p_value"] < 1e-6
    assert later.loc["same[t=2]", "verdict"] == "no significant difference"
    assert later.loc["same[t=2]", "ratio"] == pytest.approx(1.0)
    assert later.loc["fast[t=1]", "verdict"] == "faster"
    # significant, but a 0.5% change is below the 1% threshold
    assert later.loc["tiny[t=1]", "p_value"] < 0.05
    assert later.loc["tiny[t=1]", "verdict"] == "same (< 1%)"
    # ids differ, kind + params + threads agree: one line
    assert later.loc["old-name[a=1]", "verdict"] == "slower"
    assert "new-name[a=1]" not in set(df["case"])
    assert later.loc["gone[t=1]", "verdict"] == "missing"
    assert later.loc["broken[t=1]", "verdict"] == "failed"
    assert df[df["case"] == "extra[t=1]"].set_index("run_index").loc[0, "verdict"] == "missing"
    assert (df[df["run_index"] == 0]["verdict"].isin(["baseline", "missing"])).all()
    assert df.attrs["runs"] == ["20260101-000000-a", "20260102-000000-b"]


def test_verdict_thresholds():
    assert compare.verdict(BASE, BASE)[2] == "no significant difference"
    assert compare.verdict(BASE, [x * 1.2 for x in BASE])[2] == "slower"
    assert compare.verdict(BASE, [x * 1.2 for x in BASE], min_effect=0.5)[2] == "same (< 50%)"
    assert compare.verdict([], BASE)[2] == "no samples"


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
