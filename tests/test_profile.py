"""The device profile: built from probe records, merged across runs, used to place ops."""
import json

import pytest

from conftest import harness_cli
from harness.analysis.placement import Placer
from harness.analysis.profile import format_profile, load_profile, profile_from_records, update_profile
from harness.core.store import find_runs, load_records

FP = {"theoretical_peak": {"float32": {"flops_per_s": 2e11, "isa": "avx512", "cores": 2, "ghz": 2.5,
                                       "ghz_source": "test", "flops_per_cycle_per_core": 40, "table": "t"},
                           "float64": {"flops_per_s": 1e11, "isa": "avx512", "cores": 2, "ghz": 2.5,
                                       "ghz_source": "test", "flops_per_cycle_per_core": 20, "table": "t"}},
      "cpu": {"model": "test cpu", "uarch": None, "physical_cores": 2, "logical_cpus": 2, "caches": []}}


def rec(kind, params, threads=1, **metrics):
    return {"kind": kind, "status": "ok", "params": params, "threads": threads, "metrics": metrics,
            "info": {}, "timing": {"median": 1.0}}


RECORDS = [
    rec("probe.fma", {"dtype": "float32", "isa": "avx2"}, 2, flops_per_s=1.5e11),
    rec("numpy.matmul", {"dtype": "float32", "n": 1024}, 2, flops_per_s=1.2e11),
    rec("probe.stream", {"impl": "numba", "op": "triad"}, 2, bytes_per_s=4e10),
    rec("probe.frequency", {"adds": 100}, 1, ghz=3.5),
    {"kind": "probe.fma", "status": "failed", "params": {"dtype": "float32", "isa": "avx512"}, "threads": 2},
]


def test_profile_from_records_takes_ok_probe_records_only():
    p = profile_from_records(RECORDS, FP, "run1")
    assert [(e["isa"], e["flops_per_s"]) for e in p["compute"]] == [("avx2", 1.5e11), ("blas", 1.2e11)]
    assert p["bandwidth"] == [{"level": "DRAM", "threads": 2, "bytes_per_s": 4e10,
                               "source": "probe.stream triad (numba, STREAM bytes)", "run_id": "run1"}]
    assert p["frequency_ghz"] == 3.5


def test_update_merges_and_replaces_only_the_same_measurement(tmp_path):
    path = tmp_path / "profile.json"
    update_profile(path, RECORDS, FP, "run1")
    newer = [rec("probe.fma", {"dtype": "float32", "isa": "avx2"}, 2, flops_per_s=1.6e11)]
    profile = update_profile(path, newer, FP, "run2")
    compute = {(e["isa"], e["threads"]): e["flops_per_s"] for e in profile["compute"]}
    assert compute == {("avx2", 2): 1.6e11, ("blas", 2): 1.2e11}
    assert profile["runs"] == ["run1", "run2"]
    assert profile["theoretical"]["float32"]["flops_per_s_at_measured_ghz"] == 2 * 3.5e9 * 40
    assert load_profile(path) == profile
    assert update_profile(path, [rec("conv.torch", {})], FP, "run3") is None  # nothing to add
    assert "avx2" in format_profile(profile)


def test_placement_against_measured_ceilings_and_the_datasheet_fallback(tmp_path):
    profile = update_profile(tmp_path / "p.json", RECORDS, FP, "run1")
    record = {"status": "ok", "params": {"dtype": "float32"}, "threads": 2,
              "cost": {"flops": 1.5e9, "bytes": 1e6}, "timing": {"median": 0.02}}
    placed = Placer(profile, FP, "p.json")(dict(record))["roofline"]
    assert placed["source"] == "measured"
    assert placed["peak_flops_per_s"] == 1.5e11 and placed["bandwidth_bytes_per_s"] == 4e10
    assert placed["bound"] == "compute"  # intensity 1500 FLOP/B, ridge 3.75
    assert placed["theoretical_time_s"] == pytest.approx(0.01)
    assert placed["efficiency"] == pytest.approx(0.5)
    assert placed["datasheet"]["theoretical_time_s"] == pytest.approx(1.5e9 / 2e11)
    memory_bound = dict(record, cost={"flops": 1e6, "bytes": 4e8})
    assert Placer(profile, FP)(memory_bound)["roofline"]["bound"] == "memory"
    # No profile: the datasheet peak only, and it says so.
    fallback = Placer(None, FP)(dict(record))["roofline"]
    assert fallback["source"] == "theoretical" and fallback["bandwidth_bytes_per_s"] is None
    assert fallback["bound"] == "compute (bandwidth unknown)"
    # bf16 has no ceiling of its own here: placed against fp32, and the record says which.
    bf16 = Placer(profile, FP)(dict(record, params={"dtype": "bfloat16"}))["roofline"]
    assert bf16["ceiling_dtype"] == "float32"


