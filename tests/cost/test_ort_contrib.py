"""ONNX Runtime's contrib ops with one formula for the graph side and the kernel side: the
quantized element-wise and pooling ops on a tiny graph ONNX Runtime runs and profiles,
FusedMatMul's transposes in a file, the fused activations, and uncosted nodes kept apart by
why. Each figure against a count made by hand or from the arrays themselves."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as T, helper, numpy_helper  # noqa: E402

from harness.cost.model import summarise_unknown  # noqa: E402
from harness.cost.onnx_graph import onnx_model_cost  # noqa: E402
from harness.cost.ort_contrib import FUSED_ACTIVATIONS, QLINEAR_OPS  # noqa: E402
from harness.cost.ort_kernels import Operands, contrib_cost, cost_profiled_nodes  # noqa: E402

MS = "com.microsoft"
OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]
SHAPE = (1, 3, 4, 6)
N = 72  # elements of SHAPE


def _scalar(name, value, dtype):
    return numpy_helper.from_array(np.array(value, dtype), name)


def _qlinear_model(output_shapes=None):
    """One node of each quantized op over int8 activations a, b (SHAPE) and b1 (1, 1, 1, 6)."""
    inits = [_scalar("sa", 0.1, np.float32), _scalar("za", 3, np.int8), _scalar("sb", 0.2, np.float32),
             _scalar("zb", -2, np.int8), _scalar("sy", 0.3, np.float32), _scalar("zy", 1, np.int8)]
    q = ["sa", "za"]
    out = ["sy", "zy"]
    nodes = [helper.make_node("QLinearAdd", ["a", *q, "b", "sb", "zb", *out], ["add"], domain=MS, name="qadd"),
             helper.make_node("QLinearMul", ["a", *q, "b1", "sb", "zb", *out], ["mul"], domain=MS, name="qmul"),
             helper.make_node("QLinearSigmoid", ["a", *q, *out], ["sig"], domain=MS, name="qsig"),
             helper.make_node("QLinearLeakyRelu", ["a", *q, *out], ["lrelu"], domain=MS, name="qlrelu", alpha=0.1),
             helper.make_node("QLinearGlobalAveragePool", ["a", *q, *out], ["gap"], domain=MS, name="qgap",
                              channels_last=0),
             helper.make_node("QLinearAveragePool", ["a", *q, *out], ["ap"], domain=MS, name="qap",
                              kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QLinearConcat", [*out, "a", *q, "b", "sb", "zb"], ["cat"], domain=MS, name="qcat",
                              axis=1),
             helper.make_node("QLinearSoftmax", ["a", *q, *out], ["sm"], domain=MS, name="qsm", axis=-1, opset=13)]
    vi = helper.make_tensor_value_info
    names = ["add", "mul", "sig", "lrelu", "gap", "ap", "cat", "sm"]
    outputs = [vi(n, T.INT8, (output_shapes or {}).get(n)) for n in names]
    graph = helper.make_graph(nodes, "q", [vi("a", T.INT8, SHAPE), vi("b", T.INT8, SHAPE), vi("b1", T.INT8, [1, 1, 1, 6])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=OPSETS)
    model.ir_version = 9
    return model


def _profile(model, tmp_path, feed):
    """ONNX Runtime runs `model` once, unoptimized, profiling: (outputs, {node: trace entry},
    the graph it saved)."""
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    nodes = {}
    for e in json.loads(open(session.end_profiling()).read()):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            args = e["args"]
            nodes[e["name"][: -len("_kernel_time")]] = {"op": args["op_name"], "input_shapes": args["input_type_shape"],
                                                       "output_shapes": args["output_type_shape"]}
    return outputs, nodes, onnx.load(str(tmp_path / "optimized.onnx"))


def test_quantized_elementwise_and_pooling_ops_against_a_hand_count(tmp_path):
    rng = np.random.default_rng(0)
    feed = {"a": rng.integers(-128, 128, SHAPE).astype(np.int8), "b": rng.integers(-128, 128, SHAPE).astype(np.int8),
            "b1": rng.integers(-128, 128, (1, 1, 1, 6)).astype(np.int8)}
    outputs, nodes, optimized = _profile(_qlinear_model(), tmp_path, feed)
    assert {n["op"] for n in nodes.values()} == set(QLINEAR_OPS)
    scale_zero = 4 + 1  # one float32 scale and one int8 zero point per quantized tensor
    a = feed["a"].nbytes
    # By hand, from the op definitions: FLOPs of the float op (dequantize/requantize not
    # counted), bytes = the int8 inputs + their scales and zero points + the int8 output.
    expect = {
        "qadd": ("residual", "flops_residual", N, a + feed["b"].nbytes + 3 * scale_zero, "add"),  # one add per element
        "qmul": ("eltwise", "flops_main", N, a + feed["b1"].nbytes + 3 * scale_zero, "mul"),  # b1 broadcast
        "qsig": ("act", "flops_act", 4 * N, a + 2 * scale_zero, "sig"),  # neg, exp, add, div
        "qlrelu": ("act", "flops_act", 2 * N, a + 2 * scale_zero, "lrelu"),  # compare, multiply
        # a channel's 4 x 6 elements: 23 adds and one divide
        "qgap": ("pool", "flops_main", 3 * (23 + 1), a + 2 * scale_zero, "gap"),
        # each output: a 2 x 2 window, 3 adds and one divide
        "qap": ("pool", "flops_main", 3 * 2 * 3 * (3 + 1), a + 2 * scale_zero, "ap"),
        "qcat": ("data", "flops_main", 0, a + feed["b"].nbytes + 3 * scale_zero, "cat"),  # a copy
        "qsm": ("softmax", "flops_main", 5 * N, a + 2 * scale_zero, "sm"),  # the cost model's softmax per element
    }
    kernels = cost_profiled_nodes(nodes, _qlinear_model(), onnx_model_cost(_qlinear_model()), optimized)
    shapes = {k: v.shape for k, v in outputs.items()}
    graph_side = {l.name: l for l in onnx_model_cost(_qlinear_model(shapes)).layers}  # the file states the shapes
    for name, (category, column, flops, read, out) in expect.items():
        for side, layer in (("kernel", kernels[name].layer), ("graph", graph_side.get(name))):
            assert layer is not None, (side, name, kernels[name].reason)
            c = layer.cost
            assert layer.category == category, (side, name)
            assert getattr(c, column) == c.flops == flops, (side, name, c)
            assert c.bytes_read == read and c.bytes_written == outputs[out].nbytes, (side, name, c)
            assert tuple(c.output_shape) == outputs[out].shape, (side, name)


def test_quantized_op_without_shapes_is_shape_not_inferred():
    # onnx's shape inference does not know com.microsoft ops: a file without their shapes.
    unknown = {u["op"]: u for u in onnx_model_cost(_qlinear_model()).unknown}
    assert unknown[f"{MS}.QLinearAdd"]["group"] == "shape not inferred"
    assert set(unknown) == {f"{MS}.{op}" for op in QLINEAR_OPS}


def _fused_matmul_file(a_shape, b_shape, y_shape, **attrs):
    vi = helper.make_tensor_value_info
    node = helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain=MS, name="fm", **attrs)
    graph = helper.make_graph([node], "g", [vi("a", T.FLOAT, a_shape), vi("b", T.FLOAT, b_shape)],
                              [vi("y", T.FLOAT, y_shape)])
    model = helper.make_model(graph, opset_imports=OPSETS)
    model.ir_version = 9
    return model


@pytest.mark.parametrize("a_shape, b_shape, attrs, batch, m, k, n", [
    ((2, 3, 5, 4), (2, 3, 6, 4), {"transB": 1}, 6, 5, 4, 6),                                 # Q.K^T
    ((2, 3, 4, 5), (2, 3, 4, 6), {"transA": 1}, 6, 5, 4, 6),
    ((5, 2, 3, 4), (2, 3, 4, 6), {"transBatchA": 1}, 6, 5, 4, 6),                         # A as (M, B, H, K)
    ((2, 3, 5, 4), (6, 2, 3, 4), {"transBatchB": 1, "transB": 1}, 6, 5, 4, 6),            # B as (N, B, H, K)
    ((4, 2, 3, 5), (2, 3, 4, 6), {"transBatchA": 1, "transA": 1, "alpha": 0.5}, 6, 5, 4, 6),
    ((4, 2, 5), (5, 2, 6), {"transBatchA": 1, "transBatchB": 1}, 2, 4, 5, 6),
])
def test_fused_matmul_in_a_file_follows_its_transposes_and_alpha(a_shape, b_shape, attrs, batch, m, k, n):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(a_shape, dtype=np.float32), rng.standard_normal(b_shape, dtype=np.float32)
    model = _fused_matmul_file(a_shape, b_shape, None, **attrs)
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"a": a, "b": b})
    (layer,) = onnx_model_cost(_fused_matmul_file(a_shape, b_shape, list(y.shape), **attrs)).layers
    c = layer.cost
    assert y.size == batch * m * n and tuple(c.output_shape) == y.shape  # the shape ONNX Runtime gives
    assert layer.category == "matmul" and c.flops_main == 2 * m * n * k * batch
    assert c.flops_bias == (batch * m * n if "alpha" in attrs else 0)  # alpha scales each output once
    assert c.bytes == 4 * (a.size + b.size + y.size)
    # The kernel side gives the same cost from the same function.
    o = Operands(["a", "b"], [a_shape, b_shape], ["float32"] * 2, [y.shape], ["float32"])
    assert contrib_cost("FusedMatMul", attrs, o) == (layer.category, c)


def _fused_conv_file(activation, **attrs):
    vi = helper.make_tensor_value_info
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = helper.make_node("FusedConv", ["x", "w"], ["y"], domain=MS, name="fc", activation=activation,
                            pads=[1, 1, 1, 1], **attrs)
    graph = helper.make_graph([node], "g", [vi("x", T.FLOAT, [1, 3, 8, 8])], [vi("y", T.FLOAT, [1, 4, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=OPSETS)
    model.ir_version = 9
    return model


def test_fused_activations_are_one_table_for_the_graph_and_the_kernels():
    out = 4 * 8 * 8
    per_element = {"HardSwish": 5, "Relu": 1, "Sigmoid": 4, "LeakyRelu": 2}  # x * relu6(x + 3) / 6: 5 ops
    for act, flops in per_element.items():
        (layer,) = onnx_model_cost(_fused_conv_file(act)).layers
        assert layer.cost.flops_act == flops * out, act
        assert layer.cost.flops_main == 2 * out * 3 * 9, act
        o = Operands(["x", "w"], [(1, 3, 8, 8), (4, 3, 3, 3)], ["float32"] * 2, [(1, 4, 8, 8)], ["float32"], {"w"})
        assert contrib_cost("FusedConv", {"activation": act}, o)[1].flops_act == flops * out, act
    assert set(per_element) <= set(FUSED_ACTIVATIONS)
    (layer,) = onnx_model_cost(_fused_conv_file("Clip", activation_params=[0.0, 6.0])).layers
    assert layer.cost.flops_act == 2 * out  # relu6
    # An activation with no formula: uncosted, with the reason naming it.
    cost = onnx_model_cost(_fused_conv_file("Softplus"))
    assert cost.layers == [] and len(cost.unknown) == 1
    assert cost.unknown[0]["group"] == "no formula" and "Softplus" in cost.unknown[0]["reason"]


def test_nodes_of_one_type_that_fail_for_different_reasons_are_split():
    vi = helper.make_tensor_value_info
    w = numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "w")
    nodes = [
        # Its shape is inferred, but no formula takes auto_pad=SAME_UPPER: "no formula".
        helper.make_node("ConvTranspose", ["x", "w"], ["t1"], name="ct_same", auto_pad="SAME_UPPER", strides=[2, 2]),
        # Its input comes from an op onnx does not know: no shape, "shape not inferred".
        helper.make_node("Mystery", ["x"], ["m"], domain="com.example", name="mystery"),
        helper.make_node("ConvTranspose", ["m", "w"], ["t2"], name="ct_unknown"),
        helper.make_node("ConvTranspose", ["m", "w"], ["t3"], name="ct_unknown2"),
    ]
    graph = helper.make_graph(nodes, "g", [vi("x", T.FLOAT, [1, 3, 5, 5])],
                              [vi(n, T.FLOAT, None) for n in ("t1", "t2", "t3")], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    cost = onnx_model_cost(model)
    groups = Counter()
    for u in cost.unknown:
        groups[u["op"], u["group"]] += u["count"]
    assert groups == Counter({("ConvTranspose", "shape not inferred"): 2, ("ConvTranspose", "no formula"): 1,
                              ("com.example.Mystery", "no formula"): 1})
    by_group = {(u["op"], u["group"]): u for u in cost.unknown}
    assert by_group["ConvTranspose", "no formula"]["output_elements"] == 2 * 10 * 10  # t1 is 1 x 2 x 10 x 10
    assert by_group["ConvTranspose", "shape not inferred"]["share_of_ops"] == 2 / 4
    # The summary takes (op, reason) keys as well as op keys.
    rows = summarise_unknown(Counter({("A", "output shape not inferred"): 1, ("A", "no cost formula for this op"): 2}),
                             Counter(), {}, 4, 0)
    assert [(r["op"], r["group"], r["count"]) for r in rows] == [("A", "no formula", 2), ("A", "shape not inferred", 1)]
