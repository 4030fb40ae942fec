"""The conv kinds, the conv suite, the zoo's conv layers and `harness conv`."""
import json
import re
import os
import subprocess
import sys
import warnings

import pytest

from support import ROOT, run_cli
from harness.cost.ops import conv2d_cost
from harness.core.errors import UsageError
from harness.core.records import final
from harness.core.store import load_records
from harness.core.suite import load_suite, parse_suite
from harness.core.workload import Context, Skip
from harness.core import registry
from kernels import conv
from kernels.conv_layers import case_id, distinct_conv_layers, layer_params

KINDS = {k.name: k for k in conv.KINDS}
TINY = {"ic": 4, "oc": 8, "h": 9, "w": 7, "kh": 3, "pad": 1}
CONFIGS = {
    "dense": TINY,
    "depthwise-s2-bias": {"ic": 8, "oc": 8, "h": 10, "kh": 3, "pad": 1, "stride": 2, "groups": 8, "bias": True},
    "grouped-dilated-1x3": {"n": 2, "ic": 6, "oc": 4, "h": 8, "kh": 1, "kw": 3, "dilation": 2, "pad": 2,
                            "groups": 2},
}


def workload(kind: str, given: dict, threads: int = 1):
    params, problems = KINDS[kind].resolve_params(given)
    assert not problems, problems
    return params, KINDS[kind].load_factory()(params, Context("test", threads, [0]))


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
@pytest.mark.parametrize("kind", ["conv.torch", "conv.onnxruntime"])
def test_backends_compute_the_reference_and_a_corrupted_output_fails(kind, dtype, config):
    try:
        params, w = workload(kind, {**CONFIGS[config], "dtype": dtype})
    except Skip as exc:
        assert (kind, dtype) == ("conv.onnxruntime", "bfloat16"), exc
        assert "bfloat16" in str(exc)
        return
    out = w.fn()
    w.check()
    cost = conv.conv_cost(params)
    assert tuple(out.shape) == cost.output_shape
    # A wrong value in one place must be caught.
    first = (0, 0, 0, 0)
    if kind == "conv.torch":
        import torch

        with torch.inference_mode(), warnings.catch_warnings():  # torch's outputs are inference tensors
            if dtype == "int8":  # a quantized tensor changes by copying into it
                warnings.simplefilter("ignore")  # quantize_per_tensor warns of its deprecation
                bad = out.dequantize()
                bad[first] += 100 * out.q_scale()
                out.copy_(torch.quantize_per_tensor(bad, out.q_scale(), out.q_zero_point(), out.dtype))
            else:
                out[first] += 100
    else:
        out[first] += 100
    with pytest.raises(AssertionError):
        w.check()


@pytest.mark.parametrize("kind", ["conv.torch", "conv.onnxruntime", "conv"])
def test_flops_and_bytes_are_the_cost_models(kind):
    given = {**CONFIGS["depthwise-s2-bias"], **({"backend": "onnxruntime"} if kind == "conv" else {})}
    params, w = workload(kind, given)
    expected = conv2d_cost((1, 8, 10, 10), 8, 3, 2, 1, 1, 8, bias=True, dtype="float32")
    assert (w.flops, w.bytes) == (expected.flops, expected.bytes)
    assert w.info["cost"] == expected.as_dict()
    assert w.info["backend"]["library"] == ("onnxruntime" if kind != "conv.torch" else "torch")
    assert w.info["output_buffer"] and w.info["layout"]


def test_torch_says_which_path_ran():
    _, w = workload("conv.torch", {"ic": 16, "oc": 16, "h": 12, "kh": 3, "pad": 1, "groups": 16})
    backend = w.info["backend"]
    assert backend["mkldnn_available"] in (True, False) and backend["conv_backend"]
    if backend["conv_backend"] == "Mkldnn":  # oneDNN's own log says which kernels ran
        assert any(p["primitive"] == "convolution" for p in backend["onednn_primitives"])


def test_onnxruntime_records_its_optimized_graph():
    _, w = workload("conv.onnxruntime", {**TINY, "graph_optimization": "disable"})
    assert w.info["backend"]["optimized_graph"] == ["ai.onnx:Conv"]
    assert w.info["backend"]["providers"] == ["CPUExecutionProvider"]


