"""The FMA-throughput kernel: the level it compiles to, its result check, its FLOP count."""
import os
import re

import pytest

from harness.core.workload import Context, Skip
from kernels import fma, jit

X86 = jit.host_arch() == "x86_64"
LEVELS = jit.supported_levels()
CPUS = sorted(os.sched_getaffinity(0))


def kind():
    (k,) = [k for k in fma.KINDS if k.name == "probe.fma"]
    return k


def loop_body(asm: str) -> list[str]:
    """Instructions of the kernel's loop: from its label to the backward branch to it."""
    lines = [line.strip() for line in asm.splitlines()]
    for i, line in enumerate(lines):
        label = re.fullmatch(r"(\.LBB\d+_\d+):.*", line)
        if label:
            for j in range(i + 1, len(lines)):
                if lines[j].endswith(label.group(1)) and not lines[j].startswith("."):
                    if re.match(r"j|b", lines[j]):
                        return [x for x in lines[i + 1:j + 1] if x and not x.startswith((".", "#"))]
    raise AssertionError("no loop found in:\n" + asm)


def needs_x86(level):
    if not X86:
        pytest.skip("x86 assembly checks")
    if level not in LEVELS:
        pytest.skip(f"CPU lacks {level}")


def wide_registers(asm: str) -> set[int]:
    """Vector register numbers >= 16 exist only with AVX-512 (EVEX encoding)."""
    return {int(n) for n in re.findall(r"%[xyz]mm(\d+)", asm) if int(n) >= 16}


@pytest.mark.parametrize("dtype", fma.DTYPES)
def test_avx512_uses_zmm_fma(dtype):
    needs_x86("avx512")
    body = loop_body(fma.fma_assembly("avx512", dtype))
    fmas = [x for x in body if x.startswith("vfmadd")]
    assert len(fmas) == fma.accumulators("avx512") == 16
    suffix = "ps" if dtype == "float32" else "pd"
    assert all("%zmm" in x and x.split()[0].endswith(suffix) for x in fmas)


@pytest.mark.parametrize("dtype", fma.DTYPES)
def test_avx2_uses_ymm_and_no_avx512(dtype):
    needs_x86("avx2")
    asm = fma.fma_assembly("avx2", dtype)
    body = loop_body(asm)
    fmas = [x for x in body if x.startswith("vfmadd")]
    assert len(fmas) == fma.accumulators("avx2")
    assert all("%ymm" in x for x in fmas)
    assert "%zmm" not in asm and not wide_registers(asm)


@pytest.mark.parametrize("dtype", fma.DTYPES)
def test_sse_uses_xmm_only(dtype):
    needs_x86("sse")
    asm = fma.fma_assembly("sse", dtype)
    body = loop_body(asm)
    suffix = "ps" if dtype == "float32" else "pd"
    if jit.has_fma_instruction("sse"):
        ops = [x for x in body if x.startswith("vfmadd")]
        assert len(ops) == fma.accumulators("sse")
    else:
        ops = [x for x in body if re.match(r"v?(mul|add)p[sd]", x)]
        assert len(ops) == 2 * fma.accumulators("sse")
    assert all(x.split()[0].endswith(suffix) and "%xmm" in x for x in ops)
    assert "%ymm" not in asm and "%zmm" not in asm and not wide_registers(asm)


@pytest.mark.parametrize("dtype", fma.DTYPES)
def test_scalar_has_no_packed_ops(dtype):
    needs_x86("scalar")
    asm = fma.fma_assembly("scalar", dtype)
    body = loop_body(asm)
    suffix = "ss" if dtype == "float32" else "sd"
    arith = [x for x in body if re.match(r"v?(fmadd|fmsub|mul|add|sub)\w*\s+%[xyz]mm", x)]
    assert arith and all(x.split()[0].endswith(suffix) for x in arith)
    if jit.has_fma_instruction("scalar"):
        assert sum(x.startswith("vfmadd") for x in arith) == fma.accumulators("scalar")
    assert not re.search(r"\b\w+p[sd]\b", asm), "packed instruction in the scalar kernel"
    assert "%ymm" not in asm and "%zmm" not in asm


