import time

from harness.core.timing import TimingPolicy, calibrate, measure, timer_overhead, timer_resolution, warm_up
from harness.core.workload import Workload


def test_timer_resolution_and_overhead_are_small_and_positive():
    res = timer_resolution(200)
    assert res > 0
    assert timer_overhead(200) > 0


def test_calibrate_reaches_target_sample_length():
    calls = []

    def sample(number):
        calls.append(number)
        return number * 1e-5  # each call "takes" 10 us

    number = calibrate(sample, 2e-3)
    assert number * 1e-5 >= 2e-3
    assert number < 2e-3 / 1e-5 * 12  # never overshoots by more than the growth cap


def test_warm_up_stops_when_steady_and_reports_iterations():
    # A workload that starts slow (cold caches, JIT) and settles after 7 samples.
    times = iter([10, 8, 6, 4, 2, 1.5, 1.0] + [1.0] * 100)
    taken, converged = warm_up(lambda n: next(times) * n, 1, TimingPolicy(warmup_window=5, warmup_tolerance=0.05))
    assert converged
    assert taken == 11  # samples 7..11 are the first window of five that agree within 5%


def test_warm_up_gives_up_at_the_cap():
    values = iter(range(1, 1000))
    taken, converged = warm_up(lambda n: float(next(values)), 1,
                               TimingPolicy(warmup_max_samples=20, warmup_tolerance=0.01))
    assert not converged and taken == 20


def test_measure_keeps_samples_and_counts_pool_faults_as_zero():
    import numpy as np

    a = np.ones(10000)
    out = np.empty_like(a)
    out[:] = 0
    w = Workload(fn=lambda: np.multiply(a, 2.0, out=out))
    m = measure(w, TimingPolicy(budget_s=0.05, min_samples=5, warmup_max_s=0.2), [0])
    t = m["timing"]
    assert t["n"] == len(t["samples"]) >= 5
    assert t["min"] <= t["median"] <= t["max"]
    assert t["number"] >= 1 and t["warmup_iterations"] == t["warmup_samples"] * t["number"]
    assert m["faults"]["major"] == 0


def test_measure_uses_device_timer_when_given():
    seen = []

    def device_timer(fn, number):
        seen.append(number)
        return number * 1e-3

    w = Workload(fn=lambda: None, device_timer=device_timer)
    m = measure(w, TimingPolicy(budget_s=0.01, min_samples=3, warmup_max_s=0.05), [0])
    assert m["timing"]["clock"] == "device"
    assert m["timing"]["median"] == 1e-3
    assert seen
