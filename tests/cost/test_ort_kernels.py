"""ONNX Runtime's kernels costed from its optimized graph: FusedMatMul's transposes from its
attributes, the original nodes each kernel came from, the uncosted ops split by why."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from harness.analysis.layers import COLUMNS, LayerTable  # noqa: E402
from harness.cost.model import summarise_unknown  # noqa: E402
from harness.cost.onnx_graph import onnx_model_cost  # noqa: E402
from harness.cost.ort_graph import GraphMatch  # noqa: E402
from harness.cost.ort_contrib import logical_operand  # noqa: E402
from harness.cost.ort_kernels import Operands, contrib_cost  # noqa: E402
from harness.presentation.model_text import format_uncosted  # noqa: E402


def fused_matmul_model(**attrs):
    a, b = (helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "ab")
    node = helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain="com.microsoft", name="fm", **attrs)
    graph = helper.make_graph([node], "g", [a, b], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


@pytest.mark.parametrize("a_shape, b_shape, attrs", [
    ((2, 3, 5, 4), (2, 3, 6, 4), {"transB": 1}),                                   # Q.K^T
    ((5, 2, 3, 4), (2, 3, 4, 6), {"transBatchA": 1}),
    ((2, 3, 5, 4), (6, 2, 3, 4), {"transBatchB": 1, "transB": 1}),                 # K as (N, B, H, K)
    ((4, 2, 3, 5), (2, 3, 4, 6), {"transBatchA": 1, "transA": 1, "alpha": 0.5}),
])
def test_fused_matmul_operands_are_what_onnxruntime_multiplies(a_shape, b_shape, attrs):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape, dtype=np.float32), rng.standard_normal(b_shape, dtype=np.float32)
    session = ort.InferenceSession(fused_matmul_model(**attrs).SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"a": a, "b": b})
    la = logical_operand(a_shape, attrs.get("transBatchA"), attrs.get("transA"))
    lb = logical_operand(b_shape, attrs.get("transBatchB"), attrs.get("transB"))
    # The logical operands, built from the arrays by numpy's own transposes, give ORT's result.
    def permuted(x, batch, trans):
        if batch:
            x = np.moveaxis(x, 0, -2)
        return np.swapaxes(x, -1, -2) if trans else x
    pa = permuted(a, attrs.get("transBatchA"), attrs.get("transA"))
    pb = permuted(b, attrs.get("transBatchB"), attrs.get("transB"))
    assert pa.shape == la and pb.shape == lb
    np.testing.assert_allclose(y, attrs.get("alpha", 1.0) * (pa @ pb), rtol=1e-5, atol=1e-5)
    o = Operands(["a", "b"], [a_shape, b_shape], ["float32"] * 2, [y.shape], ["float32"])
    category, cost = contrib_cost("FusedMatMul", attrs, o)
    # Brute force: each output element is a sum of K products.
    k = pa.shape[-1]
    assert category == "matmul" and cost.flops_main == 2 * y.size * k
    assert cost.flops_bias == (y.size if attrs.get("alpha", 1.0) != 1.0 else 0)  # alpha scales each output once
    assert cost.bytes == 4 * (a.size + b.size + y.size)


def test_gemm_without_an_initializer_keeps_its_bias():
    o = Operands(["x", "w", "c"], [(8, 16), (32, 16), (32,)], ["float32"] * 3, [(8, 32)], ["float32"], consts={"c"})
    category, cost = contrib_cost("Gemm", {"transB": 1}, o)
    assert category == "matmul"
    assert cost.flops_main == 2 * 8 * 16 * 32 and cost.flops_bias == 8 * 32 and cost.params == 32
    o.consts.add("w")
    category, cost = contrib_cost("Gemm", {"transB": 1}, o)
    assert category == "linear" and cost.params == 16 * 32 + 32 and cost.flops_bias == 8 * 32


def test_fused_conv_counts_its_activation_and_residual():
    x, w, y = (1, 8, 10, 10), (16, 4, 3, 3), (1, 16, 8, 8)  # groups 2
    o = Operands(["x", "w", "b", "z"], [x, w, (16,), y], ["float32"] * 4, [y], ["float32"])
    _, cost = contrib_cost("FusedConv", {"activation": "Clip", "activation_params": [0.0, 6.0]}, o)
    out = 16 * 8 * 8
    assert cost.flops_main == 2 * out * 4 * 9 and cost.flops_bias == out and cost.flops_residual == out
    assert cost.flops_act == 2 * out  # relu6: a max and a min per element


def test_attention_cost_counts_projection_scores_softmax_and_values():
    b, s, d, heads = 2, 10, 64, 4
    o = Operands(["x", "w", "bias"], [(b, s, d), (d, 3 * d), (3 * d,)], ["float32"] * 3, [(b, s, d)], ["float32"])
    category, cost = contrib_cost("Attention", {"num_heads": heads}, o)
    head = d // heads
    proj = b * s * d * 3 * d
    per_head = b * heads * s * s * head  # Q.K^T and A.V each
    assert category == "attention" and cost.macs == proj + 2 * per_head
    assert cost.flops_main == 2 * (proj + 2 * per_head) + 6 * b * heads * s * s  # softmax 5 + scale 1 per score
    assert cost.flops_bias == b * s * 3 * d and cost.params == d * 3 * d + 3 * d


def test_nchwc_chain_matches_every_kernel_to_its_original_nodes(tmp_path):
    c = 32
    rng = np.random.default_rng(0)

    def init(name, *shape):
        return onnx.numpy_helper.from_array(rng.uniform(0.5, 1.5, shape).astype(np.float32), name)

    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("BatchNormalization", ["r1", "g", "be", "mu", "var"], ["bn"], name="bn"),
             helper.make_node("Relu", ["bn"], ["r2"], name="relu2"),
             helper.make_node("Conv", ["r2", "w2"], ["c2"], name="conv2"),
             helper.make_node("Add", ["c2", "r1"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu3")]
    inits = [init("w1", c, c, 3, 3), init("b1", c), init("w2", c, c, 1, 1), init("g", c), init("be", c),
             init("mu", c), init("var", c)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "opt.onnx"))
    kernels = {n.name: n for n in optimized.graph.node}
    if not any(n.domain == "com.microsoft.nchwc" for n in kernels.values()):
        pytest.skip("ONNX Runtime chose no NCHWc kernels on this CPU")
    found = GraphMatch(model, optimized).source_nodes()
    by_sources = {tuple(v): k for k, v in found.items()}
    # Each original node is covered by exactly one kernel, the reorders by none.
    covered = Counter(n for v in found.values() for n in v)
    assert covered == Counter(n.name for n in nodes)
    assert all(found[k] == [] for k, n in kernels.items() if n.op_type.startswith("Reorder"))
    assert ("conv1", "relu1") in by_sources and ("bn", "relu2") in by_sources
    assert ("conv2", "add", "relu3") in by_sources


def test_unknown_ops_are_split_by_why():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])
    nodes = [helper.make_node("Det", ["x"], ["d"], name="det"),
             helper.make_node("Mystery", ["x"], ["m"], domain="com.example", name="mystery"),
             helper.make_node("Relu", ["m"], ["r"], name="relu")]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("d", "r")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], outs),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    unknown = {u["op"]: u for u in onnx_model_cost(model).unknown}
    assert unknown["Det"]["group"] == "no formula"
    assert unknown["Relu"]["group"] == "shape not inferred"  # Relu has a formula; its input had no shape
    # The old fields stay, for the metrics text.
    assert set(summarise_unknown(Counter({"A": 1}), Counter({"A": 4}), {}, 2, 8)[0]) >= {
        "op", "count", "output_elements", "share_of_ops", "share_of_output_elements", "reason", "group"}


def test_the_layer_table_gives_each_uncosted_group_its_share_of_the_time():
    rows = [{"name": "a", "op": "Conv", "time_s": 6.0, "flops": 10.0, "uncosted": None},
            {"name": "b", "op": "LRN", "time_s": 2.0, "flops": None, "uncosted": "no formula"},
            {"name": "c", "op": "LRN", "time_s": 1.0, "flops": None, "uncosted": "no formula"},
            {"name": "d", "op": "Relu", "time_s": 1.0, "flops": None, "uncosted": "shape not inferred"}]
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    table = LayerTable(case=None, layers=frame)
    groups = {g["group"]: g for g in table.uncosted_groups()}
    assert groups["no formula"]["ops"] == {"LRN": 2} and groups["no formula"]["time_share"] == pytest.approx(0.3)
    assert groups["shape not inferred"]["time_share"] == pytest.approx(0.1)
    text = format_uncosted(table)
    assert "no formula: LRN x2 (30% of the layer time)" in text and "shape not inferred: Relu x1 (10%" in text
