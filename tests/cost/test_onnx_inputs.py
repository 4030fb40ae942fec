"""An ONNX file's weights wherever they live, the feed its inputs need, and its memory estimate,
on graphs built here with onnx.helper; each figure against a count made by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from harness.cost.onnx_graph import load_onnx, onnx_model_cost  # noqa: E402
from harness.cost.onnx_weights import (activation_peak, graph_constants, infer_onnx, onnx_input_specs,  # noqa: E402
                                       onnx_memory_estimate, onnx_params, weights_bytes)

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "t", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def _const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name))


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def test_matmul_weight_from_a_constant_node():
    w = np.ones((16, 8), np.float32)
    m = _model([_const("w", w), helper.make_node("MatMul", ["x", "w"], ["y"])], [_vi("x", F, [2, 16])],
               [_vi("y", F, [2, 8])])
    p = onnx_params(m)
    assert p.total == 16 * 8 and p.by_op_type == {"MatMul": 128} and p.bytes == 128 * 4
    cost = onnx_model_cost(m)
    assert cost.params == 128 and cost.params_by_op == {"MatMul": 128}


def test_gemm_weights_through_a_constant_and_a_transpose_count_once():
    # Gemm 1: B a Constant, C an initializer; Gemm 2: B = Transpose(initializer) shared with a
    # second reader, so the initializer counts once; the int64 shape tensor and the scalar never.
    b1, c1 = np.ones((6, 4), np.float32), np.ones((4,), np.float32)
    wt = numpy_helper.from_array(np.ones((3, 4), np.float32), "wt")
    c2 = numpy_helper.from_array(np.ones((3,), np.float32), "c2")
    eps = numpy_helper.from_array(np.array(1e-5, np.float32), "eps")
    shape = numpy_helper.from_array(np.array([2, 3], np.int64), "shape")
    nodes = [_const("b1", b1), helper.make_node("Gemm", ["x", "b1", "c1"], ["h"]),
             helper.make_node("Transpose", ["wt"], ["b2"], perm=[1, 0]),
             helper.make_node("Gemm", ["h", "b2", "c2"], ["g"]),
             helper.make_node("Add", ["g", "eps"], ["g2"]),
             helper.make_node("Reshape", ["g2", "shape"], ["y"]),
             helper.make_node("MatMul", ["h", "b2"], ["y2"])]
    m = _model(nodes, [_vi("x", F, [2, 6])], [_vi("y", F, [2, 3]), _vi("y2", F, [2, 3])],
               [numpy_helper.from_array(c1, "c1"), wt, c2, eps, shape])
    p = onnx_params(m)
    by_hand = 6 * 4 + 4 + 3 * 4 + 3
    assert p.total == by_hand and p.by_op_type == {"Gemm": by_hand}
    consts = graph_constants(m)
    assert {"b1", "c1", "b2", "wt", "c2", "eps", "shape"} <= set(consts.roots) and "h" not in consts
    assert consts.value("b2").shape == (4, 3)  # Transpose of a constant, computed
    assert onnx_model_cost(m).params == by_hand


def test_constant_of_shape_weights():
    # A weight made at run time: ConstantOfShape over a constant shape, through a Cast.
    shape = np.array([32, 10], np.int64)
    nodes = [_const("s", shape),
             helper.make_node("ConstantOfShape", ["s"], ["w16"],
                              value=numpy_helper.from_array(np.array([0.5], np.float16))),
             helper.make_node("Cast", ["w16"], ["w"], to=F),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    m = _model(nodes, [_vi("x", F, [4, 32])], [_vi("y", F, [4, 10])])
    p = onnx_params(m)
    assert p.total == 320 and p.by_op_type == {"MatMul": 320} and p.bytes == 320 * 2  # float16 as made
    consts = graph_constants(m)
    assert np.array_equal(consts.value("w"), np.full((32, 10), 0.5, np.float32))
    assert weights_bytes(consts) == 2 * 8 + 320 * 2  # the shape tensor, then the float16 tensor


def test_quantized_weights_count_as_int8_with_their_bias():
    w = numpy_helper.from_array(np.ones((5, 3, 1, 1), np.int8), "w")
    bias = numpy_helper.from_array(np.ones((5,), np.int32), "bias")
    scalars = [numpy_helper.from_array(np.array(v, t), n) for n, v, t in
               [("xs", 0.1, np.float32), ("xz", 0, np.uint8), ("ws", 0.1, np.float32), ("wz", 0, np.int8),
                ("ys", 0.1, np.float32), ("yz", 0, np.uint8)]]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "bias"], ["y"])
    m = _model([node], [_vi("x", TensorProto.UINT8, [1, 3, 4, 4])], [_vi("y", TensorProto.UINT8, [1, 5, 4, 4])],
               [w, bias, *scalars])
    p = onnx_params(m)
    assert p.total == 15 + 5 and p.bytes == 15 + 5 * 4  # scales and zero points are scalars, not weights


def test_external_data_counted_from_dims(tmp_path):
    w = np.arange(64 * 32, dtype=np.float32).reshape(64, 32)
    b = np.zeros((32,), np.float32)
    m = _model([helper.make_node("Gemm", ["x", "w", "b"], ["y"])], [_vi("x", F, [1, 64])], [_vi("y", F, [1, 32])],
               [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    path = tmp_path / "ext.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.bin",
                    size_threshold=0)
    assert path.stat().st_size < 1000  # the weights are in ext.bin, not in the .onnx file
    lazy = load_onnx(path, load_weights=False)
    stored = onnx.load(str(path), load_external_data=False)
    lengths = [int(e.value) for t in stored.graph.initializer for e in t.external_data if e.key == "length"]
    p = onnx_params(lazy)
    assert p.total == 64 * 32 + 32 and p.by_op_type == {"Gemm": 64 * 32 + 32}
    assert weights_bytes(graph_constants(lazy)) == sum(lengths) == w.nbytes + b.nbytes
    assert onnx_model_cost(path).params == 64 * 32 + 32


def _external_model(tmp_path):
    """x (2 x 64) reshaped by a stored shape tensor, times a 64 x 32 weight; every tensor in
    its own external file."""
    w = numpy_helper.from_array(np.ones((64, 96), np.float32), "w")
    shape = numpy_helper.from_array(np.array([2, 64], np.int64), "shape")
    m = _model([helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["y"])],
               [_vi("x", F, [2, 8, 8])], [_vi("y", F, None)], [w, shape])
    path = tmp_path / "ext.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)
    assert (tmp_path / "w").stat().st_size == 64 * 96 * 4 and (tmp_path / "shape").exists()
    return path


def test_cost_reads_external_weights_dims_not_their_data(tmp_path, monkeypatch):
    from onnx import external_data_helper

    path = _external_model(tmp_path)
    loaded, real = [], external_data_helper.load_external_data_for_tensor

    def spy(tensor, base_dir):
        loaded.append(tensor.name)
        return real(tensor, base_dir)

    monkeypatch.setattr(external_data_helper, "load_external_data_for_tensor", spy)
    cost = onnx_model_cost(path)
    assert loaded == ["shape"]  # the small shape tensor the Reshape needs; never the weight
    # Parameters and FLOPs from the weight's dims: 64 x 96 elements (above SMALL_ELEMENTS), 2 x 64 x 96 multiply-adds.
    assert cost.params == cost.params_by_op["MatMul"] == 64 * 96
    assert cost.flops == 2 * 2 * 64 * 96 and cost.unknown == []
    assert [l.cost.output_shape for l in cost.layers if l.module == "MatMul"] == [(2, 96)]
    lazy = load_onnx(path, load_weights=False)
    assert weights_bytes(graph_constants(lazy)) == 64 * 96 * 4 + 2 * 8


def test_an_external_weights_file_missing_or_short_is_a_usage_error(tmp_path):
    from harness.core.errors import UsageError

    path = _external_model(tmp_path)
    with open(tmp_path / "w", "r+b") as f:
        f.truncate(100)
    with pytest.raises(UsageError, match=r"ext.onnx: weight 'w' is stored in 'w' up to byte 24576, but that file "
                                         r"holds 100 bytes"):
        onnx_model_cost(path)
    (tmp_path / "w").unlink()
    with pytest.raises(UsageError, match=r"ext.onnx: weight 'w' is stored in 'w', which cannot be read "
                                         r"\(No such file or directory\)"):
        onnx_model_cost(path)


def test_int64_ids_into_a_large_table_and_a_bool_mask():
    table = numpy_helper.from_array(np.zeros((50000, 16), np.float32), "table")
    nodes = [helper.make_node("Cast", ["ids"], ["ids32"], to=TensorProto.INT32),
             helper.make_node("Gather", ["table", "ids32"], ["emb"]),
             helper.make_node("Gather", ["pos_table", "pos"], ["pemb"]),
             helper.make_node("Add", ["emb", "pemb"], ["e"]),
             helper.make_node("Where", ["mask", "e", "zero"], ["y"])]
    pos_table = numpy_helper.from_array(np.zeros((16, 16), np.float32), "pos_table")
    zero = numpy_helper.from_array(np.array(0, np.float32), "zero")
    m = _model(nodes, [_vi("ids", TensorProto.INT64, [1, 16]), _vi("pos", TensorProto.INT64, [1, 16]),
                       _vi("mask", TensorProto.BOOL, [1, 16, 1]), _vi("count", TensorProto.INT64, [1])],
               [_vi("y", F, [1, 16, 16])], [table, pos_table, zero])
    specs = {s.name: s for s in onnx_input_specs(m, {"ids": (1, 16), "pos": (1, 16), "mask": (1, 16, 1),
                                                     "count": (1,)})}
    assert (specs["ids"].dtype.name, specs["ids"].low, specs["ids"].high) == ("int64", 0, 50000)
    assert (specs["pos"].low, specs["pos"].high) == (0, 16)
    assert specs["mask"].dtype.name == "bool" and (specs["mask"].low, specs["mask"].high) == (1, 2)
    assert (specs["count"].low, specs["count"].high) == (1, 2)  # unused integer: ones
    assert onnx_params(m).by_op_type == {"Gather": 50000 * 16 + 16 * 16}


def test_index_range_is_the_smallest_table():
    nodes = [helper.make_node("Gather", ["t1", "ids"], ["a"]), helper.make_node("Gather", ["t2", "ids"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    m = _model(nodes, [_vi("ids", TensorProto.INT32, [4])], [_vi("y", F, [4, 2])],
               [numpy_helper.from_array(np.zeros((100, 2), np.float32), "t1"),
                numpy_helper.from_array(np.zeros((7, 2), np.float32), "t2")])
    (spec,) = onnx_input_specs(m, {"ids": (4,)})
    assert (spec.dtype.name, spec.low, spec.high) == ("int32", 0, 7)


def test_float_types_are_kept():
    for elem, name in [(TensorProto.FLOAT16, "float16"), (TensorProto.BFLOAT16, "bfloat16"),
                       (TensorProto.DOUBLE, "float64")]:
        m = _model([helper.make_node("Cast", ["x"], ["y"], to=F)], [_vi("x", elem, [2, 3])], [_vi("y", F, [2, 3])])
        (spec,) = onnx_input_specs(m, {"x": (2, 3)})
        assert spec.dtype.name == name and spec.low is None and spec.shape == (2, 3)


@pytest.mark.parametrize("elem, dtype, low, high", [(TensorProto.INT8, "int8", -128, 128),
                                                    (TensorProto.UINT8, "uint8", 0, 256)])
def test_8bit_input_is_fed_its_full_range(tmp_path, elem, dtype, low, high):
    from onnx_models import quantized_input_onnx

    m = load_onnx(quantized_input_onnx(tmp_path / "q.onnx", elem))
    (spec,) = onnx_input_specs(m, {"q": (2, 5)})
    # Quantized data: every value of the type is valid (numpy's integers(low, high) excludes high).
    assert (spec.name, spec.shape, spec.dtype.name, spec.low, spec.high) == ("q", (2, 5), dtype, low, high)
    values = np.random.default_rng(0).integers(spec.low, spec.high, size=(1000,)).astype(spec.dtype)
    assert values.dtype.name == dtype and values.min() >= np.iinfo(dtype).min and values.max() <= np.iinfo(dtype).max
    assert values.min() < low + 10 and values.max() > high - 10  # the range is used, not one value


def test_string_input_is_a_usage_error():
    from harness.core.errors import UsageError

    m = _model([helper.make_node("Identity", ["x"], ["y"])], [_vi("x", TensorProto.STRING, [2])],
               [_vi("y", TensorProto.STRING, [2])])
    with pytest.raises(UsageError, match="'x' is of type"):
        onnx_input_specs(m, {"x": (2,)})


def _brute_force_peak(model):
    """Live bytes at each node, by asking of every value at every step whether it has been made
    and is still needed: the tensors a node reads and writes are live while it runs."""
    inferred, _ = infer_onnx(model, {})
    nodes = list(inferred.graph.node)
    sizes = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        t = vi.type.tensor_type
        sizes[vi.name] = math.prod(d.dim_value for d in t.shape.dim) * helper.tensor_dtype_to_np_dtype(
            t.elem_type).itemsize
    inits = {i.name for i in inferred.graph.initializer}
    outputs = {o.name for o in inferred.graph.output}
    best = 0
    for step in range(len(nodes)):
        live = 0
        for name, size in sizes.items():
            if name in inits:
                continue
            made = name in {i.name for i in inferred.graph.input} or any(
                name in n.output for n in nodes[:step + 1])
            needed = name in outputs or any(name in n.input or name in n.output for n in nodes[step:])
            live += size if made and needed else 0
        best = max(best, live)
    return best


def test_activation_peak_against_a_hand_count_and_brute_force():
    # x (4000 B) -> a = Relu(x) -> b = Relu(a) -> y = Add(a, b): at the Add a, b and y are live.
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    m = _model(nodes, [_vi("x", F, [1000])], [_vi("y", F, [1000])])
    inferred, _ = infer_onnx(m, {})
    assert activation_peak(inferred)[0] == 3 * 4000 == _brute_force_peak(m)
    # A wider graph: a branch kept alive to the end beside a chain that grows, a weight not counted.
    w = numpy_helper.from_array(np.ones((64, 256), np.float32), "w")
    nodes = [helper.make_node("Relu", ["x"], ["skip"]), helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Relu", ["h"], ["h2"]), helper.make_node("ReduceMean", ["h2"], ["r"], keepdims=1),
             helper.make_node("Add", ["skip", "r"], ["y"])]
    m = _model(nodes, [_vi("x", F, [8, 64])], [_vi("y", F, [8, 64])], [w])
    inferred, _ = infer_onnx(m, {})
    x, h = 8 * 64 * 4, 8 * 256 * 4
    # At the Relu on h: skip (x's size), h and h2; x was last read by the MatMul before it.
    assert activation_peak(inferred)[0] == x + h + h == _brute_force_peak(m)
    est = onnx_memory_estimate(m, {"x": (8, 64)})
    assert est.weights_bytes == 64 * 256 * 4 and est.activation_peak_bytes == x + h + h
    assert onnx_model_cost(m).activation_peak_bytes == est.activation_peak_bytes


def test_memory_estimate_of_a_conv_too_big_needs_no_data():
    w = numpy_helper.from_array(np.zeros((8, 256, 3, 3), np.float32), "w")
    m = _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
               [_vi("x", F, ["N", 256, 1024, 1024])], [_vi("y", F, ["N", 8, 1024, 1024])], [w])
    est = onnx_memory_estimate(m, {"x": (64, 256, 1024, 1024)})
    assert est.weights_bytes == 8 * 256 * 9 * 4
    assert est.activation_peak_bytes == 64 * (256 + 8) * 1024 * 1024 * 4  # input and output live together
