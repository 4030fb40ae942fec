"""The timing algorithm, driven deterministically by a fake clock (as torch.utils.benchmark's
tests drive blocked_autorange with a mock timer), and once on the real clock."""
import numpy as np
import pytest

from harness.core.timing import (TimingPolicy, calibrate, ci_reached, measure, timer_overhead, timer_resolution,
                                 warm_up)
from harness.core.workload import Workload


class FakeClock:
    """A clock that advances only when told: by `tick` on every read (a timer's own cost and
    granularity) and by what the fake workload says each call takes."""

    def __init__(self, tick: float = 1e-8):
        self.now = 0.0
        self.tick = tick
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fake_workload(clock: FakeClock, cost):
    """A workload whose k-th call takes cost(k) seconds on the fake clock."""
    calls = [0]

    def fn():
        calls[0] += 1
        clock.advance(cost(calls[0]))
    return Workload(fn=fn), calls


def test_timer_resolution_and_overhead_on_the_fake_clock_are_its_tick():
    clock = FakeClock(tick=3e-8)
    assert timer_resolution(clock, reads=50) == pytest.approx(3e-8)
    assert timer_overhead(clock, reads=50) == pytest.approx(3e-8)


def test_timer_resolution_and_overhead_of_the_real_clock_are_positive():
    assert timer_resolution(reads=200) > 0
    assert timer_overhead(reads=200) > 0


def test_calibrate_reaches_target_sample_length():
    calls = []

    def sample(number):
        calls.append(number)
        return number * 1e-5  # each call "takes" 10 us

    number = calibrate(sample, 2e-3)
    assert number * 1e-5 >= 2e-3
    assert number < 2e-3 / 1e-5 * 12  # never overshoots by more than the growth cap
    assert calls == sorted(calls) and calls[0] == 1


def test_measure_calibrates_the_inner_loop_to_the_minimum_sample_length():
    clock = FakeClock(tick=1e-9)
    w, _ = fake_workload(clock, lambda k: 1e-5)  # 10 us per call
    m = measure(w, TimingPolicy(min_sample_s=2e-3, budget_s=0.05, min_samples=5, warmup_max_s=0.1), [0], clock=clock)
    assert m.timing.number * 1e-5 >= 2e-3  # one sample lasts at least min_sample_s
    assert m.timing.number * 1e-5 < 2e-3 * 12
    assert m.timing.median == pytest.approx(1e-5, rel=1e-3)


def test_warm_up_stops_when_steady_and_reports_iterations():
    # A workload that starts slow (cold caches, JIT) and settles after 7 samples.
    times = iter([10, 8, 6, 4, 2, 1.5, 1.0] + [1.0] * 100)
    taken, converged = warm_up(lambda n: next(times) * n, 1, TimingPolicy(warmup_window=5, warmup_tolerance=0.05),
                               clock=FakeClock())
    assert converged
    assert taken == 11  # samples 7..11 are the first window of five that agree within 5%


def test_warm_up_gives_up_at_the_cap():
    values = iter(range(1, 1000))
    taken, converged = warm_up(lambda n: float(next(values)), 1,
                               TimingPolicy(warmup_max_samples=20, warmup_tolerance=0.01), clock=FakeClock())
    assert not converged and taken == 20


def test_warm_up_gives_up_at_its_time_cap_on_the_clock():
    clock = FakeClock()

    def sample(n):  # never steady, and each sample takes 0.1 s of the clock
        clock.advance(0.1)
        return 0.1 * (1 + (clock.reads % 7))

    taken, converged = warm_up(sample, 1, TimingPolicy(warmup_max_s=1.0, warmup_max_samples=10_000,
                                                        warmup_tolerance=0.0), clock=clock)
    assert not converged and 9 <= taken <= 11


