"""The clock probe: the add chain's result, its GHz figures, and the throttle sampler."""
import math
import os

import pytest

from harness.core.workload import Context
from kernels import frequency, jit, throttle

CPUS = sorted(os.sched_getaffinity(0))


def kind():
    (k,) = [k for k in frequency.KINDS if k.name == "probe.frequency"]
    return k


def test_chain_returns_expected_sum():
    chain = frequency.add_chain()
    assert chain(1, 1) == frequency.UNROLL
    assert chain(7, 3) == 7 * frequency.UNROLL * 3


def test_chain_is_unfoldable_assembly():
    frequency.add_chain()
    asm = frequency._chain[0].assembly()
    if jit.host_arch() == "x86_64":
        # 100 register-operand adds into one register, each needing the previous result
        adds = [line.split() for line in asm.splitlines() if line.strip().startswith("addq")]
        assert len(adds) == frequency.UNROLL
        assert len({tuple(a) for a in adds}) == 1 and adds[0][1].startswith("%")


def test_probe_workload_and_metrics():
    params, problems = kind().resolve_params({"adds": 250})
    assert not problems
    w = kind().load_factory()(params, Context("t", 1, CPUS[:1]))
    w.fn()
    w.check()
    assert w.info["adds"] == 300  # rounded up to whole trips of 100
    assert w.metrics(1e-6)["ghz"] == pytest.approx(0.3)
    assert w.flops is None


def test_probe_check_catches_no_run():
    params, _ = kind().resolve_params({})
    w = kind().load_factory()(params, Context("t", 1, CPUS[:1]))
    with pytest.raises(AssertionError):
        w.check()


def test_cpu_ghz_is_sane():
    ghz = frequency.cpu_ghz(seconds=0.1, cpu=CPUS[-1])
    assert math.isfinite(ghz) and ghz > 0  # a value, not a speed target: a shared core may read low


def test_reported_mhz_shape():
    reported = frequency.reported_mhz()
    assert set(reported) == {"cpuinfo_mhz", "scaling_cur_freq_mhz"}
    for values in reported.values():
        assert values is None or all(isinstance(c, int) and mhz > 0 for c, mhz in values.items())


@pytest.mark.parametrize("isa", ["none", "best"])
def test_throttle_sample(isa):
    cpus = CPUS[:2]
    ghz = throttle.throttle_sample(isa, "float32", cpus, seconds=0.08)
    assert len(ghz) == len(cpus)
    assert all(math.isfinite(g) and g > 0 for g in ghz)
