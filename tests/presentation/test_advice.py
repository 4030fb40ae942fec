"""Warnings grouped by topic, in words, each with its fix: every sentence the core writes has a
topic; unknown ones are kept with their own text."""
import dataclasses

from support import record, timing
from harness.core import conditions
from harness.core.records import Conditions, Faults, Load
from harness.core.trust import assess
from harness.presentation.advice import advice_lines, group_warnings, topic_of


def every_core_warning() -> list[str]:
    """Every warning and suspect reason trust.assess writes, from a record that breaks every limit."""
    t = dataclasses.replace(timing([1.0, 1.0, 1.0, 1.0, 9.0, 0.1, 5.0, 0.2, 7.0, 1.0]), warmup_converged=False,
                            warmup_samples=3)
    busy = Load(per_cpu_percent={"0": 90.0}, own_percent=0.0, others_percent=90.0)
    where = Conditions(load_before=busy, load_after=busy, clock_ghz_before=3.0, clock_ghz_after=4.0)
    faults = Faults(minor=10, minor_per_call=1.0, steal_fraction=0.5)
    verdict = assess(t, faults, where, affinity=[1], cpus=[0], kind="k")
    noisy_only = assess(dataclasses.replace(t, cv=0.15), Faults(), Conditions(), [0], [0], "k")
    return verdict.warnings + verdict.suspect_reasons + noisy_only.warnings


def test_every_warning_the_core_writes_has_a_topic_with_a_fix():
    texts = every_core_warning() + conditions.machine_state()["warnings"] + [
        "cpufreq governor is not 'performance' on some CPUs: ['powersave']; the clock may ramp during timing",
        "turbo/boost is on: the clock depends on temperature and busy cores",
        "OPENBLAS_CORETYPE=Haswell forces OpenBLAS's Haswell kernels: BLAS figures may sit below ..."]
    assert len(texts) >= 10
    for text in texts:
        topic = topic_of(text)
        assert topic.name != "other" and topic.action, text


def test_warnings_are_grouped_by_topic_and_the_unknown_kept_in_full():
    a = record("k", {"i": 1}, case_id="a", suspect=["noisy: coefficient of variation 40% (limit 25%)"])
    b = record("k", {"i": 2}, case_id="b")
    b.warnings = ["noisy: coefficient of variation 12.0%", "something nobody planned for"]
    groups = group_warnings([a, b], machine=["running under a hypervisor: CPUs may be shared"])
    by_name = {g.topic.name: g for g in groups}
    assert by_name["noise"].cases == ["a", "b"] and by_name["noise"].count == 2
    assert by_name["hypervisor"].cases == ["the machine"]
    assert groups[0].topic.name == "noise"  # the topic touching most cases first
    lines = advice_lines([a, b], machine=["running under a hypervisor: CPUs may be shared"])
    assert any(line.startswith("noise (2 cases: a, b): ") and "Fix: rerun on a quieter machine" in line
               for line in lines)
    assert any(line.startswith("other (1 case: b): something nobody planned for.") for line in lines)
    assert any(line.startswith("hypervisor (the machine): ") for line in lines)

