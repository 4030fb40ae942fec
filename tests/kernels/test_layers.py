"""Per-layer profiling as case kinds: the torch walk and ONNX Runtime's profiler, each layer
with its own samples and cost, run in a worker like every measurement."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from harness.analysis.layers import layer_tables  # noqa: E402
from harness.analysis.placement import placer  # noqa: E402
from harness.analysis.snapshot import Snapshot, SnapshotCeiling  # noqa: E402
from harness.core.registry import get  # noqa: E402
from harness.core.runner import run_cases  # noqa: E402
from harness.core.store import RunStore  # noqa: E402
from harness.core.suite import parse_suite  # noqa: E402
from harness.core.workload import Context  # noqa: E402
from harness.cost.ort_kernels import trace_cost  # noqa: E402
from harness.presentation.model_text import format_layer_table  # noqa: E402
from kernels import layers  # noqa: E402
from onnx_models import helper_model, typed_inputs_onnx  # noqa: E402

CTX = Context("test", 1, [0])


def _params(kind, **given):
    params, problems = get(kind).resolve_params(given)
    assert not problems, problems
    return params


def test_torch_layers_join_cost_and_time():
    w = layers.torch_layers(_params("layers.torch", model="mobilenet_v2", image=64, runs=3, warmup=1), CTX)
    w.fn()
    profiled = w.layers()
    assert len(profiled.layers) > 100 and profiled.runs == 3
    assert all(len(lt.samples) == 3 and min(lt.samples) > 0 for lt in profiled.layers)
    assert all(lt.cost is not None for lt in profiled.layers)  # every op costed
    ops = [lt.op for lt in profiled.layers]
    # 52 convs (17 of them depthwise) and the 10 residual adds, found as layers.
    assert ops.count("conv2d") == 52
    assert sum(lt.info.get("category") == "residual" for lt in profiled.layers) == 10
    assert profiled.whole_profiled_s > 0
    assert sum(lt.cost.flops for lt in profiled.layers) == w.flops
    # Each call's tensor arguments: the stem conv's input and weight, a depthwise conv's groups
    # seen in its weight (1 input channel per group), the residual add's two operands.
    by_name = {lt.name: lt for lt in profiled.layers}
    assert by_name["features.0.0"].info["input_shapes"] == [[1, 3, 64, 64], [32, 3, 3, 3]]
    assert by_name["features.1.conv.0.0"].info["input_shapes"] == [[1, 32, 32, 32], [32, 1, 3, 3]]
    add = next(lt for lt in profiled.layers if lt.info.get("category") == "residual")
    assert len(add.info["input_shapes"]) == 2 and add.info["input_shapes"][0] == add.info["input_shapes"][1]
    assert all("input_shapes" in lt.info for lt in profiled.layers)


@pytest.mark.parametrize("level", ["disable", "all"])
def test_onnxruntime_layers_on_a_tiny_model(dynamic_onnx, level):
    w = layers.ort_layers(_params("layers.onnxruntime", onnx=str(dynamic_onnx), shape="x=2x3x16x16", opt_level=level,
                                      runs=4, warmup=2), CTX)
    w.fn()
    profiled = w.layers()
    convs = [lt for lt in profiled.layers if lt.cost is not None and lt.cost.breakdown and lt.op in ("Conv", "FusedConv")]
    assert len(profiled.layers) >= 3 and all(len(lt.samples) == 4 for lt in profiled.layers)
    assert len(convs) == 1
    # With the bias; at level all ONNX Runtime fuses the relu into the conv: the cost is the model's.
    extra = 2 * 4 * 16 * 16 if level == "all" else 0
    assert int(convs[0].cost.flops) == 2 * 4 * 16 * 16 * 27 * 2 + 2 * 4 * 16 * 16 + extra
    assert convs[0].info["cost_source"]
    # The trace's input shapes: X, W and B as the kernel got them. At level all ONNX Runtime's
    # NCHWc conv pads the output channels to its block (8 with AVX2, 16 with AVX-512).
    x, w, b = convs[0].info["input_shapes"][:3]
    assert x == [2, 3, 16, 16] and w[1:] == [3, 3, 3] and b == [w[0]]
    assert w[0] == 4 if level == "disable" else w[0] >= 4
    assert all("input_shapes" in lt.info for lt in profiled.layers)


def test_parse_ort_profile_drops_warmup_and_splits_runs():
    def run(ts, dur):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}

    def node(name, ts, dur, op="Conv"):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
                "args": {"op_name": op, "provider": "CPUExecutionProvider",
                         "input_type_shape": [{"float": [1, 3, 8, 8]}, {"float": [4, 3, 3, 3]}],
                         "output_type_shape": [{"float": [1, 4, 8, 8]}]}}

    events = [run(0, 100), node("a", 10, 90),  # warm-up run: dropped
              run(200, 100), node("a", 210, 40), node("b", 260, 30, "Relu"),
              run(400, 100), node("a", 410, 60), node("b", 470, 20, "Relu"),
              {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 5}]
    nodes, whole = layers.parse_ort_profile(events, warmup=1)
    assert whole == pytest.approx([100e-6, 100e-6])
    assert nodes["a"]["durations"] == pytest.approx([40e-6, 60e-6])
    assert nodes["b"]["op"] == "Relu"
    found = trace_cost("Conv", nodes["a"]["input_shapes"], nodes["a"]["output_shapes"])
    assert found[0] == "conv" and found[1].macs == 4 * 8 * 8 * 27


def test_a_layers_case_runs_in_a_worker_and_writes_placed_layer_records(tmp_path, dynamic_onnx):
    os.environ.setdefault("HARNESS_ONNX_CACHE", str(tmp_path / "cache"))
    suite = parse_suite(yaml.safe_load(f"""
