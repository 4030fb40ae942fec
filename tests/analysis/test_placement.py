"""The one placement: compute ceiling of the record's dtype and threads, the bandwidth of the
memory level its working set fits in, DRAM beside it, and reasons for anything above 100%."""
import pytest

from support import record
from harness.analysis.placement import place, roof_for
from harness.analysis.snapshot import Snapshot, SnapshotCeiling
from harness.presentation.roofline_plot import roofline_panels

KIB, MIB = 1024, 1024**2


def snap(**extra):
    c = [SnapshotCeiling("compute", "avx512", 2e11, "float32", 1), SnapshotCeiling("compute", "avx512", 4e11, "float32", 2),
         SnapshotCeiling("compute", "blas", 1.5e11, "float32", 1),
         SnapshotCeiling("bandwidth", "L1", 3e11, None, 1), SnapshotCeiling("bandwidth", "L2", 1.5e11, None, 1),
         SnapshotCeiling("bandwidth", "DRAM", 2e10, None, 1), SnapshotCeiling("bandwidth", "DRAM", 3e10, None, 2)]
    capacity = {"1": {"L1": 48 * KIB, "L2": 2 * MIB, "L3": 32 * MIB}, "2": {"L1": 96 * KIB, "L2": 4 * MIB, "L3": 32 * MIB}}
    nominal = {"float32": {"flops_per_s": 3.3e11, "cores": 2}}
    return Snapshot(ceilings=c + extra.get("more", []), cache_capacity=capacity, nominal=nominal,
                    profile_path="results/dev/profile.json")


def op(flops, nbytes, seconds, threads=1, dtype="float32", working_set=None, kind="conv"):
    return record(kind, {"dtype": dtype}, threads, flops=flops, nbytes=nbytes, samples=(seconds,) * 3,
                  working_set=working_set)


def test_compute_bound_against_the_fma_ceiling_of_its_threads_never_blas():
    p = place(op(2e9, 1e6, 0.02), snap())
    assert p.source == "measured" and p.bound == "compute" and p.peak_flops_per_s == 2e11
    assert p.theoretical_time_s == pytest.approx(0.01) and p.efficiency == pytest.approx(0.5)
    two = place(op(2e9, 1e6, 0.02, threads=2), snap())
    assert two.peak_flops_per_s == 4e11 and two.threads == 2
    assert p.datasheet_peak_flops_per_s == pytest.approx(3.3e11 / 2)  # one core's share, beside it


@pytest.mark.parametrize("working_set,level", [(32 * KIB, "L1"), (1 * MIB, "L2"), (8 * MIB, "DRAM"),
                                               (1e9, "DRAM")])
def test_memory_bound_against_the_level_its_working_set_fits_in(working_set, level):
    p = place(op(100, working_set, 1.0), snap())
    assert p.bound == "memory" and p.level == level
    # 8 MiB fits in L3, where nothing was measured at 1 thread: the next slower level, said so.
    if working_set == 8 * MIB:
        assert "no L3 bandwidth measured" in p.level_reason
    assert p.dram_bandwidth_bytes_per_s == 2e10 and p.dram_efficiency is not None


def test_a_multi_thread_working_set_is_judged_against_the_caches_its_threads_hold():
    roof = roof_for(op(1e6, 3 * MIB, 1.0, threads=2), snap())
    assert roof.level == "DRAM" and "fits in L2 (4 MiB held by 2 threads)" in roof.level_reason  # no L2 at 2 threads
    assert roof_for(op(1e6, 3 * MIB, 1.0, threads=1), snap()).level == "DRAM"  # 3 MiB > 2 MiB at 1 thread


