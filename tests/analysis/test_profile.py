"""The device profile: best-of measurements with health checks, a history per ceiling, the
rule that picks the ceiling in force, and the probe end to end."""
import json
import re

import pytest

from support import harness_cli, one_line_error, record
from harness.analysis import profile as profiles
from harness.analysis import snapshot as snapshots
from harness.analysis.profile import DeviceProfile, HealthContext, add_run, load_profile, measurements_from
from harness.core.records import MEASURED, final
from harness.core.store import find_runs, load_records

GFLOP = 1e9
# A core of 32 fp32 FLOP/cycle at avx2 (64 at avx512) on 2 physical cores, clock 3 GHz.
CTX = HealthContext(lambda level, dtype: {"avx2": 32, "avx512": 64, "sse": 16, "scalar": 4}.get(level, 32)
                    / (2 if dtype == "float64" else 1), physical_cores=2)


def fma(threads, gflops, samples=(1.0, 1.0, 1.0), dtype="float32", isa="avx2", **kw):
    """A probe.fma record of `gflops` at its median sample."""
    return record("probe.fma", {"dtype": dtype, "isa": isa}, threads, flops=gflops * GFLOP * sorted(samples)[1],
                  samples=samples, info={"isa": isa}, clock_ghz=3.0, **kw)


def stream(threads, gbs, **kw):
    return record("probe.stream", {"impl": "numba", "op": "triad"}, threads, flops=0, nbytes=gbs * 1e9,
                  clock_ghz=3.0, **kw)


def sweep(threads, kbytes, gbs, capacity):
    return record("probe.sweep", {"op": "read", "kbytes": kbytes}, threads, flops=0, nbytes=gbs * 1e9,
                  info={"cache_capacity": capacity}, clock_ghz=3.0)


def healthy_run(**overrides):
    cap1 = {"L1": 48 * 1024, "L2": 1024**2, "L3": 32 * 1024**2}
    cap2 = {"L1": 96 * 1024, "L2": 2 * 1024**2, "L3": 32 * 1024**2}
    runs = {"fma1": fma(1, 90), "fma2": fma(2, 180), "dram1": stream(1, 15), "dram2": stream(2, 28),
            "l1_1": sweep(1, 16, 150, cap1), "l2_1": sweep(1, 256, 100, cap1), "l3_1": sweep(1, 8192, 50, cap1),
            "l1_2": sweep(2, 16, 300, cap2), "l2_2": sweep(2, 256, 200, cap2), "l3_2": sweep(2, 8192, 90, cap2)}
    runs.update(overrides)
    return list(runs.values())


def in_force(profile):
    return {(c.kind, c.name, c.threads): c.value for c in profile.in_force()}


def test_best_of_repetitions_and_the_median_beside_it():
    (m,), _, _ = measurements_from([fma(1, 90, samples=(1.0, 1.1, 1.3))], "run1")
    assert m.kind == "compute" and m.name == "avx2" and m.threads == 1
    assert m.value == pytest.approx(90 * GFLOP * 1.1 / 1.0)  # the fastest sample
    assert m.median == pytest.approx(90 * GFLOP)
    assert m.healthy and m.run_id == "run1"


def test_only_probe_cases_write_ceilings():
    gemm_op = record("numpy.matmul", {"n": 64, "dtype": "float32"}, 1, flops=2 * 64**3, nbytes=3 * 64 * 64 * 4)
    failed = record("probe.fma", {"dtype": "float32", "isa": "avx512"}, 1, flops=1e9, status="failed")
    measured, _, _ = measurements_from([gemm_op, failed], "run1")
    assert measured == []


def test_a_healthy_run_is_in_force_whole():
    profile = DeviceProfile()
    add_run(profile, healthy_run(), "run1", CTX)
    assert all(m.healthy for m in profile.measurements), [m.health for m in profile.measurements]
    force = in_force(profile)
    assert force[("compute", "avx2", 2)] == pytest.approx(180 * GFLOP)
    assert force[("bandwidth", "L2", 1)] == pytest.approx(100e9) and force[("bandwidth", "DRAM", 2)] == 28e9