def test_cuda_without_a_gpu_is_a_skip():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CUDA path runs instead")
    for kind in ("conv.torch", "conv.onnxruntime"):
        with pytest.raises(Skip, match="CUDA"):
            workload(kind, {**TINY, "device": "cuda"})


@pytest.mark.parametrize("given, field", [
    ({"ic": 6, "oc": 8, "h": 8, "kh": 3, "groups": 4}, "groups:"),
    ({"ic": 8, "oc": 6, "h": 8, "kh": 3, "groups": 4}, "groups:"),
    ({"ic": 8, "oc": 8, "h": 2, "kh": 5}, "output size:"),
    ({"ic": 8, "oc": 8, "h": 8, "kh": 3, "dilation": 4}, "output size:"),
])
def test_validate_rejects_impossible_configs_naming_the_field(given, field):
    for kind in KINDS.values():
        _, problems = kind.resolve_params({**given, **({"backend": "torch"} if kind.name == "conv" else {})})
        assert len(problems) == 1 and problems[0].startswith(field), problems


def test_memory_format_is_for_torch_only():
    _, problems = KINDS["conv"].resolve_params({**TINY, "backend": "onnxruntime", "memory_format": "channels_last"})
    assert len(problems) == 1 and problems[0].startswith("memory_format:"), problems


def test_an_impossible_case_fails_at_suite_load():
    with pytest.raises(UsageError, match=r"s.yaml: cases\[0\].params.groups: in_channels 6 is not divisible"):
        parse_suite({"cases": [{"kind": "conv.torch", "params": {"ic": 6, "oc": 8, "h": 8, "kh": 3, "groups": 4}}]},
                    "s.yaml", allowed=[0])


def test_conv_kinds_are_registered_with_the_malloc_env():
    for name in KINDS:
        assert registry.get(name).name == name
    suite = parse_suite({"cases": [{"kind": "conv", "params": {**TINY, "backend": "torch"}}]}, "s.yaml", allowed=[0])
    assert suite.cases[0].env == conv.MALLOC_ENV


# The first source document's two tables: (ic, h, k, stride, pad, groups, oc) -> MFLOPs as printed.
DOCUMENT_CONFIGS = {
    (128, 28, 3, 1, 1, 1, 128): 231.211,
    (512, 7, 1, 1, 0, 1, 1024): 51.380,
    (128, 28, 3, 1, 1, 128, 128): 1.806,
    (16, 448, 3, 1, 1, 16, 16): 57.803,
    (16, 448, 3, 1, 1, 1, 16): 924.844,
}


@pytest.fixture(scope="module")
def conv_suite():
    return load_suite(ROOT / "suites" / "conv.yaml", allowed=[0, 1])


def _key(params):
    s = conv.conv_shape(params)
    return (s["ic"], s["h"], s["kh"], s["stride"], s["pad"], s["groups"], s["oc"])


def test_suite_has_the_documents_configs(conv_suite):
    doc = [c for c in conv_suite.cases if c.case_id.startswith("doc-")]
    for config, mflops in DOCUMENT_CONFIGS.items():
        found = [c for c in doc if _key(c.params) == config and c.params["dtype"] == "float32"]
        assert {(c.params["backend"], c.threads) for c in found} == {
            (b, t) for b in ("torch", "onnxruntime") for t in (1, 2)}, config
        assert conv.conv_cost(found[0].params).flops / 1e6 == pytest.approx(mflops, abs=1e-3)
    for c in conv_suite.cases:
        assert 0.3 <= c.policy.budget_s <= 0.5


def test_suite_has_every_resnet50_layer(conv_suite):
    layers = distinct_conv_layers("resnet50")
    for i, layer in enumerate(layers):
        cases = [c for c in conv_suite.cases if c.case_id.startswith(case_id("resnet50", i) + "[")]
        assert len(cases) == 4, case_id("resnet50", i)
        expected = conv.conv_shape({**{"w": 0, "kw": 0}, **conv_suite_defaults(), **layer_params(layer)})
        assert all(conv.conv_shape(c.params) == expected for c in cases), case_id("resnet50", i)
    assert not [c for c in conv_suite.cases if c.case_id.startswith(case_id("resnet50", len(layers)) + "[")]


def conv_suite_defaults():
    return {k: p.default for k, p in KINDS["conv"].params.items() if not p.required}


