"""The documented limits past which a measurement is suspect, and the warnings below them."""
import dataclasses

from support import timing
from harness.core.records import Conditions, Faults, Load
from harness.core.trust import CLOCK_MOVE, SUSPECT_CV, assess

QUIET = Conditions(load_before=Load({"0": 1.0}, 0.0, 1.0), load_after=Load({"0": 2.0}, 0.0, 2.0),
                   clock_ghz_before=3.0, clock_ghz_after=3.01)


STEADY = tuple(1 + 0.01 * (i / 10 - 1) for i in range(21))  # 1 +- 1%, evenly spread: no outliers


def verdict(samples=STEADY, faults=Faults(), where=QUIET, affinity=(0,)):
    return assess(timing(samples), faults, where, list(affinity), [0], "conv")


def test_a_quiet_steady_measurement_is_ok_without_warnings():
    v = verdict()
    assert v.suspect_reasons == [] and v.warnings == []


def test_each_limit_makes_a_measurement_suspect_with_its_reason():
    assert "coefficient of variation" in verdict(samples=(1.0, 2.0, 0.5, 1.5, 0.4)).suspect_reasons[0]
    loaded = Conditions(load_before=Load({"0": 80.0}, 0.0, 80.0), clock_ghz_before=3.0, clock_ghz_after=3.0)
    assert "80% busy before the case (CPU 0 80%" in verdict(where=loaded).suspect_reasons[0]
    assert "steal took 5.0%" in verdict(faults=Faults(steal_fraction=0.05)).suspect_reasons[0]
    moved = Conditions(clock_ghz_before=3.0, clock_ghz_after=3.0 * (1 - 2 * CLOCK_MOVE))
    assert "clock moved -20.0%" in verdict(where=moved).suspect_reasons[0]


def test_below_the_limits_only_warnings():
    mild = [1 + 0.2 * (i / 10 - 1) for i in range(21)]  # CV about 12%: noisy, not suspect
    v = verdict(samples=mild)
    assert v.suspect_reasons == [] and "noisy" in v.warnings[0]
    assert timing(mild).cv < SUSPECT_CV
    faulted = verdict(faults=Faults(minor=10, minor_per_call=0.1))
    assert faulted.suspect_reasons == [] and "page faults" in faulted.warnings[0]
    assert "asked for CPUs [0], got [1]" in verdict(affinity=(1,)).warnings[0]


def test_a_throttle_cell_is_not_judged_by_the_length_of_its_set_duration_calls():
    t = dataclasses.replace(timing([0.3, 0.3, 0.9, 0.3, 0.3]), warmup_converged=False, warmup_samples=3)
    faults = Faults(minor=50, minor_per_call=10.0)
    cell = assess(t, faults, Conditions(), [0], [0], "probe.throttle")
    assert cell.warnings == [] and cell.suspect_reasons == []
    op = assess(t, faults, Conditions(), [0], [0], "conv")
    assert any("page faults" in w for w in op.warnings) and any("noisy" in w for w in op.suspect_reasons)


def test_a_case_that_times_nothing_is_never_judged_by_its_timing():
    t = dataclasses.replace(timing([1e-8, 5e-8, 1e-8]), warmup_converged=False)
    busy = Load(per_cpu_percent={"0": 90.0}, own_percent=0.0, others_percent=90.0)
    v = assess(t, Faults(minor=3, minor_per_call=1.0), Conditions(load_before=busy), [0], [0], "kernels.onnxruntime")
    assert v.warnings == [] and v.suspect_reasons == []