def test_a_halved_two_thread_fma_is_suspect_and_not_in_force():
    # Both vCPUs on one physical core: two threads give one core's worth, steadily.
    profile = DeviceProfile()
    add_run(profile, healthy_run(fma2=fma(2, 91)), "run1", CTX)
    two = next(m for m in profile.measurements if m.kind == "compute" and m.threads == 2)
    assert not two.healthy and "thread scaling" in two.health[0] and "share a physical core" in two.health[0]
    assert ("compute", "avx2", 2) not in in_force(profile)
    assert in_force(profile)[("compute", "avx2", 1)] == pytest.approx(90 * GFLOP)
    # A later healthy run restores the ceiling; the suspect measurement stays in the history.
    add_run(profile, [fma(1, 92, started_at=2000.0), fma(2, 181, started_at=2000.0)], "run2", CTX)
    assert in_force(profile)[("compute", "avx2", 2)] == pytest.approx(181 * GFLOP)
    assert len(profile.history(("cpu", "compute", "avx2", "float32", 2))) == 2


def test_an_inverted_memory_hierarchy_is_suspect():
    cap2 = {"L1": 96 * 1024, "L2": 2 * 1024**2, "L3": 32 * 1024**2}
    profile = DeviceProfile()
    add_run(profile, healthy_run(l1_2=sweep(2, 16, 12.6, cap2), l2_2=sweep(2, 256, 12.6, cap2),
                                 l3_2=sweep(2, 8192, 12.6, cap2)), "run1", CTX)
    bad = {m.name: m for m in profile.measurements if m.kind == "bandwidth" and m.threads == 2 and not m.healthy}
    assert set(bad) >= {"L3"}  # L3 below DRAM at 2 threads
    assert any("memory hierarchy" in h for h in bad["L3"].health)
    assert all(any("below one thread" in h or "memory hierarchy" in h for h in m.health) for m in bad.values())
    force = in_force(profile)
    assert ("bandwidth", "L3", 2) not in force and force[("bandwidth", "DRAM", 2)] == 28e9
    assert force[("bandwidth", "L1", 1)] == pytest.approx(150e9)  # the other thread count is unharmed


def test_noisy_repetitions_are_suspect():
    profile = DeviceProfile()
    add_run(profile, healthy_run(fma1=fma(1, 60, samples=(0.6, 1.0, 1.4))), "run1", CTX)
    one = next(m for m in profile.measurements if m.kind == "compute" and m.threads == 1)
    assert not one.healthy and "repetitions disagree" in one.health[-1]
    assert ("compute", "avx2", 1) not in in_force(profile)


def test_a_noisy_best_reproduced_by_a_second_attempt_is_healthy():
    # A busy host: no attempt passes the spread check, but two fresh workers agree on the best.
    first = fma(1, 60, samples=(0.6, 1.0, 1.4))
    again = fma(1, 62, samples=(0.62, 1.0, 1.5))  # best 100 vs 100 GFLOP/s
    lone = fma(2, 100, samples=(0.5, 1.0, 1.4))
    other = fma(2, 70, samples=(0.9, 1.0, 1.1))  # best 77.8 GFLOP/s: does not reproduce 200
    profile = DeviceProfile()
    add_run(profile, healthy_run(fma1=first, fma1b=again, fma2=lone, fma2b=other), "run1", CTX)
    ones = [m for m in profile.measurements if m.kind == "compute" and m.threads == 1]
    assert len(ones) == 2 and all(m.healthy for m in ones), [m.health for m in ones]
    twos = {round(m.value / GFLOP): m for m in profile.measurements if m.kind == "compute" and m.threads == 2}
    assert "no other attempt reproduced it" in twos[200].health[-1]
    assert in_force(profile)[("compute", "avx2", 1)] == pytest.approx(62 * GFLOP / 0.62)


