"""Reports, plots and exports from a small run written by hand (no worker is started)."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from synthetic_runs import PNG, make_record, synthetic_records, write_run
from harness.commands.cli import main as harness_main
from harness.core.errors import UsageError
from harness.presentation import export, plots, report
from harness.presentation.roofline_plot import Line, Panel, roofline_plot


@pytest.fixture
def run_path(tmp_path):
    return write_run(tmp_path / "results", "20260101-000000-synthetic", synthetic_records())


def test_report_is_one_self_contained_file_with_every_plot(run_path):
    html_path, md_path = report.write_report(run_path)
    assert html_path == run_path / "report.html" and md_path == run_path / "report.md"
    text = html_path.read_text()
    # every plot inline as SVG (the sweep, the throttle heat map, the roofline, measured vs
    # theoretical, thread scaling), none fetched; on the roofline every op is a point with a hover title
    labels = re.findall(r'<figure class="plot" role="img" aria-label="([^"]*)">\s*<svg', text)
    assert "<img" not in text and text.count("<svg") == len(labels) == 5, labels
    start = text.index('aria-label="roofline plot')
    svg = text[start:text.index("</svg>", start)]
    placed = [r for r in synthetic_records() if (r.get("roofline") or {}).get("efficiency") is not None]
    titles = re.findall(r"<title>([^<]*)</title>", svg)
    assert placed and len(titles) >= len(placed)
    for r in placed:
        assert any(t.startswith(r["case_id"]) and "of its roof" in t for t in titles), r["case_id"]
    # nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    assert "<link" not in text and "<script" not in text
    for expected in ("Test CPU 9000", "Conditions and warnings", "Ceilings this run was placed against",
                     "Where the time goes", "All cases", "Failed and skipped cases",
                     "RuntimeError: model file missing", "no CUDA device", "Throttling", "4100 MHz",
                     "nominal", "running under a hypervisor"):
        assert expected in text, expected
    # warnings by topic, in words, each with its fix: the two cases kept busy by other processes
    # are one "load" topic naming both
    assert "other processes used the CPUs the case was pinned to" in text
    assert re.search(r"<td[^>]*>2 cases: [^<]*</td>", text) and "stop other work on these CPUs" in text
    md = md_path.read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(linked) == 5
    for rel in linked:
        assert (run_path / rel).read_bytes().startswith(PNG)
    assert sorted(p.name for p in (run_path / "plots").glob("*.svg")) == [
        "measured-vs-theoretical.svg", "roofline.svg", "sweep.svg", "thread-scaling.svg", "throttle.svg"]
    assert "| gemm[t=1] |" in md


def test_report_places_ops_without_a_roofline_field_against_the_run_snapshot(run_path):
    _, _, blocks = report.build_report(run_path)
    top = next(b for b in blocks if b[0] == "table" and b[1] and "efficiency" in b[1] and "roofline time" in b[1])
    rows = {row[0]: dict(zip(top[1], row)) for row in top[2]}
    # gemm[t=2] carries its own placement (written by the first schema); gemm[t=1] is placed
    # here, by the one placement function, against the 1-thread ceilings of the run's snapshot.
    assert rows["gemm[t=2]"]["efficiency"] == "47%"
    assert rows["gemm[t=1]"]["bound"] == "compute" and rows["gemm[t=1]"]["ceilings"] == "measured"
    # probes measure ceilings: they are not placed on their own roof; the clock probes are not ops
    assert "stream[t=1]" not in rows and not any(case.startswith("throttle") for case in rows)


def test_rendering_a_run_twice_gives_the_same_report(run_path, tmp_path):
    first = [p.read_text() for p in report.write_report(run_path)]
    # Whatever happens to the device profile afterwards, the run's report is the run's.
    (run_path.parent / "profile.json").write_text(json.dumps({"schema_version": 1, "compute": [
        {"dtype": "float32", "isa": "avx512", "threads": 1, "flops_per_s": 9e12, "source": "later"}]}))
    second = [p.read_text() for p in report.write_report(run_path)]
    strip = lambda text: re.sub(r"Written by harness report at [0-9: -]+", "", text)
    assert [strip(t) for t in first] == [strip(t) for t in second]  # HTML (plots embedded) and Markdown
    assert "9e+12" not in second[1] and "9 TFLOP/s" not in second[1]


def test_report_without_a_snapshot_places_against_the_nominal_peak_only(tmp_path):
    path = write_run(tmp_path, "r1", synthetic_records()[:3], profile=None)
    # a device profile beside the run is not the run's: the report never reads it
    from synthetic_runs import PROFILE

    (path.parent / "profile.json").write_text(json.dumps(PROFILE))
    html_path, _ = report.write_report(path)
    text = html_path.read_text()
    assert "No compute ceiling was measured" in text and "datasheet" in text
    assert "<img" not in text and 'aria-label="roofline plot' in text  # placed on the nominal peak, drawn


def test_report_bad_inputs_are_usage_errors(tmp_path, capsys):
    with pytest.raises(UsageError):
        report.write_report(tmp_path / "no-such-run")
    empty = write_run(tmp_path, "empty", [])
    with pytest.raises(UsageError, match="no records"):
        report.write_report(empty)
    assert harness_main(["report", str(tmp_path / "no-such-run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert harness_main(["report", "latest", "--results", str(tmp_path / "nothing-here")]) == 2


def test_report_latest_is_the_newest_run(tmp_path, capsys):
    root = tmp_path / "results"
    write_run(root, "20260101-000000-a", synthetic_records()[:2])
    newest = write_run(root, "20260102-000000-b", synthetic_records()[:2])
    assert harness_main(["report", "latest", "--results", str(root)]) == 0
    assert (newest / "report.html").exists()
    assert str(newest / "report.html") in capsys.readouterr().out


def test_plots_return_nothing_for_empty_input(tmp_path):
    import pandas as pd

    empty = pd.DataFrame()
    assert roofline_plot([], tmp_path / "a") == []
    assert plots.measured_vs_theoretical_plot(empty, tmp_path / "b") == []
    assert plots.throttle_heatmap(empty, tmp_path / "c") == []
    assert plots.thread_scaling_plot(empty, tmp_path / "d") == []
    assert plots.thread_scaling_plot([], tmp_path / "d") == []
    assert plots.comparison_plot(empty, tmp_path / "e") == []
    assert list(tmp_path.iterdir()) == []


def test_roofline_plot_writes_one_panel_per_thread_count_and_fits_enough_points(tmp_path):
    rng = np.random.default_rng(0)
    intensity = np.geomspace(0.05, 500, 24)
    attained = np.minimum(intensity * 28e9, 510e9) * (1 - 0.1 * rng.random(24))
    points = [{"case_id": f"p{i}", "kind": "probe.intensity" if i < 12 else "conv.torch", "intensity": x,
               "flops_per_s": y, "bound": "memory" if x < 18 else "compute", "peak_flops_per_s": 510e9,
               "bandwidth_bytes_per_s": 28e9, "dtype": "float32", "source": "measured", "threads": 1 + (i > 2),
               "group": "probe" if i < 12 else "torch", "name": f"op {i}", "title": f"p{i}: hover text",
               "share": 1 / 24}
              for i, (x, y) in enumerate(zip(intensity, attained))]
    lines = [Line("bandwidth", "DRAM 28 GB/s", 28e9), Line("bandwidth", "L1 900 GB/s", 900e9),
             Line("compute", "float32 avx512 510 GFLOP/s", 510e9, "float32")]
    panels = [Panel(1, lines, points[:3]), Panel(2, lines, points)]
    written = roofline_plot(panels, tmp_path / "roof.png")
    assert [p.name for p in written] == ["roof.png", "roof.svg"]
    assert written[0].read_bytes().startswith(PNG)
    svg = written[1].read_text()
    assert "<svg" in svg and "fitted roof" in svg and "ridge" in svg and "DRAM" in svg
    assert "1 thread" in svg and "2 threads" in svg
    assert svg.count("<title>p") == 27 and "<title>p5: hover text</title>" in svg  # every point, both panels
    assert "op 0 (4.2%)" in svg  # the largest shares are named beside their points


# --------------------------------------------------------------------------- export


def test_export_csv_and_parquet_round_trip(run_path, tmp_path):
    import pandas as pd

    records = [json.loads(line) for line in (run_path / "records.jsonl").read_text().splitlines()]
    csv_path = export.export_run(run_path, "csv", tmp_path / "r.csv")
    df = pd.read_csv(csv_path)
    assert len(df) == len(records)
    first = df.iloc[0]
    assert first["case_id"] == "gemm[t=1]"
    assert json.loads(first["timing.samples"]) == pytest.approx(records[0]["timing"]["samples"])
    assert first["timing.median"] == pytest.approx(records[0]["timing"]["median"])

    parquet_path = export.export_run(run_path, "parquet")
    assert parquet_path == run_path / "records.parquet"
    table = pd.read_parquet(parquet_path)
    assert len(table) == len(records)
    assert list(table.iloc[0]["timing.samples"]) == pytest.approx(records[0]["timing"]["samples"])


def test_export_pytest_benchmark_json_loads_with_pytest_benchmark(run_path, tmp_path):
    from pytest_benchmark.logger import Logger
    from pytest_benchmark.storage.file import FileStorage

    out = export.export_run(run_path, "pytest-benchmark", tmp_path / "bench" / "0001_synthetic.json")
    data = json.loads(out.read_text())
    for key in ("machine_info", "commit_info", "benchmarks", "datetime", "version"):
        assert key in data
    storage = FileStorage(tmp_path / "bench", logger=Logger(Logger.QUIET))
    loaded = list(storage.load_benchmarks(str(out)))
    ok = [r for r in synthetic_records() if r["status"] == "ok"]
    assert len(loaded) == len(ok)
    gemm = next(b for b in loaded if b["name"] == "gemm[t=1]")
    assert gemm["median"] == pytest.approx(ok[0]["timing"]["median"])
    assert gemm["rounds"] == len(ok[0]["timing"]["samples"]) and gemm["iterations"] == 10
    assert gemm["data"] == pytest.approx(ok[0]["timing"]["samples"])
    assert gemm["group"] == "numpy.matmul" and gemm["params"]["threads"] == 1

    # and pytest-benchmark's own command line reads it and writes its CSV table
    result = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(out),
                             "--columns=min,median,rounds", f"--csv={tmp_path / 'pb'}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "gemm[t=1]" in result.stdout
    assert "gemm[t=1]" in (tmp_path / "pb.csv").read_text()


def test_export_bad_inputs_are_usage_errors(run_path, tmp_path):
    with pytest.raises(UsageError, match="--format"):
        export.export_run(run_path, "xlsx")
    with pytest.raises(UsageError):
        export.export_run(tmp_path / "missing", "csv")
    nothing_ok = write_run(tmp_path, "failed-only", [make_record("x", "numpy.matmul", {}, 1, status="failed")])
    with pytest.raises(UsageError, match="no ok record"):
        export.export_run(nothing_ok, "pytest-benchmark")
    assert harness_main(["export", str(tmp_path / "missing"), "--format", "csv"]) == 2