defaults: {{budget: 0.05, min_samples: 3, warmup_max: 0.1, timeout: 300}}
cases:
  - {{id: tiny, kind: layers.onnxruntime, params: {{onnx: {dynamic_onnx}, shape: x=2x3x16x16, runs: 5, warmup: 1}}}}
  - {{id: after, kind: diagnostic.empty}}
"""), "test.yaml")
    snap = Snapshot(ceilings=[SnapshotCeiling("compute", "avx2", 1e11, "float32", 1),
                              SnapshotCeiling("bandwidth", "DRAM", 1e10, None, 1)])
    store = RunStore.create(tmp_path, "dev", "test")
    try:
        records = run_cases(suite.cases, store, enrich=placer(snap))
    finally:
        store.close()
    case = next(r for r in records if r.kind == "layers.onnxruntime")
    children = [r for r in records if r.kind == "layer.onnxruntime"]
    assert case.measured and case.info["layers"]["count"] == len(children) >= 3
    assert all(r.info["parent_case"] == case.case_id and r.timing.n == 5 for r in children)
    costed = [r for r in children if r.cost is not None]
    assert costed and all(r.roofline is not None and r.roofline.efficiency > 0 for r in costed)
    assert any(r.case_id == "after[t=1]" and r.measured for r in records)  # the run went on after it
    (table,) = layer_tables(records)
    assert table.sum_layers_s > 0 and table.whole_s > 0 and math.isfinite(table.overhead)
    assert table.layers["time_share"].sum() == pytest.approx(1.0)
    text = format_layer_table(table, top=5)
    assert "sum of layers" in text and "bottlenecks:" in text


def _attention_onnx(path):
    """Q.K^T with K stored as (N, B, H, K) and A.V with V as (N, B, H, K): ONNX Runtime fuses
    each MatMul with its Transpose into a FusedMatMul (transB, transBatchB)."""
    from onnx import TensorProto, helper, save

    b, h, m, n, k = 2, 4, 16, 24, 8
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[1, 2, 3, 0], name="k_t"),
             helper.make_node("MatMul", ["q", "kt"], ["s"], name="qk"),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1, name="sm"),
             helper.make_node("Transpose", ["v"], ["vt"], perm=[1, 2, 0, 3], name="v_t"),
             helper.make_node("MatMul", ["p", "vt"], ["y"], name="av")]
    graph = helper.make_graph(nodes, "attn", [vi("q", TensorProto.FLOAT, [b, h, m, k]),
                                              vi("k", TensorProto.FLOAT, [n, b, h, k]),
                                              vi("v", TensorProto.FLOAT, [n, b, h, k])],
                              [vi("y", TensorProto.FLOAT, [b, h, m, k])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return b, h, m, n, k


def test_fused_matmuls_costed_from_their_attributes_and_named_after_their_nodes(tmp_path):
    from kernels.ort import create_session

    b, h, m, n, k = _attention_onnx(tmp_path / "attn.onnx")
    built = create_session(tmp_path / "attn.onnx", 1, [0], "all", keep_optimized=True)
    fused = [nd for nd in built.optimized_model.graph.node if nd.op_type == "FusedMatMul"]
    assert len(fused) == 2 and all({a.name: a.i for a in nd.attribute}["transBatchB"] == 1 for nd in fused)
    w = layers.ort_layers(_params("layers.onnxruntime", onnx=str(tmp_path / "attn.onnx"), runs=2, warmup=1), CTX)
    rows = [lt for lt in w.layers().layers if lt.op == "FusedMatMul"]
    by_source = {tuple(lt.info["source_nodes"]): lt for lt in rows}
    qk, av = by_source[("k_t", "qk")], by_source[("v_t", "av")]
    # Q.K^T: B*H*M*N scores, each a K-long dot product; A.V: B*H*M*K outputs, each N long.
    assert qk.cost.flops == 2 * (b * h * m * n) * k
    assert av.cost.flops == 2 * (b * h * m * k) * n
    assert qk.cost.bytes == 4 * (b * h * m * k + n * b * h * k + b * h * m * n)


def _conv_relu_onnx(path, c=32):
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((c, c, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "cr", [vi("x", TensorProto.FLOAT, [1, c, 8, 8])],
                              [vi("y", TensorProto.FLOAT, [1, c, 8, 8])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("level", ["extended", "all"])
def test_a_fused_conv_counts_its_activation_and_reorders_are_data_movement(tmp_path, level):
    c = 32
    _conv_relu_onnx(tmp_path / "cr.onnx", c)
    w = layers.ort_layers(_params("layers.onnxruntime", onnx=str(tmp_path / "cr.onnx"), opt_level=level,
                                  runs=2, warmup=1), CTX)
    profiled = w.layers().layers
    (conv,) = [lt for lt in profiled if lt.op in ("Conv", "FusedConv")]
    out = c * 8 * 8
    assert conv.info["source_nodes"] == ["conv", "relu"]
    assert conv.cost.breakdown == {"flops_main": 2 * out * c * 9, "flops_bias": out, "flops_norm": 0,
                                   "flops_act": out, "flops_residual": 0}
    reorders = [lt for lt in profiled if lt.op.startswith("Reorder")]
    if level == "extended":
        assert conv.op == "FusedConv" and not reorders
    if conv.info["kernel"] == "com.microsoft.nchwc:Conv":  # level all on a CPU with NCHWc kernels
        assert sorted(lt.op for lt in reorders) == ["ReorderInput", "ReorderOutput"]
    for lt in reorders:  # NCHW <-> NCHWc: read once, written once, named as such
        assert lt.name.startswith(lt.op) and lt.info["category"] == "data" and lt.cost.flops == 0
        assert lt.cost.bytes == 2 * 4 * out and lt.info["source_nodes"] == []


def test_layers_feed_every_input_its_own_type(tmp_path):
    # int64 ids, a bool mask, float16 and bfloat16 inputs (bfloat16 goes in as an OrtValue).
    path = typed_inputs_onnx(tmp_path / "typed.onnx")
    w = layers.ort_layers(_params("layers.onnxruntime", onnx=str(path), opt_level="all", runs=2, warmup=1), CTX)
    w.fn()
    profiled = w.layers()
    ops = {lt.op for lt in profiled.layers}
    assert {"Gather", "Where", "ArgMax"} <= ops, ops
    gather = next(lt for lt in profiled.layers if lt.op == "Gather")
    # the rows it gathers and the ids read, the rows written: not the 3.2 MB table
    assert gather.cost is not None and gather.cost.bytes == 2 * 8 * 16 * 4 + 2 * 8 * 8 + 2 * 8 * 16 * 4


def test_layers_of_a_graph_whose_first_input_is_a_scalar(tmp_path):
    from onnx_models import scalar_first_onnx

    path = scalar_first_onnx(tmp_path / "s.onnx")
    w = layers.ort_layers(_params("layers.onnxruntime", onnx=str(path), opt_level="disable", runs=2, warmup=1), CTX)
    assert w.info["batch"] == 3 and w.info["input_shapes"] == {"alpha": [], "x": [3, 4]}
    w.fn()
    (mul,) = w.layers().layers
    assert mul.op == "Mul" and mul.cost.flops == 3 * 4  # one multiply per element of x
    w = layers.ort_layers(_params("layers.onnxruntime", onnx=str(scalar_first_onnx(tmp_path / "s0.onnx", True)),
                                  runs=1, warmup=0), CTX)
    assert w.info["batch"] is None  # every input a scalar: no batch


def _densenet_block_onnx(path, c=32):
    """DenseNet's pattern as the onnx package's model-zoo files export it: conv, concat, then a
    BatchNorm followed by its scale and shift as Mul and Add by constants, relu, conv."""
    from onnx import TensorProto as T, helper, numpy_helper

    rng = np.random.default_rng(0)
    shapes = {"w0": (c, c, 3, 3), "w1": (c, c, 3, 3), "scale": (2 * c,), "bias": (2 * c,), "mean": (2 * c,), "var": (2 * c,),
              "mul": (2 * c, 1, 1), "add": (2 * c, 1, 1), "w2": (c, 2 * c, 1, 1)}
    inits = [numpy_helper.from_array((np.abs(rng.standard_normal(s)) + 0.5 if n == "var" else
                                      rng.standard_normal(s) * 0.1).astype(np.float32), n) for n, s in shapes.items()]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["x0"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("Conv", ["x0", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Concat", ["x0", "a"], ["cat"], axis=1, name="concat"),
             helper.make_node("BatchNormalization", ["cat", "scale", "bias", "mean", "var"], ["bn"], name="bn"),
             helper.make_node("Mul", ["bn", "mul"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "add"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2")]
    vi = helper.make_tensor_value_info
    return helper_model(path, nodes, [vi("x", T.FLOAT, [1, c, 8, 8])], [vi("y", T.FLOAT, [1, c, 8, 8])], inits)


def test_batchnorm_and_scale_rewritten_as_nchwc_convs_keep_their_names(tmp_path):
    path = _densenet_block_onnx(tmp_path / "dense.onnx")
    w = layers.ort_layers(_params("layers.onnxruntime", onnx=str(path), opt_level="all", runs=2, warmup=1), CTX)
    w.fn()
    profiled = w.layers()
    kernels = {lt.name: lt for lt in profiled.layers}
    if not any(lt.info.get("kernel", "").startswith("com.microsoft.nchwc") for lt in profiled.layers):
        pytest.skip("ONNX Runtime did not use NCHWc kernels on this CPU")
    convs = [lt for lt in profiled.layers if lt.info.get("category") == "conv"]
    assert sorted(n for lt in convs for n in lt.info["source_nodes"] if n.startswith("conv")) == \
        ["conv0", "conv1", "conv2"]
    assert all(lt.info["source_nodes"] for lt in convs)  # each conv names where it came from
    # ORT's kernels for the BatchNorm (and the scale it could not fold) are not "conv" rows.
    rest = [lt for lt in profiled.layers if lt.info.get("kernel") == "com.microsoft.nchwc:Conv"
            and lt.info.get("category") != "conv"]
    assert rest, "ONNX Runtime kept the BatchNorm as its own kernel: the model no longer tests the rewrite"
    assert {lt.op: lt.info["source_nodes"] for lt in rest} == {"BatchNormalization": ["bn"], "Mul": ["mul"]}, \
        {n: k.info["source_nodes"] for n, k in kernels.items()}
    assert "concat" not in {n for lt in convs + rest for n in lt.info["source_nodes"]}