def test_a_suspect_record_gives_a_suspect_measurement():
    profile = DeviceProfile()
    add_run(profile, healthy_run(fma1=fma(1, 90, suspect=["other processes kept the pinned CPUs 80% busy"])),
            "run1", CTX)
    one = next(m for m in profile.measurements if m.kind == "compute" and m.threads == 1)
    assert one.health == ["suspect record: other processes kept the pinned CPUs 80% busy"]


def test_a_peak_above_the_theoretical_peak_at_the_measured_clock_is_suspect():
    profile = DeviceProfile()
    add_run(profile, healthy_run(fma1=fma(1, 200)), "run1", CTX)  # 1 core x 3 GHz x 32 = 96 GFLOP/s
    one = next(m for m in profile.measurements if m.kind == "compute" and m.threads == 1)
    assert any("above the theoretical peak" in h for h in one.health)


def test_a_gemm_needs_a_size_far_past_the_ridge():
    small = record("probe.gemm", {"n": 64, "dtype": "float32"}, 1, flops=2 * 64**3, nbytes=3 * 64 * 64 * 4,
                   samples=(1e-5,) * 3, clock_ghz=3.0, case_id="small")
    big = record("probe.gemm", {"n": 2048, "dtype": "float32"}, 1, flops=2 * 2048**3, nbytes=3 * 2048**2 * 4,
                 samples=(0.25,) * 3, clock_ghz=3.0, case_id="big")
    profile = DeviceProfile()
    add_run(profile, healthy_run() + [small, big], "run1", CTX, blas_library="openblas 0.3")
    gemms = {m.case_id: m for m in profile.measurements if m.name == "blas"}
    assert "not far past the ridge" in gemms["small"].health[0]
    assert gemms["big"].healthy and gemms["big"].library == "openblas 0.3"
    # Another BLAS library: the GEMM ceiling of the old one is not in force for it.
    assert ("compute", "blas", 1) in {(c.kind, c.name, c.threads) for c in profile.in_force("openblas 0.3")}
    assert ("compute", "blas", 1) not in {(c.kind, c.name, c.threads) for c in profile.in_force("mkl 2024")}


def test_the_ceiling_in_force_is_the_best_of_the_recent_runs():
    profile = DeviceProfile()
    for i, gflops in enumerate([95, 80, 82, 81, 83, 84, 85]):  # the 95 was long ago
        add_run(profile, [fma(1, gflops, started_at=1000.0 + i)], f"run{i}", CTX)
    chosen = next(c for c in profile.in_force() if c.threads == 1)
    assert chosen.value == pytest.approx(85 * GFLOP)  # the best of the last RECENT_RUNS (5) runs
    assert chosen.candidates == profiles.RECENT_RUNS and "5 most recent runs" in chosen.rule
    assert profile.forget("run6") == 1
    assert next(c for c in profile.in_force() if c.threads == 1).value == pytest.approx(84 * GFLOP)


def test_profile_round_trips_and_a_v1_profile_is_read(tmp_path):
    profile = DeviceProfile(device={"model": "test"})
    add_run(profile, healthy_run(fma2=fma(2, 91)), "run1", CTX)
    path = tmp_path / "profile.json"
    profiles.save_profile(path, profile)
    again = load_profile(path)
    assert again.to_json() == profile.to_json()
    v1 = {"schema_version": 1, "compute": [{"dtype": "float32", "isa": "avx2", "threads": 1, "flops_per_s": 9e10,
                                            "source": "probe.fma", "run_id": "old"}],
          "bandwidth": [{"level": "DRAM", "threads": 1, "bytes_per_s": 1.5e10, "source": "stream", "run_id": "old"}],
          "frequency_ghz": 3.0}
    path.write_text(json.dumps(v1))
    old = load_profile(path)
    assert {(c.kind, c.name, c.threads): c.value for c in old.in_force()} == {
        ("compute", "avx2", 1): 9e10, ("bandwidth", "DRAM", 1): 1.5e10, ("clock", "core", None): 3.0}


