"""Reports, plots and exports from a small run written by hand (no worker is started)."""
import base64
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from harness.presentation import export
from harness.presentation import plots
from harness.presentation import report
from harness.core.errors import UsageError
from harness.analysis.roofline import Roofline

PNG = b"\x89PNG\r\n\x1a\n"

FINGERPRINT = {
    "cpu": {"model": "Test CPU 9000", "vendor": "AuthenticAMD", "family": 26, "model_number": 2, "uarch": "zen5",
            "machine": "x86_64", "physical_cores": 2, "logical_cpus": 2, "available_cpus": [0, 1],
            "isa_levels": {"avx2": ["avx2", "fma"], "avx512": ["avx512f"]},
            "usable_levels": ["scalar", "sse", "avx2", "avx512"],
            "caches": [{"level": 1, "type": "Data", "size_bytes": 49152, "shared_cpu_list": "0"},
                       {"level": 3, "type": "Unified", "size_bytes": 33554432, "shared_cpu_list": "0-1"}]},
    "memory": {"total_bytes": 25e9, "available_bytes": 24e9, "cgroup_limit_bytes": None},
    "os": {"system": "Linux", "release": "6.1", "distribution": "Debian 12", "hostname": "vm"},
    "vm": {"hypervisor": True, "note": "the guest may not see the real clock"},
    "versions": {"python": "3.11.7", "numpy": "2.0"},
    "blas": [], "gpus": [],
    "theoretical_peak": {
        "float32": {"isa": "avx512", "flops_per_cycle_per_core": 64.0, "cores": 2, "ghz": 2.6,
                    "ghz_source": "test", "flops_per_s": 332.8e9, "table": "zen5"},
        "float64": {"isa": "avx512", "flops_per_cycle_per_core": 32.0, "cores": 2, "ghz": 2.6,
                    "ghz_source": "test", "flops_per_s": 166.4e9, "table": "zen5"}},
    "machine_state": {"governors": None, "turbo": None, "isolated_cpus": [], "cpus_with_smt_siblings": [],
                      "transparent_hugepages": "madvise", "hypervisor": True,
                      "warnings": ["running under a hypervisor"]},
}

PROFILE = {
    "schema_version": 1,
    "device": {"model": "Test CPU 9000"},
    "theoretical": {"float32": {"flops_per_s": 332.8e9, "isa": "avx512", "source": "2 cores x 2.6 GHz x 64"},
                    "float64": {"flops_per_s": 166.4e9, "isa": "avx512", "source": "2 cores x 2.6 GHz x 32"}},
    "compute": [{"dtype": "float32", "isa": "avx512", "threads": 1, "flops_per_s": 260e9, "source": "probe.fma"},
                {"dtype": "float32", "isa": "avx512", "threads": 2, "flops_per_s": 510e9, "source": "probe.fma"},
                {"dtype": "float64", "isa": "avx512", "threads": 2, "flops_per_s": 255e9, "source": "probe.fma"},
                {"dtype": "float32", "isa": "blas", "threads": 2, "flops_per_s": 240e9, "source": "numpy.matmul"}],
    "bandwidth": [{"level": "L1", "threads": 2, "bytes_per_s": 900e9, "source": "probe.sweep"},
                  {"level": "L2", "threads": 2, "bytes_per_s": 380e9, "source": "probe.sweep"},
                  {"level": "DRAM", "threads": 1, "bytes_per_s": 25e9, "source": "probe.stream"},
                  {"level": "DRAM", "threads": 2, "bytes_per_s": 28e9, "source": "probe.stream"}],
    "frequency_ghz": 4.2,
    "runs": ["test/probe"],
}