def test_measure_warms_up_a_slow_start_and_keeps_it_out_of_the_samples():
    clock = FakeClock()
    # Calls start 5x slower and settle towards 1 ms (a cache warming, a clock ramping up): the
    # slow start must land in the first call and the warm-up, not in the samples.
    w, _ = fake_workload(clock, lambda k: 1e-3 * (1 + 4 * np.exp(-k / 20)))
    m = measure(w, TimingPolicy(min_sample_s=1e-3, budget_s=0.2, min_samples=10, warmup_max_s=5,
                                warmup_window=5, warmup_tolerance=0.05), [0], clock=clock)
    assert m.timing.warmup_converged and m.timing.warmup_samples >= 5
    assert m.timing.first_call_s > 4e-3
    # The window rule: the last five warm-up samples agree within 5%, so the samples start
    # within reach of the steady state (a slow drift can pass a short window: it is a rule of
    # thumb, stated as such), and the median is the steady figure.
    assert m.timing.samples[0] < m.timing.first_call_s / 3
    assert m.timing.median == pytest.approx(1e-3, rel=0.02)
    assert m.timing.warmup_iterations == m.timing.warmup_samples * m.timing.number


def test_measure_stops_at_the_budget_when_the_ci_is_wide():
    clock = FakeClock()
    rng = np.random.default_rng(0)
    w, _ = fake_workload(clock, lambda k: 1e-3 * (1 + 0.5 * rng.random()))  # 50% noise: the CI never closes
    policy = TimingPolicy(min_sample_s=1e-3, budget_s=0.5, min_samples=10, max_samples=100_000, warmup_max_s=0.05,
                          warmup_tolerance=0.0, ci_target=1e-6)
    m = measure(w, policy, [0], clock=clock)
    spent = sum(m.timing.samples) * m.timing.number
    assert 0.5 <= spent < 0.5 + 3 * max(m.timing.samples) * m.timing.number  # stopped by the budget
    assert m.timing.n == len(m.timing.samples) >= 10


def test_measure_stops_early_once_the_ci_of_the_median_is_within_target():
    clock = FakeClock()
    rng = np.random.default_rng(1)
    w, _ = fake_workload(clock, lambda k: 1e-3 * (1 + 0.001 * rng.random()))  # 0.1% noise
    policy = TimingPolicy(min_sample_s=1e-3, budget_s=1000.0, min_samples=10, max_samples=100_000,
                          warmup_max_s=0.05, ci_target=0.005, ci_check_every=10)
    m = measure(w, policy, [0], clock=clock)
    assert m.timing.n == 10  # the first check, at min_samples, already passes
    assert ci_reached(m.timing.samples, 0.005)


def test_measure_stops_at_max_samples():
    clock = FakeClock()
    rng = np.random.default_rng(2)
    w, _ = fake_workload(clock, lambda k: 1e-3 * (1 + 0.5 * rng.random()))
    m = measure(w, TimingPolicy(min_sample_s=1e-3, budget_s=1e9, min_samples=5, max_samples=37, warmup_max_s=0.01,
                                ci_target=1e-9), [0], clock=clock)
    assert m.timing.n == 37


def test_measure_keeps_samples_and_counts_pool_faults_as_zero():
    a = np.ones(10000)
    out = np.empty_like(a)
    out[:] = 0
    w = Workload(fn=lambda: np.multiply(a, 2.0, out=out))
    m = measure(w, TimingPolicy(budget_s=0.05, min_samples=5, warmup_max_s=0.2), [0])
    t = m.timing
    assert t.n == len(t.samples) >= 5
    assert t.min <= t.median <= t.max
    assert t.number >= 1 and t.warmup_iterations == t.warmup_samples * t.number
    assert m.faults.major == 0


def test_measure_uses_device_timer_when_given():
    seen = []

    def device_timer(fn, number):
        seen.append(number)
        return number * 1e-3

    w = Workload(fn=lambda: None, device_timer=device_timer)
    m = measure(w, TimingPolicy(budget_s=0.01, min_samples=3, warmup_max_s=0.05), [0])
    assert m.timing.clock == "device"
    assert m.timing.median == 1e-3
    assert seen