def test_suite_sections(conv_suite):
    ids = {c.case_id.split("[")[0] for c in conv_suite.cases}
    for expected in ("f3s1", "f1s1", "f3s2", "f1s2", "dw-f3s1", "dw-f3s2", "oc-sweep",
                     "g1-1to1", "g1-1to12", "resnet18-l1", "mobilenetv2-l1", "shufflenetv2-l1"):
        assert expected in ids
    sweep = sorted(c.params["oc"] for c in conv_suite.cases if c.case_id.startswith("oc-sweep["))
    assert sorted(set(sweep)) == list(range(56, 73))
    g1 = [conv.conv_cost(c.params) for c in conv_suite.cases if c.case_id.startswith("g1-")]
    assert max(x.flops for x in g1) / min(x.flops for x in g1) < 1.1  # equal FLOPs, within the paper's rounding
    assert {c.params["n"] for c in conv_suite.cases if c.case_id.startswith("batch-")} == {1, 8}
    assert {"float32", "bfloat16", "int8"} <= {c.params["dtype"] for c in conv_suite.cases}


def test_resnet18_distinct_convs():
    layers = distinct_conv_layers("resnet18")
    got = [(x["ic"], x["oc"], x["h"], x["kh"], x["stride"], x["pad"], x["count"]) for x in layers]
    assert got == [
        (3, 64, 224, 7, 2, 3, 1),
        (64, 64, 56, 3, 1, 1, 4),
        (64, 128, 56, 1, 2, 0, 1),
        (64, 128, 56, 3, 2, 1, 1),
        (128, 128, 28, 3, 1, 1, 3),
        (128, 256, 28, 1, 2, 0, 1),
        (128, 256, 28, 3, 2, 1, 1),
        (256, 256, 14, 3, 1, 1, 3),
        (256, 512, 14, 1, 2, 0, 1),
        (256, 512, 14, 3, 2, 1, 1),
        (512, 512, 7, 3, 1, 1, 3),
    ]
    assert sum(x["count"] for x in layers) == 20
    assert all(x["groups"] == 1 and not x["bias"] and x["w"] == x["h"] for x in layers)


def conv_cmd(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "harness", "conv", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.parametrize("args, expected", [
    (["--ic", "-1", "--oc", "8", "--hw", "8"], "--ic: must be > 0"),
    (["--ic", "8", "--oc", "8", "--hw", "8", "--pad", "-1"], "--pad: must be between 0"),
    (["--ic", "6", "--oc", "8", "--hw", "8", "--groups", "4"], "--groups: --ic 6 is not divisible"),
    (["--ic", "8", "--oc", "8", "--hw", "2", "-k", "5"], "output size"),
    (["--ic", "8", "--oc", "8", "--hw", "8", "--threads", "4096"], "--threads 4096"),
    (["--ic", "8", "--oc", "8", "--hw", "eight"], "--hw"),
])
def test_conv_cmd_bad_flags_are_one_line_and_exit_2(args, expected):
    out = run_cli("conv", *args)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], out.stderr


def test_conv_cmd_end_to_end(tmp_path):
    out = conv_cmd("--ic", 8, "--oc", 16, "--hw", 10, "-k", 3, "--pad", 1, "--threads", 1,
                   "--budget", 0.01, "--results", tmp_path, "--no-progress")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"FLOPs\s+230.4 kFLOP", out.stdout)  # 2 x 16 x 10 x 10 x 8 x 9
    assert "intensity" in out.stdout and "of roofline" in out.stdout
    runs = list(tmp_path.glob("*/*/records.jsonl"))
    assert len(runs) == 1
    # a case found suspect on a busy machine is re-measured (attempt 2): readers keep the last
    records = [r.to_json() for r in final(load_records(runs[0].parent))]
    assert sorted(r["params"]["backend"] for r in records) == ["onnxruntime", "torch"]
    expected = conv2d_cost((1, 8, 10, 10), 16, 3, 1, 1)
    for r in records:
        assert r["status"] in ("ok", "suspect"), r.get("error")
        assert (r["cost"]["flops"], r["cost"]["bytes"]) == (expected.flops, expected.bytes)
        assert r["info"]["malloc_env"] == conv.MALLOC_ENV  # the worker started with it
        assert re.search(rf"^{r['params']['backend']}\s+1\s", out.stdout, re.M)