def test_above_a_one_sided_roof_comes_with_a_reason_too():
    # No compute ceiling at all: the nominal peak from the OS's GHz, which a VM's clock beats.
    bare = Snapshot(ceilings=[], cache_capacity={}, nominal={"float32": {"flops_per_s": 2e11, "cores": 2}})
    p = place(op(2e9, 1e6, 0.015), bare)
    assert p.source == "datasheet" and p.bound.startswith("compute") and p.efficiency > 1
    assert "nominal (datasheet) peak" in p.explanation
    # Only a bandwidth measured, and the op beats every level of it.
    mem_only = Snapshot(ceilings=[SnapshotCeiling("bandwidth", "DRAM", 2e10, None, 1)],
                        cache_capacity={"1": {"L1": 48 * KIB}}, nominal={})
    q = place(op(0, 1e9, 1e9 / 5e10), mem_only)
    assert q.bound.startswith("memory") and q.efficiency > 1 and "distrust" in q.explanation


def test_above_the_roof_comes_with_a_reason():
    # Placed against DRAM (8 MiB: past L2) but attaining 100 GB/s: within L2's bandwidth.
    p = place(op(1e6, 8 * MIB, 8 * MIB / 1e11), snap())
    assert p.efficiency > 1 and "within L2's" in p.explanation and "stayed in L2" in p.explanation
    faster = place(op(1e6, 32 * KIB, 32 * KIB / 1e12), snap())  # 1 TB/s from L1: faster than anything
    assert faster.efficiency > 1 and "distrust" in faster.explanation
    compute = place(op(4e9, 1e6, 0.01), snap())  # 400 GFLOP/s on one core of 200
    assert compute.efficiency == pytest.approx(2.0) and "distrust" in compute.explanation
    assert place(op(2e9, 1e6, 0.02), snap()).explanation is None


def test_without_measured_compute_the_nominal_peak_labelled_datasheet():
    bare = Snapshot(nominal={"float32": {"flops_per_s": 3.3e11, "cores": 2}}, cache_capacity={"1": {}})
    p = place(op(2e9, 1e6, 0.02), bare)
    assert p.source == "datasheet" and p.peak_flops_per_s == pytest.approx(1.65e11)
    assert p.bound == "compute (bandwidth unknown)" and p.bandwidth_bytes_per_s is None


def test_a_dtype_without_its_own_ceiling_is_placed_against_fp32_and_says_so():
    p = place(op(2e9, 1e6, 0.02, dtype="bfloat16"), snap())
    assert p.ceiling_dtype == "float32" and p.source == "measured" and "placed against float32" in p.notes[0]


def test_a_zero_flop_op_is_placed_memory_bound():
    p = place(op(0, 1 * MIB, 1e-4), snap())
    assert p.bound == "memory" and p.intensity == 0 and p.level == "L2"


def test_probes_are_not_placed_but_a_gemm_is():
    assert place(record("probe.fma", {"dtype": "float32"}, 1, flops=1e9, nbytes=1), snap()) is None
    gemm = place(record("probe.gemm", {"dtype": "float32", "n": 1024}, 1, flops=2e9, nbytes=1.2e7,
                        samples=(0.02,) * 3), snap())
    assert gemm is not None and gemm.peak_flops_per_s == 2e11  # the FMA roof, not its own BLAS figure


def test_every_plotted_point_sits_under_its_own_records_roof():
    records = [op(2e9, 1e6, 0.02), op(1e6, 1 * MIB, 1e-4), op(2e9, 1e6, 0.01, threads=2),
               op(1e6, 1e9, 1.0, threads=2), op(2e9, 1e6, 0.02, dtype="bfloat16")]
    s = snap()
    for r in records:
        r.roofline = place(r, s)
    panels = roofline_panels(records, s)
    assert [p.threads for p in panels] == [1, 2]  # one panel per thread count
    for panel in panels:
        compute = {line.value for line in panel.lines if line.kind == "compute" and not line.dashed}
        bandwidth = {line.value for line in panel.lines if line.kind == "bandwidth"}
        for point in panel.points:
            assert point["peak_flops_per_s"] in compute
            assert point["bandwidth_bytes_per_s"] in bandwidth
        # and no ceiling of another thread count is drawn on this panel
        other = {c.value for c in s.ceilings if c.threads not in (panel.threads, None) and c.name != "blas"}
        assert not (compute | bandwidth) & other