def test_a_damaged_profile_is_moved_aside(tmp_path, capsys):
    path = tmp_path / "profile.json"
    path.write_text("{not json")
    assert load_profile(path) is None
    assert not path.exists() and list(tmp_path.glob("profile.json.damaged-*"))
    assert "moved it to" in capsys.readouterr().err


def test_quick_probe_writes_a_profile_that_later_runs_place_against(tmp_path, write_suite):
    results = tmp_path / "results"
    # the 1-thread cases only: what the run below is placed against (--filter keeps the test short)
    out = harness_cli("probe", "--quick", "--filter", "t=1]", "--budget-scale", "0.2", "--results", results,
                      "--no-progress", timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Measured by this run" in out.stdout and "Compute ceilings in force" in out.stdout
    profile_file = next(results.glob("*/profile.json"))
    profile = load_profile(profile_file)
    assert any(m.kind == "compute" for m in profile.measurements)
    suite = write_suite("cases:\n  - {id: mm, kind: numpy.matmul, params: {n: 256}, budget: 0.05, min_samples: 3}\n")
    out = harness_cli("run", suite, "--results", results, "--no-progress", timeout=120)
    assert out.returncode == 0, out.stderr
    run = find_runs(results)[-1]
    (mm,) = [r for r in final(load_records(run)) if r.kind == "numpy.matmul"]  # a suspect one is re-measured
    assert mm.roofline.source == "measured" and mm.roofline.peak_flops_per_s > 0
    snap = snapshots.load(run, {})
    assert snap.compute("float32", 1) is not None  # the run froze what it was placed against
    assert mm.roofline.peak_flops_per_s == snap.compute("float32", 1).value

    # `harness profile`: each ceiling with its history and the one in force; forget; reset.
    out = harness_cli("profile", "--results", results)
    assert out.returncode == 0, out.stderr
    probe_run = profile.runs_in_order()[-1]
    assert probe_run in out.stdout and "in force" in out.stdout.lower()
    out = harness_cli("profile", "--results", results, "--forget", probe_run)
    assert out.returncode == 0 and "forgot" in out.stdout, out.stderr
    assert probe_run not in load_profile(profile_file).runs_in_order()
    line = one_line_error(harness_cli("profile", "--results", results, "--forget", probe_run))
    assert f"--forget {probe_run}: no measurement of that run" in line
    out = harness_cli("profile", "--results", results, "--reset")
    assert out.returncode == 0 and not profile_file.exists(), out.stderr
    assert list(profile_file.parent.glob("profile.json.reset-*"))  # the old one is kept aside


def test_the_quick_suite_on_an_empty_results_folder_places_against_its_own_probes(tmp_path):
    # The quick suite's own probe cases run first; its gemm (a BLAS probe) and its ops are
    # placed against what they measured, never the nominal peak.
    out = harness_cli("run", "suites/quick.yaml", "--filter", "t=1]", "--budget-scale", "0.1", "--results",
                      tmp_path / "fresh", "--no-progress", timeout=600)
    assert out.returncode == 0, out.stderr
    run = find_runs(tmp_path / "fresh")[-1]
    placed = [r for r in load_records(run) if r.roofline is not None and r.status in MEASURED]
    assert placed and all(r.roofline.source == "measured" for r in placed), [
        (r.case_id, r.roofline.source) for r in placed]
    assert "(datasheet)" not in out.stdout
    # the BLAS GEMM, a probe and an op, is shown against the FMA roof its own run measured
    assert re.search(r"^gemm\[t=1\].*\d+% compute", out.stdout, re.M), out.stdout