def make_record(case_id, kind, params, threads, samples=None, flops=None, nbytes=None, status="ok",
                metrics=None, warnings=(), error=None, roofline=None):
    record = {"schema_version": 1, "run_id": "test/run", "case_id": case_id, "kind": kind, "params": params,
              "threads": threads, "status": status, "warnings": list(warnings)}
    if status != "ok":
        record["error"] = error or "no reason"
        return record
    s = np.asarray(samples, dtype=float)
    median = float(np.median(s))
    record["timing"] = {
        "unit": "s per call", "clock": "perf_counter", "n": int(s.size), "median": median,
        "min": float(s.min()), "max": float(s.max()), "mean": float(s.mean()), "stdev": float(s.std(ddof=1)),
        "cv": float(s.std(ddof=1) / s.mean()), "p10": float(np.quantile(s, 0.1)),
        "p90": float(np.quantile(s, 0.9)), "ci95_low": float(np.quantile(s, 0.4)),
        "ci95_high": float(np.quantile(s, 0.6)), "outliers": [], "number": 10, "warmup_iterations": 50,
        "policy": {"min_samples": 10, "budget_s": 0.5, "min_sample_s": 0.002}, "samples": s.tolist()}
    record["cost"] = {"flops": flops, "bytes": nbytes,
                      "intensity": flops / nbytes if flops and nbytes else None}
    m = dict(metrics or {})
    if flops:
        m["flops_per_s"] = flops / median
    if nbytes:
        m["bytes_per_s"] = nbytes / median
    record["metrics"] = m
    record["faults"] = {"minor_per_call": 0.0, "steal_fraction": 0.001}
    record["conditions"] = {"load_before": {"others_percent": 3.0}, "load_after": {"others_percent": 5.0}}
    if roofline is not None:
        record["roofline"] = roofline
    return record