def test_level_features_switch_wider_extensions_off():
    if not X86:
        pytest.skip("x86 feature names")
    feats = jit.level_features("sse").split(",")
    assert "-avx2" in feats and "-avx512f" in feats
    # switch-offs come after switch-ons, so a feature implying avx2 cannot re-enable it
    first_off = min(i for i, f in enumerate(feats) if f.startswith("-"))
    assert all(f.startswith("-") for f in feats[first_off:])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", fma.DTYPES)
@pytest.mark.parametrize("isa", LEVELS)
def test_result_check_passes(isa, dtype, threads):
    params, problems = kind().resolve_params({"isa": isa, "dtype": dtype, "iterations": 37})
    assert not problems
    w = kind().load_factory()(params, Context("t", threads, CPUS[:threads]))
    try:
        w.fn()
        w.fn()
        w.check()
        assert w.info["isa"] == isa and w.info["threads"] == threads
        assert w.info["lanes"] == fma.lanes(isa, dtype)
        assert all(a is not None and len(a) == 1 for a in w.info["affinity_obtained"])
        m = w.metrics(1e-3)
        assert m["gflops"] == pytest.approx(w.flops / 1e-3 / 1e9)
        assert m["ghz_after"] > 0
    finally:
        w.teardown()


def test_check_catches_a_wrong_result():
    isa = LEVELS[-1]
    run = fma.FmaRun(isa, "float32", 100)
    with pytest.raises(AssertionError):
        run.check()  # never ran: out is all zeros
    run()
    run.check()
    run.out[3] = run.out[3] - run.b  # one step missing on one lane
    with pytest.raises(AssertionError):
        run.check()


def test_missing_level_raises_skip():
    missing = "neon" if X86 else "avx512"
    params, problems = kind().resolve_params({"isa": missing})
    assert not problems
    with pytest.raises(Skip, match=missing):
        kind().load_factory()(params, Context("t", 1, CPUS[:1]))


def test_best_is_the_widest_level():
    assert jit.resolve_isa("best") == LEVELS[-1]
    if X86 and jit.host_features().get("avx512f"):
        assert LEVELS[-1] == "avx512"


def test_flops_formula():
    # threads x iterations x accumulators x lanes x 2
    assert fma.lanes("avx512", "float32") == 16 and fma.lanes("avx512", "float64") == 8
    assert fma.lanes("avx2", "float32") == 8 and fma.lanes("sse", "float64") == 2
    assert fma.lanes("scalar", "float64") == 1
    assert fma.flops_per_call(2, 1000, "avx512", "float32") == 2 * 1000 * 16 * 16 * 2
    assert fma.flops_per_call(1, 10, "scalar", "float64") == 10 * fma.accumulators("scalar") * 2
    isa = LEVELS[-1]
    params, _ = kind().resolve_params({"isa": isa, "dtype": "float64", "iterations": 11})
    w = kind().load_factory()(params, Context("t", 1, CPUS[:1]))
    try:
        assert w.flops == 11 * fma.accumulators(isa) * fma.lanes(isa, "float64") * 2
        assert w.info["flops_per_iteration"] * 11 == w.flops
    finally:
        w.teardown()


def test_params_validation():
    params, problems = kind().resolve_params({})
    assert not problems and params["isa"] == "best" and params["dtype"] == "float32"
    _, problems = kind().resolve_params({"dtype": "float32", "iterations": fma.MAX_ITERATIONS_FP32 + 1})
    assert problems and problems[0].startswith("iterations:")
    _, problems = kind().resolve_params({"isa": "avx1024"})
    assert problems and problems[0].startswith("isa:")
    assert kind().env is None  # the level is forced by the TargetMachine, not the environment


def test_flops_per_cycle_is_measured():
    fpc = fma.flops_per_cycle("scalar", "float64", cpu=CPUS[0], seconds=0.05)
    # A measured figure, not a target: a finite positive value (2 to 8 on current cores; a
    # descheduled run on a shared machine can read anything lower).
    assert fpc > 0 and fpc == fpc
