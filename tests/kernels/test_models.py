"""Whole-model case kinds (model.torch, model.onnxruntime), per-layer profiling, and the
`harness model` command's bring-your-own-ONNX errors. Small models and inputs throughout."""
from __future__ import annotations

import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


from harness.core.workload import Context, Skip  # noqa: E402
from kernels import models  # noqa: E402
from onnx_models import helper_model, typed_inputs_onnx  # noqa: E402
from support import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CTX = Context("test", 1, [0])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx-cache")
    old = os.environ.get("HARNESS_ONNX_CACHE")
    os.environ["HARNESS_ONNX_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("HARNESS_ONNX_CACHE", None)
    else:
        os.environ["HARNESS_ONNX_CACHE"] = old


def _kind(name):
    return next(k for k in models.KINDS if k.name == name)


def _params(kind, **given):
    params, problems = _kind(kind).resolve_params(given)
    assert not problems, problems
    return params


# ----------------------------------------------------------------------------- kinds

def test_kind_params_and_validation():
    assert _params("model.torch", model="resnet18") == {"model": "resnet18", "batch": 1, "framework": "eager",
                                                         "dtype": "float32", "image": 224}
    _, problems = _kind("model.torch").resolve_params({"model": "resnet19"})
    assert problems and problems[0].startswith("model:")
    _, problems = _kind("model.torch").resolve_params({"model": "vit_tiny", "image": 64})
    assert problems and problems[0].startswith("image:")
    _, problems = _kind("model.onnxruntime").resolve_params({"model": "resnet18", "onnx": "x.onnx"})
    assert problems and "exactly one" in problems[0]
    _, problems = _kind("model.onnxruntime").resolve_params({})
    assert problems and "exactly one" in problems[0]
    _, problems = _kind("model.onnxruntime").resolve_params({"onnx": "x.onnx", "shape": "x=1xq"})
    assert problems and problems[0].startswith("shape:")
    _, problems = _kind("model.onnxruntime").resolve_params({"model": "resnet18", "opt_level": "max"})
    assert problems and problems[0].startswith("opt_level:")


def test_torch_eager_workload():
    w = models.torch_model(_params("model.torch", model="shufflenet_v2_x1_0", batch=2, image=64), CTX)
    w.fn()
    w.check()
    m = w.info["four_metrics"]
    assert m["params"] == 2_278_604 and m["unknown_ops"] == []
    assert w.flops == m["flops"] > m["flops_main_conv_linear_matmul"] > 0
    assert w.bytes == m["memory_access_bytes"] > 0
    assert w.metrics(0.01) == {"latency_s": 0.01, "throughput_per_s": 200.0}  # batch / latency
    assert w.info["footprint"]["rss_end_bytes"] > 0


def test_onnxruntime_zoo_workload_matches_torch(cache):
    params = _params("model.onnxruntime", model="shufflenet_v2_x1_0", batch=2, image=64)
    w = models.ort_model(params, CTX)
    assert w.info["session_create_s"] > 0
    assert Path(w.info["onnx_path"]).parent == cache
    w.fn()
    w.check()  # compares with the eager torch output
    # The same whole-model cost as the torch kind, so frameworks compare directly.
    t = models.torch_model(_params("model.torch", model="shufflenet_v2_x1_0", batch=2, image=64), CTX)
    assert (w.flops, w.bytes) == (t.flops, t.bytes)
    assert w.metrics(0.02)["throughput_per_s"] == pytest.approx(100.0)


def test_reference_comparison_catches_a_wrong_output():
    import numpy as np

    ref = np.linspace(-3, 3, 1000).reshape(1, 1000)
    models._compare(ref + 1e-6, ref, "close")  # float32 reordering noise passes
    with pytest.raises(AssertionError, match="exceeds"):
        models._compare(ref + 0.1, ref, "wrong")
    with pytest.raises(AssertionError, match="non-finite"):
        models._compare(np.full_like(ref, np.nan), ref, "nan")
    with pytest.raises(AssertionError, match="shape"):
        models._compare(ref[:, :10], ref, "shape")


def test_onnxruntime_file_workload_with_shape(dynamic_onnx):
    w = models.ort_model(_params("model.onnxruntime", onnx=str(dynamic_onnx), shape="x=3x3x16x16"), CTX)
    w.fn()
    w.check()
    assert w.info["batch"] == 3 and w.info["input_shapes"] == {"x": [3, 3, 16, 16]}
    # conv + bias + relu + global mean + linear + bias, per the cost model's conventions
    assert w.flops == 3 * 4 * 16 * 16 * (27 * 2 + 1 + 1 + 1) + 3 * 5 * (4 * 2 + 1)
    assert w.metrics(0.03)["throughput_per_s"] == pytest.approx(100.0)
    from harness.core.errors import UsageError

    _, problems = _kind("model.onnxruntime").resolve_params({"onnx": str(dynamic_onnx)})
    assert problems == [f"onnx: {dynamic_onnx}: input 'x' has dynamic dims [N, 3, 16, 16]; give --shape x=1x3x16x16"]
    with pytest.raises(UsageError, match="dynamic dims"):  # the factory, given params no suite validated
        models.ort_model({**_params("model.onnxruntime", onnx=str(dynamic_onnx), shape="x=1x3x16x16"), "shape": ""},
                         CTX)


def test_compile_failure_is_a_skip_with_the_reason(monkeypatch):
    from torch._inductor.exc import CppCompileError

    def broken(model, *a, **k):
        raise CppCompileError(["g++", "x.cpp"], "no working C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(Skip, match="torch.compile failed here: CppCompileError"):
        models.torch_model(_params("model.torch", model="repvgg_a0_deploy", framework="compile", image=32), CTX)


def test_a_bug_under_compile_is_a_failure_not_a_skip(monkeypatch):
    def buggy(model, *a, **k):
        raise KeyError("a bug, not a missing compiler")

    monkeypatch.setattr(torch, "compile", buggy)
    with pytest.raises(KeyError):
        models.torch_model(_params("model.torch", model="repvgg_a0_deploy", framework="compile", image=32), CTX)


def test_compile_works_or_is_skipped_with_a_reason():
    # The smallest graph of the zoo (22 conv + relu) at 32 x 32: ~10 s to compile cold on one core.
    try:
        w = models.torch_model(_params("model.torch", model="repvgg_a0_deploy", framework="compile", image=32),
                               CTX)
    except Skip as exc:
        assert str(exc).startswith("torch.compile failed here: ")
        pytest.skip(str(exc))
    assert w.info["compile_s"] > 0 and w.info["compile_backend"] == "inductor"
    w.fn()
    w.check()  # the compiled model's output equals eager's within tolerance


# ----------------------------------------------------------------------------- harness model

def _model_cmd(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "harness", "model", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("case", ["missing", "not_onnx", "dynamic", "unknown_name", "wrong_framework"])
def test_model_cmd_errors_are_one_line_exit_2(case, tmp_path, dynamic_onnx):
    if case == "missing":
        args, expect = [tmp_path / "nope.onnx"], "no such file"
    elif case == "not_onnx":
        junk = tmp_path / "junk.onnx"
        junk.write_text("definitely not ONNX\n" * 20)
        args, expect = [junk], "not an ONNX model"
    elif case == "dynamic":
        args, expect = [dynamic_onnx], "input 'x' has dynamic dims [N, 3, 16, 16]; give --shape x=1x3x16x16"
    elif case == "unknown_name":
        args, expect = ["resnet19"], "unknown model 'resnet19': not a zoo model (known: resnet18, resnet50"
    else:
        args, expect = [dynamic_onnx, "--shape", "x=1x3x16x16", "--framework", "eager"], "onnxruntime only"
    proc = run_cli("model", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], proc.stderr
    assert proc.stdout == ""


def test_model_cmd_bring_your_own_onnx_end_to_end(tmp_path, dynamic_onnx):
    proc = _model_cmd(dynamic_onnx, "--shape", "x=2x3x16x16", "--threads", "1", "--budget", "0.05", "--layers",
                      "--no-footprint", "--no-progress", "--results", tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    assert "FLOPs" in out and "parameters" in out and "memory access" in out and "memory footprint" in out
    assert re.search(r"^onnxruntime\s+1\s", out, re.M) and "images/s" in out
    assert "sum of layers" in out and "bottlenecks:" in out
    from harness.core.store import load_records

    run = next(tmp_path.glob("*/*"))
    records = load_records(run)
    kinds = {r.kind for r in records}
    assert kinds == {"model.onnxruntime", "layers.onnxruntime", "layer.onnxruntime"}
    timed = next(r for r in records if r.kind == "model.onnxruntime")
    assert timed.measured and timed.info["session_create_s"] > 0
    layer = next(r for r in records if r.kind == "layer.onnxruntime")
    assert layer.timing.n == len(layer.timing.samples) == 10  # each layer keeps its samples
    assert timed.metrics["throughput_per_s"] == pytest.approx(2 / timed.timing.median)


# ----------------------------------------------------------------------------- typed ONNX inputs

def test_onnx_feed_gives_each_input_its_type_and_range(tmp_path):
    from harness.cost.onnx_graph import load_onnx

    graph = load_onnx(typed_inputs_onnx(tmp_path / "typed.onnx"))
    shapes = {"ids": (2, 8), "mask": (2, 8, 1), "half": (2, 8, 16), "brain": (2, 8, 16)}
    feed = models.onnx_feed(graph, shapes)
    assert {k: v.dtype.name for k, v in feed.items()} == {"ids": "int64", "mask": "bool", "half": "float16",
                                                         "brain": "bfloat16"}
    assert feed["ids"].min() >= 0 and feed["ids"].max() < 50000 and len(set(feed["ids"].ravel())) > 8
    assert feed["mask"].all()  # a mask of ones: every token kept
    assert {k: v.shape for k, v in feed.items()} == shapes
    again = models.onnx_feed(graph, shapes)
    assert all((again[k] == feed[k]).all() for k in feed)  # seeded


def test_onnxruntime_runs_typed_inputs_and_outputs(tmp_path):
    path = typed_inputs_onnx(tmp_path / "typed.onnx")
    w = models.ort_model(_params("model.onnxruntime", onnx=str(path)), CTX)
    w.fn()
    w.check()  # int64 ArgMax output: no finite check; float outputs checked
    assert w.info["four_metrics"]["params"] == 50000 * 16
    assert w.info["four_metrics"]["params_by_op"] == {"Gather": 50000 * 16}


def test_onnxruntime_output_buffers_are_read_back(tmp_path):
    import numpy as np
    import onnxruntime

    from harness.cost.onnx_graph import load_onnx

    path = typed_inputs_onnx(tmp_path / "typed.onnx")
    graph = load_onnx(path)
    feed = models.onnx_feed(graph, {"ids": (2, 8), "mask": (2, 8, 1), "half": (2, 8, 16), "brain": (2, 8, 16)})
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y, best = session.run_with_ort_values(["y", "best"], {k: models.ort_value(v) for k, v in feed.items()})
    table = next(np.frombuffer(t.raw_data, np.float32).reshape(50000, 16) for t in graph.graph.initializer
                 if t.name == "table")
    expect = table[feed["ids"]] + feed["half"].astype(np.float32) + feed["brain"].astype(np.float32)
    assert np.allclose(y.numpy(), expect, atol=1e-6)
    assert (best.numpy() == expect.argmax(axis=2)).all()


def test_a_scalar_first_input_gives_the_batch_from_the_next(tmp_path):
    from onnx_models import scalar_first_onnx

    w = models.ort_model(_params("model.onnxruntime", onnx=str(scalar_first_onnx(tmp_path / "s.onnx"))), CTX)
    w.fn()
    w.check()
    assert w.info["batch"] == 3 and w.info["input_shapes"] == {"alpha": [], "x": [3, 4]}
    assert w.metrics(0.03) == {"latency_s": 0.03, "throughput_per_s": pytest.approx(100.0)}
    # Every input a scalar: no batch, so no throughput (latency only).
    w = models.ort_model(_params("model.onnxruntime", onnx=str(scalar_first_onnx(tmp_path / "s0.onnx", True))), CTX)
    w.fn()
    w.check()
    assert "batch" not in w.info and w.metrics(0.5) == {"latency_s": 0.5}
    assert models.onnx_batch({"a": (), "b": (5, 2), "c": (7,)}) == 5 and models.onnx_batch({"a": ()}) is None


@pytest.mark.parametrize("elem", ["INT8", "UINT8"])
def test_onnxruntime_runs_a_graph_that_takes_8bit_input(tmp_path, elem):
    import numpy as np
    import onnxruntime
    from onnx import TensorProto

    from harness.cost.onnx_graph import load_onnx
    from onnx_models import quantized_input_onnx

    path = quantized_input_onnx(tmp_path / "q.onnx", getattr(TensorProto, elem))
    w = models.ort_model(_params("model.onnxruntime", onnx=str(path)), CTX)  # the feed, bound as OrtValues
    w.fn()
    w.check()
    assert w.info["batch"] == 2
    feed = models.onnx_feed(load_onnx(path), {"q": (2, 5)})
    q = feed["q"]
    assert q.dtype.name == elem.lower() and len(set(q.ravel().tolist())) > 3
    (y,) = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    zero = 3 if elem == "INT8" else 128
    # By hand: y = max((q - zero point) * scale, 0), in float64 from the 8-bit values.
    expect = np.maximum((q.astype(np.float64) - zero) * 0.5, 0.0)
    np.testing.assert_array_equal(y, expect.astype(np.float32))


def test_model_memory_of_an_onnx_file_from_shape_inference(tmp_path):
    from harness.cost.onnx_weights import MemoryEstimate

    path = typed_inputs_onnx(tmp_path / "typed.onnx")
    need = models.model_memory({"onnx": str(path), "shape": ""}, 1)
    est = models._onnx_estimate(str(path), path.stat().st_mtime_ns, path.stat().st_size, "")
    weights = 50000 * 16 * 4 + 4  # the table and the scalar
    assert isinstance(est, MemoryEstimate) and est.weights_bytes == weights
    assert need == models.onnx_memory_bytes(est) == (zoo_runtime() + models.WEIGHT_COPIES * weights
                                                     + models.ACTIVATION_COPIES * est.activation_peak_bytes)


@pytest.mark.parametrize("kind", ["model.onnxruntime", "layers.onnxruntime", "model.footprint"])
def test_an_onnx_file_that_cannot_be_costed_is_refused_at_validation(tmp_path, dynamic_onnx, kind):
    from harness.core.errors import UsageError
    from harness.core.suite import parse_suite

    missing = tmp_path / "missing.onnx"
    junk = tmp_path / "junk.onnx"
    junk.write_text("not ONNX\n" * 20)
    cases = [(missing, "", f"onnx: {missing}: No such file or directory"),
             (junk, "", f"onnx: {junk}: not an ONNX model"),
             (dynamic_onnx, "", f"onnx: {dynamic_onnx}: input 'x' has dynamic dims [N, 3, 16, 16]")]
    for path, shape, expect in cases:
        suite = {"cases": [{"id": "c", "kind": kind, "params": {"onnx": str(path), "shape": shape}}]}
        with pytest.raises(UsageError) as err:
            parse_suite(suite, "s.yaml")
        line = str(err.value)
        assert "\n" not in line and line.startswith("s.yaml: cases[0].params.onnx: ") and expect in line, line
    # The memory estimate never stands in a 0 for a file it cannot read.
    with pytest.raises(UsageError, match=f"{missing}: No such file or directory"):
        models.model_memory({"onnx": str(missing), "shape": ""}, 1)
    ok = {"cases": [{"id": "c", "kind": kind, "params": {"onnx": str(dynamic_onnx), "shape": "x=1x3x16x16"}}]}
    assert len(parse_suite(ok, "s.yaml").cases) == 1


def zoo_runtime():
    from kernels import zoo

    return zoo.RUNTIME_BYTES


def test_model_cmd_runs_a_relative_path(tmp_path):
    from tests.support import harness_cli

    import numpy as np
    from onnx import TensorProto as T, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    vi = helper.make_tensor_value_info
    helper_model(tmp_path / "net.onnx", [helper.make_node("MatMul", ["x", "w"], ["y"])], [vi("x", T.FLOAT, [2, 4])],
                  [vi("y", T.FLOAT, [2, 3])], [w])
    proc = harness_cli("model", "net.onnx", "--no-footprint", "--threads", "1", "--budget", "0.05", "--no-progress",
                       "--results", tmp_path / "results", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert str(tmp_path / "net.onnx") in proc.stdout
    assert re.search(r"parameters\s+12 \(12; by op type: MatMul 12\)", proc.stdout), proc.stdout
    # measured (suspect where the machine is busy: a timing verdict, not a failure)
    assert re.search(r"^onnxruntime\s+1\s+2\s+(ok|suspect)\s", proc.stdout, re.M), proc.stdout


def test_model_cmd_refuses_a_model_too_big_for_memory(tmp_path):
    from tests.support import harness_cli, one_line_error

    import numpy as np
    from onnx import TensorProto as T, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((8, 256, 3, 3), np.float32), "w")
    vi = helper.make_tensor_value_info
    path = helper_model(tmp_path / "big.onnx", [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                         [vi("x", T.FLOAT, [64, 256, 1024, 1024])], [vi("y", T.FLOAT, [64, 8, 1024, 1024])], [w])
    proc = harness_cli("model", path, "--results", tmp_path / "results", timeout=60)
    line = one_line_error(proc)
    activations = 64 * (256 + 8) * 1024 * 1024 * 4  # input and output of the one conv
    need = zoo_runtime() + models.WEIGHT_COPIES * 8 * 256 * 9 * 4 + models.ACTIVATION_COPIES * activations
    assert f"needs about {need / 1e9:.3g} GB" in line, line
    assert f"activation high-water {activations / 1e9:.3g} GB" in line and "more than the" in line, line
    assert "available on this machine (cgroup limit included)" in line, line
    assert proc.stdout == "" and not (tmp_path / "results").exists()