def samples(median, n=30, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return (median * (1 + noise * rng.standard_normal(n))).tolist()


def write_run(root, name, records, manifest_extra=None, profile="run"):
    """A run folder at root/<device>/<name>; profile: 'run' (a copy in the run folder),
    'device' (only in the device folder) or None."""
    path = root / "test-cpu-2cpu" / name
    path.mkdir(parents=True)
    manifest = {"schema_version": 1, "run_id": f"test-cpu-2cpu/{name}", "status": "complete",
                "suite": {"name": "synthetic", "description": "hand-written records"},
                "command_line": ["harness", "run", "synthetic.yaml"], "git_revision": "abc123-dirty",
                "started_at": 1.7e9, "finished_at": 1.7e9 + 12, "fingerprint": FINGERPRINT,
                "warnings": ["running under a hypervisor", "no isolated CPUs"], **(manifest_extra or {})}
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if profile == "run":
        (path / "profile.json").write_text(json.dumps(PROFILE))
    elif profile == "device":
        (path.parent / "profile.json").write_text(json.dumps(PROFILE))
    return path


def synthetic_records():
    n = 1024
    gemm = dict(flops=2.0 * n**3, nbytes=3.0 * n * n * 4)
    records = [
        make_record("gemm[t=1]", "numpy.matmul", {"n": n, "dtype": "float32"}, 1, samples(17e-3), **gemm,
                    warnings=["noisy: coefficient of variation 12.0%"]),
        make_record("gemm[t=2]", "numpy.matmul", {"n": n, "dtype": "float32"}, 2, samples(9e-3, seed=1), **gemm,
                    roofline={"source": "measured", "dtype": "float32", "level": "DRAM",
                              "peak_flops_per_s": 510e9, "bandwidth_bytes_per_s": 28e9, "intensity": 170.7,
                              "ridge_intensity": 18.2, "bound": "compute", "theoretical_time_s": 4.2e-3,
                              "efficiency": 0.47, "attained_flops_per_s": 238e9, "attained_bytes_per_s": 1.4e9,
                              "datasheet": {"peak_flops_per_s": 332.8e9, "theoretical_time_s": 6.45e-3,
                                            "efficiency": 0.72}}),
        make_record("stream[t=1]", "probe.stream", {"impl": "numba", "op": "triad"}, 1, samples(14e-3, seed=2),
                    flops=2.0 * 2**24, nbytes=3.0 * 2**24 * 8,
                    warnings=["other processes kept the pinned CPUs 50% busy before the case (per CPU: {'0': 50.0})"]),
        make_record("stream[t=2]", "probe.stream", {"impl": "numba", "op": "triad"}, 2, samples(12e-3, seed=3),
                    flops=2.0 * 2**24, nbytes=3.0 * 2**24 * 8,
                    warnings=["other processes kept the pinned CPUs 75% busy before the case (per CPU: {'0': 75.0})"]),
        make_record("conv[ic=64,oc=64,h=56,t=1]", "conv.torch", {"ic": 64, "oc": 64, "h": 56, "kh": 3, "stride": 1,
                                                                 "groups": 1, "dtype": "float32"}, 1,
                    samples(4e-3, seed=4), flops=2 * 64 * 64 * 56 * 56 * 9.0, nbytes=(2 * 64 * 56 * 56 + 64 * 64 * 9) * 4.0),
    ]
    for kb, bw in ((16, 480e9), (256, 190e9), (8192, 110e9)):
        nbytes = kb * 1024 * 100.0
        records.append(make_record(f"sweep[kbytes={kb},t=1]", "probe.sweep", {"op": "read", "kbytes": kb}, 1,
                                   samples(nbytes / bw, seed=kb), flops=nbytes / 8, nbytes=nbytes))
    for isa, mhz in (("none", 4100), ("avx2", 4050), ("avx512", 3900)):
        for cores in (1, 2):
            ghz = (mhz - 80 * (cores - 1)) / 1000
            records.append(make_record(f"throttle-{isa}[t={cores}]", "probe.throttle",
                                       {"isa": isa, "dtype": "float32", "seconds": 0.3}, cores,
                                       samples(0.3, n=5, seed=cores), metrics={"ghz": ghz}))
    records.append(make_record("model[name=resnet50,t=1]", "model.onnxruntime", {"name": "resnet50"}, 1,
                               status="failed", error="RuntimeError: model file missing\nsecond line"))
    records.append(make_record("cuda-fma[t=1]", "probe.cuda_fma", {"dtype": "float32"}, 1,
                               status="skipped", error="no CUDA device"))
    return records


@pytest.fixture
def run_path(tmp_path):
    return write_run(tmp_path / "results", "20260101-000000-synthetic", synthetic_records())


def images(html_text):
    return re.findall(r'<img[^>]*src="data:image/png;base64,([^"]*)"', html_text)


def test_report_is_one_self_contained_file_with_every_plot(run_path):
    html_path, md_path = report.write_report(run_path)
    assert html_path == run_path / "report.html" and md_path == run_path / "report.md"
    text = html_path.read_text()
    found = images(text)
    assert len(found) == text.count("<img")
    # roofline, measured vs theoretical, throttle heat map, thread scaling
    assert len(found) == 4
    for data in found:
        png = base64.b64decode(data, validate=True)
        assert png.startswith(PNG) and len(png) > 5000
    # nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    assert "<link" not in text and "<script" not in text
    for expected in ("Test CPU 9000", "Conditions and warnings", "Ceilings: measured against datasheet",
                     "Where the time goes", "All cases", "Failed and skipped cases",
                     "RuntimeError: model file missing", "no CUDA device", "Throttling", "4100 MHz",
                     "datasheet", "running under a hypervisor"):
        assert expected in text, expected
    # the two 'other processes kept the CPUs busy' warnings are one pattern, counted twice
    assert "other processes kept the pinned CPUs #% busy before the case" in text
    md = md_path.read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(linked) == 4
    for rel in linked:
        assert (run_path / rel).read_bytes().startswith(PNG)
    assert sorted(p.name for p in (run_path / "plots").glob("*.svg")) == [
        "measured-vs-theoretical.svg", "roofline.svg", "thread-scaling.svg", "throttle.svg"]
    assert "| gemm[t=1] |" in md


def test_report_places_ops_without_a_roofline_field_against_the_profile(run_path):
    _, _, blocks = report.build_report(run_path)
    top = next(b for b in blocks if b[0] == "table" and b[1] and "efficiency" in b[1] and "roofline time" in b[1])
    rows = {row[0]: dict(zip(top[1], row)) for row in top[2]}
    # gemm[t=2] carries its own placement; gemm[t=1] is placed here against the 1-thread ceilings
    assert rows["gemm[t=2]"]["efficiency"] == "47%"
    assert rows["gemm[t=1]"]["bound"] == "compute" and rows["gemm[t=1]"]["ceilings"] == "measured"
    # a probe measures a ceiling: it is not placed on its own roof
    assert rows["stream[t=1]"]["bound"] == ""
    # the clock probes are not ops
    assert not any(case.startswith("throttle") for case in rows)


def test_report_without_a_profile_says_so_and_uses_the_datasheet(tmp_path):
    path = write_run(tmp_path, "r1", synthetic_records()[:3], profile=None)
    html_path, _ = report.write_report(path)
    text = html_path.read_text()
    assert "No device profile was found" in text
    for data in images(text):
        assert base64.b64decode(data).startswith(PNG)


def test_report_finds_the_profile_in_the_device_folder(tmp_path):
    path = write_run(tmp_path, "r1", synthetic_records()[:3], profile="device")
    _, md_path = report.write_report(path)
    assert str(path.parent / "profile.json") in md_path.read_text()


def test_report_bad_inputs_are_usage_errors(tmp_path, capsys):
    with pytest.raises(UsageError):
        report.write_report(tmp_path / "no-such-run")
    empty = write_run(tmp_path, "empty", [])
    with pytest.raises(UsageError, match="no records"):
        report.write_report(empty)
    assert report.main([str(tmp_path / "no-such-run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert report.main(["latest", "--results", str(tmp_path / "nothing-here")]) == 2


def test_report_latest_is_the_newest_run(tmp_path, capsys):
    root = tmp_path / "results"
    write_run(root, "20260101-000000-a", synthetic_records()[:2])
    newest = write_run(root, "20260102-000000-b", synthetic_records()[:2])
    assert report.main(["latest", "--results", str(root)]) == 0
    assert (newest / "report.html").exists()
    assert str(newest / "report.html") in capsys.readouterr().out


def test_plots_return_nothing_for_empty_input(tmp_path):
    import pandas as pd

    empty = pd.DataFrame()
    assert plots.roofline_plot(Roofline([]), empty, tmp_path / "a") == []
    assert plots.roofline_plot(None, None, tmp_path / "a") == []
    assert plots.measured_vs_theoretical_plot(empty, tmp_path / "b") == []
    assert plots.throttle_heatmap(empty, tmp_path / "c") == []
    assert plots.thread_scaling_plot(empty, tmp_path / "d") == []
    assert plots.thread_scaling_plot([], tmp_path / "d") == []
    assert plots.comparison_plot(empty, tmp_path / "e") == []
    assert list(tmp_path.iterdir()) == []


def test_roofline_plot_writes_png_and_svg_and_fits_enough_points(tmp_path):
    roof = Roofline.from_profile(PROFILE)
    rng = np.random.default_rng(0)
    intensity = np.geomspace(0.05, 500, 24)
    attained = np.minimum(intensity * 28e9, 510e9) * (1 - 0.1 * rng.random(24))
    points = {"intensity": intensity, "flops_per_s": attained,
              "kind": ["probe.intensity"] * 12 + ["conv.torch"] * 12,
              "bound": ["memory" if i < 18 else "compute" for i in intensity]}
    import pandas as pd

    written = plots.roofline_plot(roof, pd.DataFrame(points), tmp_path / "roof.png")
    assert [p.name for p in written] == ["roof.png", "roof.svg"]
    assert written[0].read_bytes().startswith(PNG)
    svg = written[1].read_text()
    assert "<svg" in svg and "fitted roof" in svg and "ridge" in svg and "DRAM" in svg


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
    assert export.main([str(tmp_path / "missing"), "--format", "csv"]) == 2