def test_quick_probe_writes_a_profile_that_later_runs_use(tmp_path, write_suite):
    results = tmp_path / "results"
    out = harness_cli("probe", "--quick", "--budget-scale", "0.2", "--results", results, "--no-progress",
                      timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Compute ceilings" in out.stdout and "device profile:" in out.stdout
    profile = json.loads(next(results.glob("*/profile.json")).read_text())
    assert {e["isa"] for e in profile["compute"]} >= {"blas"}
    assert any(e["level"] == "DRAM" for e in profile["bandwidth"])
    assert profile["frequency_ghz"] > 0
    suite = write_suite("defaults: {budget: 0.05, min_samples: 3, warmup_max: 0.1}\n"
                        "cases: [{id: mm, kind: numpy.matmul, params: {n: 128}}]\n")
    assert harness_cli("run", suite, "--results", results, "--no-progress").returncode == 0
    latest = find_runs(results)[-1]
    (record,) = load_records(latest)
    assert record["roofline"]["source"] == "measured"
    assert record["roofline"]["efficiency"] > 0


def test_placement_uses_the_records_thread_count_and_says_when_it_cannot(tmp_path):
    records = [rec("probe.fma", {"dtype": "float32", "isa": "avx2"}, 1, flops_per_s=1e11),
               rec("probe.fma", {"dtype": "float32", "isa": "avx2"}, 2, flops_per_s=2e11),
               rec("probe.stream", {"impl": "numba", "op": "triad"}, 2, bytes_per_s=4e10)]
    profile = update_profile(tmp_path / "p.json", records, FP, "run1")
    one_thread = {"status": "ok", "params": {"dtype": "float32"}, "threads": 1,
                  "cost": {"flops": 1e9, "bytes": 1e6}, "timing": {"median": 0.02}}
    placed = Placer(profile, FP)(dict(one_thread))["roofline"]
    assert placed["peak_flops_per_s"] == 1e11  # the 1-thread compute ceiling, not the 2-thread one
    assert placed["ceiling_threads"] == {"compute": 1, "bandwidth": 2}
    assert len(placed["notes"]) == 1 and "no DRAM bandwidth ceiling was measured at 1 threads" in placed["notes"][0]
    two = Placer(profile, FP)(dict(one_thread, threads=2))["roofline"]
    assert two["peak_flops_per_s"] == 2e11 and two["notes"] == []


def test_a_damaged_profile_is_moved_aside_not_overwritten(tmp_path, capsys):
    path = tmp_path / "profile.json"
    path.write_text("{half a profile")
    assert load_profile(path) is None
    aside = list(tmp_path.glob("profile.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{half a profile"
    assert "was not a readable device profile" in capsys.readouterr().err


def test_bf16_ops_are_placed_against_the_bf16_ceiling_when_one_was_measured(tmp_path):
    records = RECORDS + [rec("probe.bf16_dot", {"iterations": 10}, 2, flops_per_s=3e11)]
    profile = update_profile(tmp_path / "p.json", records, FP, "run1")
    assert {"dtype": "bfloat16", "isa": "avx512_bf16", "threads": 2, "flops_per_s": 3e11,
            "source": "probe.bf16_dot", "run_id": "run1"} in profile["compute"]
    op = {"status": "ok", "params": {"dtype": "bfloat16"}, "threads": 2,
          "cost": {"flops": 1.5e9, "bytes": 1e6}, "timing": {"median": 0.01}}
    placed = Placer(profile, FP)(op)["roofline"]
    assert placed["ceiling_dtype"] == "bfloat16" and placed["peak_flops_per_s"] == 3e11
