"""The formulas of ops_data, ops_norm and ops_attention, each against an independent count
(a loop that does the work and counts it, or numpy's own shapes and byte sizes), then the
same ops as ONNX nodes (onnx.helper graphs through onnx_model_cost) and as torch calls
(the torch walk), and the categories: Gather bytes, Sum as a residual, a decomposed
BatchNorm as norm, a Gemm whose weight is not an initializer."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.cost.ops import CostError, layernorm_cost, matmul_cost
from harness.cost.ops_attention import attention_cost, einsum_cost
from harness.cost.ops_data import (compare_cost, cumsum_cost, expand_cost, gather_cost, gather_elements_cost,
                                   nonzero_cost, pad_cost, range_cost, scatter_elements_cost, scatter_nd_cost,
                                   tile_cost, topk_cost, where_cost)
from harness.cost.ops_norm import group_norm_cost, instance_norm_cost, lrn_cost, resize_cost

# ---------------------------------------------------------------- LRN


def _lrn_taps_loop(channels, size, lo):
    """Channels each output element sums, window [c - lo, c - lo + size - 1] cut at the ends."""
    return sum(1 for c in range(channels) for i in range(c - lo, c - lo + size) if 0 <= i < channels)


@pytest.mark.parametrize("channels, size", [(8, 5), (3, 5), (16, 4), (1, 3), (6, 1)])
def test_lrn_counts_the_channels_each_window_holds(channels, size):
    n, h, w = 2, 3, 4
    c = lrn_cost((n, channels, h, w), size)
    onnx_taps = _lrn_taps_loop(channels, size, (size - 1) // 2)
    torch_taps = _lrn_taps_loop(channels, size, size // 2)  # torch mirrors the window for an even size
    assert onnx_taps == torch_taps
    # Per element: square + accumulate per tap, then scale, + bias, pow, divide.
    assert c.flops == n * h * w * (2 * onnx_taps + 4 * channels)
    assert c.bytes == 2 * n * channels * h * w * 4 and c.params == 0


# ---------------------------------------------------------------- resize: a loop that interpolates and counts


def _weights_1d(in_size, out_size, mode):
    """(source index, weight) taps per output index, half-pixel coordinates, clamped at the edges."""
    scale = out_size / in_size
    taps = []
    for o in range(out_size):
        src = (o + 0.5) / scale - 0.5
        if in_size == out_size:
            taps.append([(o, 1.0)])
        elif mode == "linear":
            src = max(src, 0.0)
            i0 = int(math.floor(src))
            t = src - i0
            taps.append([(min(i0, in_size - 1), 1 - t), (min(i0 + 1, in_size - 1), t)])
        else:  # cubic convolution, a = -0.75
            a, i0 = -0.75, int(math.floor(src))
            t = src - i0

            def k(d):
                d = abs(d)
                return ((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
            taps.append([(min(max(i0 + j, 0), in_size - 1), k(t - j)) for j in (-1, 0, 1, 2)])
    return taps


def _resize_loop(x, out_hw, mode):
    """Every output pixel as the weighted sum of its taps; returns (output, multiply-adds)."""
    n, c, ih, iw = x.shape
    oh, ow = out_hw
    rows, cols = _weights_1d(ih, oh, mode), _weights_1d(iw, ow, mode)
    y = np.zeros((n, c, oh, ow))
    macs = 0
    for b, ch, i, j in itertools.product(range(n), range(c), range(oh), range(ow)):
        for (si, wi), (sj, wj) in itertools.product(rows[i], cols[j]):
            y[b, ch, i, j] += wi * wj * x[b, ch, si, sj]
            macs += 1
    return y, macs


@pytest.mark.parametrize("mode, torch_mode", [("linear", "bilinear"), ("cubic", "bicubic")])
@pytest.mark.parametrize("out_hw", [(6, 8), (5, 7), (3, 9)])
def test_resize_taps_match_an_interpolating_loop(mode, torch_mode, out_hw):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 4))
    y, macs = _resize_loop(x, out_hw, mode)
    # The loop interpolates as torch does, so the taps it counts are the real ones.
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=out_hw, mode=torch_mode, align_corners=False)
    np.testing.assert_allclose(y, ref.numpy(), atol=1e-9)
    c = resize_cost(x.shape, (1, 2, *out_hw), mode)
    assert c.flops == 2 * macs
    assert c.bytes == (x.size + y.size) * 4


def test_resize_nearest_and_one_axis():
    assert resize_cost((1, 3, 4, 4), (1, 3, 8, 8), "nearest").flops == 0
    # One resized axis: 2 linear taps (4 cubic) per output element.
    assert resize_cost((2, 5, 4), (2, 5, 8), "linear").flops == 2 * 2 * 80
    assert resize_cost((2, 5, 4), (2, 5, 8), "cubic").flops == 2 * 4 * 80
    assert resize_cost((1, 1, 2, 2, 2), (1, 1, 4, 4, 4), "linear").flops == 2 * 8 * 64  # trilinear
    assert resize_cost((1, 3, 4, 4), (1, 3, 4, 4), "linear").flops == 0  # nothing resized: a copy


# ---------------------------------------------------------------- instance and group norm


def _norm_rows_count(shape, groups, affine):
    """Per normalised row of R values: sum R, subtract R, square R, sum R, scale R (+2R affine), then
    divide, divide, + eps, rsqrt."""
    n, c = shape[:2]
    r = (c // groups) * math.prod(shape[2:])
    return sum(5 * r + (2 * r if affine else 0) + 4 for _ in range(n * groups))


@pytest.mark.parametrize("shape, groups", [((2, 8, 3, 3), 4), ((1, 6, 5), 3), ((3, 4, 2, 2, 2), 1)])
def test_group_and_instance_norm_count_per_row(shape, groups):
    g = group_norm_cost(shape, groups)
    assert g.flops == _norm_rows_count(shape, groups, True)
    assert g.params == 2 * shape[1] and g.bytes == (2 * math.prod(shape) + 2 * shape[1]) * 4
    assert group_norm_cost(shape, groups, affine=False).flops == _norm_rows_count(shape, groups, False)
    i = instance_norm_cost(shape)
    assert i.flops == _norm_rows_count(shape, shape[1], True) == group_norm_cost(shape, shape[1]).flops
    # One group is a LayerNorm over (C, ...) in FLOPs (its affine is per channel, not per element).
    assert group_norm_cost(shape, 1).flops == layernorm_cost(shape, shape[1:]).flops


def test_group_norm_params_match_torch():
    torch = pytest.importorskip("torch")
    gn = torch.nn.GroupNorm(4, 12)
    assert group_norm_cost((1, 12, 4, 4), 4).params == sum(p.numel() for p in gn.parameters())
    with pytest.raises(CostError, match="num_groups: channels 12 are not divisible by num_groups 5"):
        group_norm_cost((1, 12, 4, 4), 5)


# ---------------------------------------------------------------- einsum: a loop over every index


def _einsum_loop(equation, *arrays):
    """The naive einsum: one multiply-add per point of the full index space; (result, points)."""
    lhs, rhs = equation.split("->")
    terms = lhs.split(",")
    sizes = {ch: d for t, a in zip(terms, arrays) for ch, d in zip(t, a.shape)}
    letters = sorted(sizes)
    out = np.zeros([sizes[ch] for ch in rhs])
    points = 0
    for values in itertools.product(*(range(sizes[ch]) for ch in letters)):
        at = dict(zip(letters, values))
        prod = 1.0
        for t, a in zip(terms, arrays):
            prod *= a[tuple(at[ch] for ch in t)]
        out[tuple(at[ch] for ch in rhs)] += prod
        points += 1
    return out, points


@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("ij,kj->ik", [(2, 3), (4, 3)]),
    ("i,i->", [(6,), (6,)]),
])
def test_einsum_two_operands_count_every_index_combination(equation, shapes):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in shapes]
    out, points = _einsum_loop(equation, *arrays)
    np.testing.assert_allclose(out, np.einsum(equation, *arrays), atol=1e-9)
    c = einsum_cost(equation, *shapes)
    assert c.macs == points and c.flops == 2 * points
    assert c.output_shape == out.shape
    assert c.bytes == (sum(a.size for a in arrays) + out.size) * 4


def test_einsum_equals_matmul_and_reads_ellipsis_and_implicit_output():
    assert einsum_cost("bij,bjk->bik", (4, 3, 5), (4, 5, 6)).flops == matmul_cost((4, 3, 5), (4, 5, 6)).flops
    c = einsum_cost("...ij,...jk->...ik", (2, 1, 3, 4), (5, 4, 6))
    assert c.output_shape == np.einsum("...ij,...jk->...ik", np.ones((2, 1, 3, 4)), np.ones((5, 4, 6))).shape
    assert c.macs == 2 * 5 * 3 * 4 * 6
    assert einsum_cost("ij,jk", (3, 4), (4, 5)).output_shape == (3, 5)  # implicit: letters seen once, sorted
    assert einsum_cost("ba,ac", (3, 4), (4, 5)).output_shape == np.einsum("ba,ac", np.ones((3, 4)), np.ones((4, 5))).shape


def test_einsum_one_and_three_operands():
    assert einsum_cost("ij->ji", (3, 4)).flops == 0  # a transpose moves data only
    assert einsum_cost("ii->i", (4, 4)).flops == 0  # a diagonal too
    assert einsum_cost("ij->j", (3, 4)).flops == 12  # a reduction: one add per input value
    # Left to right: (ij, jk) -> ik over i, j, k, then (ik, kl) -> il over i, k, l.
    c = einsum_cost("ij,jk,kl->il", (2, 3), (3, 4), (4, 5))
    assert c.macs == 2 * 3 * 4 + 2 * 4 * 5 and c.output_shape == (2, 5)
    assert einsum_cost("ij,ij->ij", (3, 4), (3, 4)).flops == 12  # a product that sums nothing
    with pytest.raises(CostError, match="equation: index 'j' is 4 and 5"):
        einsum_cost("ij,jk->ik", (3, 4), (5, 6))
    with pytest.raises(CostError, match="equation: 'ij,jk->ik' has 2 operands, got 1"):
        einsum_cost("ij,jk->ik", (3, 4))


# ---------------------------------------------------------------- gather, scatter, copies


def test_gather_reads_the_rows_it_gathers_not_the_table():
    # 16 token ids into a 50000 x 256 float32 embedding: 16 rows of 1 KB plus 16 int64 ids.
    c = gather_cost((50000, 256), (16,), 0)
    assert c.bytes_read == 16 * 256 * 4 + 16 * 8 == 16_512
    assert c.bytes_written == 16 * 256 * 4 and c.output_shape == (16, 256)
    rng = np.random.default_rng(2)
    table, ids = rng.standard_normal((10, 4, 6)).astype(np.float32), rng.integers(0, 4, (2, 3))
    taken = np.take(table, ids, axis=1)
    c = gather_cost(table.shape, ids.shape, 1)
    assert c.output_shape == taken.shape
    assert c.bytes_read == taken.nbytes + ids.nbytes and c.bytes_written == taken.nbytes


def test_gather_elements_reads_one_element_per_output():
    data = np.zeros((3, 5), np.float32)
    idx = np.zeros((3, 2), np.int64)
    out = np.take_along_axis(data, idx, axis=1)
    c = gather_elements_cost(data.shape, idx.shape, 1)
    assert c.output_shape == out.shape and c.bytes_read == out.nbytes + idx.nbytes and c.bytes_written == out.nbytes


def _scatter_nd_loop(data, indices, updates, reduction):
    """ScatterND done by hand, counting elements read and written (by tensor) and reductions."""
    out = data.copy()
    read = {"data": data.size, "updates": 0, "indices": 0, "landed": 0}
    written, flops = out.size, 0
    for idx in np.ndindex(indices.shape[:-1]):
        key = tuple(indices[idx])
        upd = updates[idx]
        read["indices"] += indices.shape[-1]
        read["updates"] += np.size(upd)
        if reduction == "add":
            read["landed"] += np.size(upd)
            flops += np.size(upd)
            out[key] = out[key] + upd
        else:
            out[key] = upd
        written += np.size(upd)
    return read, written, flops


@pytest.mark.parametrize("reduction", ["none", "add"])
def test_scatter_nd_copies_data_then_writes_the_updates(reduction):
    data = np.zeros((4, 5, 6), np.float32)
    indices = np.array([[0, 1], [2, 3], [3, 0]], np.int64)  # 3 slices of data[k:] = (6,)
    updates = np.ones((3, 6), np.float32)
    read, written, flops = _scatter_nd_loop(data, indices, updates, reduction)
    c = scatter_nd_cost(data.shape, indices.shape, updates.shape, reduction=reduction)
    assert c.bytes_read == (read["data"] + read["updates"] + read["landed"]) * 4 + read["indices"] * 8
    assert c.bytes_written == written * 4 and c.flops == flops
    with pytest.raises(CostError, match=r"updates_shape: must be \(3, 6\)"):
        scatter_nd_cost(data.shape, indices.shape, (3, 5))
    e = scatter_elements_cost((4, 5), (2, 5))
    assert e.bytes_read == (20 + 10) * 4 + 10 * 8 and e.bytes_written == (20 + 10) * 4


def test_expand_tile_pad_read_the_input_and_write_the_output():
    x = np.zeros((3, 1, 4), np.float32)
    assert expand_cost(x.shape, (2, 3, 5, 4)).bytes == x.nbytes + np.broadcast_to(x, (2, 3, 5, 4)).nbytes
    assert expand_cost(x.shape, (5, 1)).output_shape == np.broadcast_shapes(x.shape, (5, 1))
    t = tile_cost(x.shape, (2, 3, 1))
    assert t.output_shape == np.tile(x, (2, 3, 1)).shape and t.bytes == x.nbytes + np.tile(x, (2, 3, 1)).nbytes
    y = np.zeros((2, 3, 5), np.float32)
    p = pad_cost(y.shape, [0, 1, 2, 0, 1, 0])
    padded = np.pad(y, [(0, 0), (1, 1), (2, 0)])
    assert p.output_shape == padded.shape and p.bytes == y.nbytes + padded.nbytes and p.flops == 0
    # Negative pads crop: only the part kept is read.
    cropped = y[:, 1:, 1:4]
    c = pad_cost(y.shape, [0, -1, -1, 0, 0, -1])
    assert c.output_shape == cropped.shape and c.bytes_read == cropped.nbytes
    with pytest.raises(CostError, match="pads: must be 6 ints"):
        pad_cost(y.shape, [1, 1])


def test_topk_cumsum_where_compare_nonzero_range():
    # TopK: n x (levels of a k-heap) comparisons per row; k = 1 is a max over n values.
    for k in (1, 2, 3, 4, 7, 8):
        assert topk_cost((2, 3, 16), k).flops == 2 * 3 * 16 * k.bit_length()
    t = topk_cost((2, 16, 3), 4, axis=1)
    assert t.output_shape == (2, 4, 3) and t.bytes_written == 2 * 4 * 3 * (4 + 8)
    with pytest.raises(CostError, match=r"k: must be an int in \[1, 16\]"):
        topk_cost((2, 16), 17)
    row = np.arange(7.0)
    adds, acc = 0, 0.0
    for v in row:  # a running sum: one add per element
        acc, adds = acc + v, adds + 1
    assert cumsum_cost((3, 7)).flops == 3 * adds
    cond, a, b = np.zeros((4, 1), bool), np.zeros((1, 5), np.float32), np.zeros((4, 5), np.float32)
    w = where_cost(cond.shape, a.shape, b.shape)
    out = np.where(cond, a, b)
    assert w.bytes_read == cond.nbytes + a.nbytes + b.nbytes and w.bytes_written == out.nbytes
    assert w.flops == out.size
    ids = np.zeros((1, 512), np.int64)
    e = compare_cost("equal", ids.shape, (1,), dtype="int64")
    assert e.bytes_read == ids.nbytes + 8 and e.bytes_written == (ids == 0).nbytes and e.flops == 512
    m = np.array([[0, 1, 2], [3, 0, 0]], np.float32)
    nz = np.stack(np.nonzero(m)).astype(np.int64)
    c = nonzero_cost(m.shape, int(np.count_nonzero(m)))
    assert c.output_shape == nz.shape and c.bytes_written == nz.nbytes and c.bytes_read == m.nbytes
    assert nonzero_cost(m.shape).bytes_written == 2 * m.size * 8  # count unknown: every element
    r = np.arange(2, 40, 3, dtype=np.int64)
    assert range_cost(r.size).bytes_written == r.nbytes


# ---------------------------------------------------------------- attention


@pytest.mark.parametrize("masked", ["none", "mask", "causal"])
def test_attention_matmuls_match_the_flop_counter_on_the_math_path(masked):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    q, k, v = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 6)
    with FlopCounterMode(display=False) as counter:  # the two matmuls written out
        scores = q @ k.transpose(-2, -1)
        (scores.softmax(-1) @ v)
    c = attention_cost(q.shape, k.shape, v.shape, mask_shape=(5, 7) if masked == "mask" else None,
                       causal=masked == "causal")
    assert 2 * c.macs == counter.get_total_flops()
    n_scores = scores.numel()
    assert c.flops == 2 * c.macs + n_scores * (1 + 5 + (0 if masked == "none" else 1))
    assert c.output_shape == (2, 3, 5, 6)
    assert c.bytes_read == (q.numel() + k.numel() + v.numel() + (35 if masked == "mask" else 0)) * 4
    with pytest.raises(CostError, match="k_shape: embedding dim 3"):
        attention_cost((1, 5, 4), (1, 7, 3), (1, 7, 4))


# ---------------------------------------------------------------- the same ops as ONNX nodes

FLOAT, INT64, BOOL = 1, 7, 9  # onnx.TensorProto element types


def _onnx_cost(nodes, inputs, outputs, inits=(), opset=17):
    """onnx_model_cost of a graph built here: inputs/outputs as (name, elem type, dims)."""
    pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    from harness.cost.onnx_graph import onnx_model_cost

    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, t, d) for n, t, d in inputs],
        [helper.make_tensor_value_info(n, t, d) for n, t, d in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), n) for n, v in inits])
    return onnx_model_cost(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def _node(op, inputs, outputs, **attrs):
    from onnx import helper

    return helper.make_node(op, inputs, outputs, name=f"{op.lower()}0", **attrs)


def _only(cost):
    assert cost.unknown == [], cost.unknown
    assert len(cost.layers) == 1, [l.op for l in cost.layers]
    return cost.layers[0]


def test_onnx_gather_from_a_large_table_books_the_rows():
    pytest.importorskip("onnx")
    c = _onnx_cost([_node("Gather", ["table", "ids"], ["emb"], axis=0)],
                   [("table", FLOAT, [50000, 256]), ("ids", INT64, [16])], [("emb", FLOAT, None)])
    layer = _only(c)
    assert layer.category == "data" and layer.cost.output_shape == (16, 256)
    assert layer.cost.bytes_read == 16 * 256 * 4 + 16 * 8  # ~16 KB, not the table's 51.2 MB
    # A constant table is an embedding: its elements are the layer's parameters.
    table = np.zeros((100, 8), np.float32)
    c = _onnx_cost([_node("Gather", ["table", "ids"], ["emb"], axis=0)], [("ids", INT64, [1, 70])],
                   [("emb", FLOAT, None)], inits=[("table", table)])
    assert _only(c).cost.params == table.size and _only(c).cost.bytes_read == 70 * 8 * 4 + 70 * 8


def test_onnx_sum_of_activations_is_a_residual():
    pytest.importorskip("onnx")
    shape = [1, 4, 3, 3]
    c = _onnx_cost([_node("Sum", ["a", "b", "d"], ["y"])], [(n, FLOAT, shape) for n in "abd"], [("y", FLOAT, None)])
    layer = _only(c)
    assert layer.category == "residual"
    assert layer.cost.flops_residual == layer.cost.flops == 2 * 36  # n - 1 adds per element
    # A Sum with a constant is not a residual.
    c = _onnx_cost([_node("Sum", ["a", "w"], ["y"])], [("a", FLOAT, shape)], [("y", FLOAT, None)],
                   inits=[("w", np.ones(shape, np.float32))])
    assert _only(c).category == "eltwise"


def test_onnx_decomposed_batchnorm_is_norm_and_a_conv_bias_stays_bias():
    pytest.importorskip("onnx")
    c_out = 4
    weight = np.ones((c_out, 3, 3, 3), np.float32)
    scale, shift = np.ones((1, c_out, 1, 1), np.float32), np.zeros((1, c_out, 1, 1), np.float32)
    nodes = [_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), _node("Mul", ["c", "scale"], ["m"]),
             _node("Add", ["m", "shift"], ["y"])]
    c = _onnx_cost(nodes, [("x", FLOAT, [1, 3, 5, 5])], [("y", FLOAT, None)],
                   inits=[("w", weight), ("scale", scale), ("shift", shift)])
    by_op = {l.module: l for l in c.layers}
    elems = c_out * 25
    assert by_op["Mul"].category == by_op["Add"].category == "norm"
    # x * scale + shift: one multiply and one add per element, as batchnorm_cost counts (2 per element).
    assert by_op["Mul"].cost.flops_norm + by_op["Add"].cost.flops_norm == 2 * elems
    assert by_op["Mul"].cost.params + by_op["Add"].cost.params == 2 * c_out
    assert c.flops_by_category()["norm"] == 2 * elems and c.flops_by_category()["eltwise"] == 0
    # Conv then Add of a channel vector: a bias. A Mul by a channel vector alone: element-wise.
    c = _onnx_cost([nodes[0], _node("Add", ["c", "shift"], ["y"])], [("x", FLOAT, [1, 3, 5, 5])],
                   [("y", FLOAT, None)], inits=[("w", weight), ("shift", shift)])
    assert [l.category for l in c.layers] == ["conv", "bias"]
    c = _onnx_cost(nodes[:2], [("x", FLOAT, [1, 3, 5, 5])], [("m", FLOAT, None)],
                   inits=[("w", weight), ("scale", scale)])
    assert [l.category for l in c.layers] == ["conv", "eltwise"]


def test_onnx_gemm_keeps_its_bias_and_params_whatever_holds_its_weight():
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    m, k, n = 2, 6, 5
    w, b = np.ones((k, n), np.float32), np.ones((n,), np.float32)
    linear_bytes = (m * k + k * n + n + m * n) * 4
    # B from a Constant node, and B an initializer behind an Identity: both are weights.
    const = helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(w, "W"))
    cases = {"constant node": ([const], []), "identity": ([_node("Identity", ["w0"], ["W"])], [("w0", w)])}
    for label, (pre, inits) in cases.items():
        c = _onnx_cost([*pre, _node("Gemm", ["x", "W", "bias"], ["y"])], [("x", FLOAT, [m, k])],
                       [("y", FLOAT, None)], inits=[*inits, ("bias", b)])
        gemm = next(l for l in c.layers if l.module == "Gemm")
        assert gemm.category == "linear", label
        assert gemm.cost.params == k * n + n, label
        assert gemm.cost.flops_bias == m * n and gemm.cost.flops_main == 2 * m * k * n, label
        assert gemm.cost.bytes == linear_bytes, label
    # B an activation: a matmul, and the bias still costs an add per element and is a parameter.
    c = _onnx_cost([_node("Gemm", ["x", "bx", "bias"], ["y"])], [("x", FLOAT, [m, k]), ("bx", FLOAT, [k, n])],
                   [("y", FLOAT, None)], inits=[("bias", b)])
    gemm = _only(c)
    assert gemm.category == "matmul" and gemm.cost.params == n and gemm.cost.flops_bias == m * n
    assert gemm.cost.bytes == linear_bytes
    del onnx


@pytest.mark.parametrize("mode, expected_mode, category", [("nearest", "nearest", "data"),
                                                           ("linear", "linear", "eltwise"),
                                                           ("cubic", "cubic", "eltwise")])
def test_onnx_resize_modes(mode, expected_mode, category):
    pytest.importorskip("onnx")
    c = _onnx_cost([_node("Resize", ["x", "", "scales"], ["y"], mode=mode)], [("x", FLOAT, [1, 3, 4, 5])],
                   [("y", FLOAT, None)], inits=[("scales", np.array([1, 1, 2, 2], np.float32))])
    layer = _only(c)
    assert layer.category == category
    assert layer.cost == resize_cost((1, 3, 4, 5), (1, 3, 8, 10), expected_mode)


def test_onnx_norms_lrn_einsum_topk_cumsum():
    pytest.importorskip("onnx")
    x = ("x", FLOAT, [2, 6, 3, 3])
    c = _onnx_cost([_node("LRN", ["x"], ["y"], size=5)], [x], [("y", FLOAT, None)])
    assert _only(c).category == "norm" and _only(c).cost.flops_norm == lrn_cost((2, 6, 3, 3), 5).flops
    ones = np.ones(6, np.float32)
    c = _onnx_cost([_node("InstanceNormalization", ["x", "s", "b"], ["y"])], [x], [("y", FLOAT, None)],
                   inits=[("s", ones), ("b", ones)])
    assert _only(c).cost.flops_norm == instance_norm_cost((2, 6, 3, 3)).flops and _only(c).cost.params == 12
    c = _onnx_cost([_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3)], [x], [("y", FLOAT, None)],
                   inits=[("s", ones), ("b", ones)], opset=21)
    assert _only(c).category == "norm" and _only(c).cost.flops_norm == group_norm_cost((2, 6, 3, 3), 3).flops
    assert _only(c).cost.params == 12
    c = _onnx_cost([_node("Einsum", ["a", "b"], ["y"], equation="bij,bjk->bik")],
                   [("a", FLOAT, [2, 3, 4]), ("b", FLOAT, [2, 4, 5])], [("y", FLOAT, None)], opset=17)
    assert _only(c).category == "matmul" and _only(c).cost.macs == 2 * 3 * 4 * 5
    c = _onnx_cost([_node("TopK", ["x2", "k"], ["v", "i"], axis=-1)], [("x2", FLOAT, [4, 32])],
                   [("v", FLOAT, None), ("i", INT64, None)], inits=[("k", np.array([5], np.int64))])
    assert _only(c).category == "reduce" and _only(c).cost == topk_cost((4, 32), 5)
    c = _onnx_cost([_node("CumSum", ["x2", "axis"], ["y"])], [("x2", FLOAT, [4, 32])], [("y", FLOAT, None)],
                   inits=[("axis", np.array(1, np.int64))])
    assert _only(c).cost.flops == 4 * 32


def test_onnx_int_and_bool_ops_are_costed_by_size():
    pytest.importorskip("onnx")
    ids = ("ids", INT64, [1, 512])
    c = _onnx_cost([_node("Equal", ["ids", "pad"], ["mask"]), _node("Where", ["mask", "a", "b"], ["y"]),
                    _node("NonZero", ["mask"], ["nz"])],
                   [ids, ("a", FLOAT, [1, 512]), ("b", FLOAT, [1, 512])], [("y", FLOAT, None), ("nz", INT64, None)],
                   inits=[("pad", np.array([0], np.int64))])
    assert c.unknown == []
    by_op = {l.module: l.cost for l in c.layers}
    assert by_op["Equal"] == compare_cost("equal", (1, 512), (1,), dtype="int64")
    assert by_op["Where"] == where_cost((1, 512), (1, 512), (1, 512))
    assert by_op["NonZero"] == nonzero_cost((1, 512), dtype="bool")  # count unknown: an upper bound
    # A tiny int tensor is shape arithmetic: free.
    c = _onnx_cost([_node("Equal", ["s", "t"], ["e"])], [("s", INT64, [4]), ("t", INT64, [4])], [("e", BOOL, None)])
    assert _only(c).cost.bytes == 0
    c = _onnx_cost([_node("Range", ["start", "limit", "delta"], ["r"])], [], [("r", INT64, None)],
                   inits=[("start", np.array(0, np.int64)), ("limit", np.array(1000, np.int64)),
                          ("delta", np.array(3, np.int64))])
    assert _only(c).cost.bytes_written == np.arange(0, 1000, 3).size * 8


def test_onnx_copies_and_scatter():
    pytest.importorskip("onnx")
    x = ("x", FLOAT, [2, 3, 1])
    c = _onnx_cost([_node("Expand", ["x", "shape"], ["y"])], [x], [("y", FLOAT, None)],
                   inits=[("shape", np.array([2, 3, 4], np.int64))])
    assert _only(c).cost == expand_cost((2, 3, 1), (2, 3, 4))
    c = _onnx_cost([_node("Tile", ["x", "reps"], ["y"])], [x], [("y", FLOAT, None)],
                   inits=[("reps", np.array([1, 2, 5], np.int64))])
    assert _only(c).cost == tile_cost((2, 3, 1), (1, 2, 5))
    c = _onnx_cost([_node("Pad", ["x", "pads"], ["y"])], [x], [("y", FLOAT, None)],
                   inits=[("pads", np.array([0, 1, 0, 0, 1, 2], np.int64))])
    assert _only(c).cost.bytes == (6 + 2 * 5 * 3) * 4
    c = _onnx_cost([_node("ScatterND", ["d", "i", "u"], ["y"])],
                   [("d", FLOAT, [4, 5]), ("i", INT64, [2, 1]), ("u", FLOAT, [2, 5])], [("y", FLOAT, None)])
    assert _only(c).cost == scatter_nd_cost((4, 5), (2, 1), (2, 5))
    c = _onnx_cost([_node("GatherElements", ["d", "i"], ["y"], axis=1)],
                   [("d", FLOAT, [4, 5]), ("i", INT64, [4, 2])], [("y", FLOAT, None)])
    assert _only(c).cost == gather_elements_cost((4, 5), (4, 2), 1)


# ---------------------------------------------------------------- the torch walk


def test_torch_walk_costs_interpolate_cumsum_group_norm_and_attention():
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.nn import functional as F

    from harness.cost.torch_walk import model_cost

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gn = nn.GroupNorm(2, 4)

        def forward(self, x):
            y = self.gn(x)
            y = F.interpolate(y, scale_factor=2, mode="nearest")
            y = F.interpolate(y, size=(5, 7), mode="bilinear", align_corners=False)
            y = F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)
            q = y.flatten(2)  # (1, 4, 70): 4 heads-as-tokens of dim 70
            a = F.scaled_dot_product_attention(q, q, q, is_causal=True)
            return torch.cumsum(a, dim=-1)

    c = model_cost(Net().eval(), (1, 4, 3, 3), activations=False)
    assert c.unknown == []
    rows = {l.name: l for l in c.layers}
    assert rows["gn"].category == "norm" and rows["gn"].cost.flops_norm == group_norm_cost((1, 4, 3, 3), 2).flops
    assert c.params == rows["gn"].cost.params == 8
    resizes = [l for l in c.layers if l.op.startswith("resize")]
    assert [l.cost for l in resizes] == [resize_cost((1, 4, 3, 3), (1, 4, 6, 6), "nearest"),
                                         resize_cost((1, 4, 6, 6), (1, 4, 5, 7), "linear"),
                                         resize_cost((1, 4, 5, 7), (1, 4, 10, 14), "cubic")]
    att = next(l for l in c.layers if l.op == "scaled_dot_product_attention")
    assert att.category == "attention"
    assert att.cost == attention_cost((1, 4, 140), (1, 4, 140), (1, 4, 140), causal=True)
    assert rows["cumsum"].category == "reduce" and rows["cumsum"].cost.flops == 4 * 140
    del torch


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_onnx_upsample_opset9_is_costed_like_resize(mode):
    # Upsample (opset 9, deprecated in 10) scales X by its `scales` input, as Resize does.
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import helper, numpy_helper

    from harness.cost.onnx_graph import onnx_model_cost

    scales = numpy_helper.from_array(np.array([1, 1, 2, 3], np.float32), "scales")
    graph = helper.make_graph([_node("Upsample", ["x", "scales"], ["y"], mode=mode)], "g",
                              [helper.make_tensor_value_info("x", FLOAT, [1, 2, 3, 4])],
                              [helper.make_tensor_value_info("y", FLOAT, None)], [scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y.shape == (1, 2, 6, 12)  # the shape ONNX Runtime gives
    layer = _only(onnx_model_cost(model))
    assert layer.module == "Upsample" and layer.cost.output_shape == y.shape
    # By hand: a linear output element blends the 2 x 2 nearest inputs of the two scaled axes,
    # a multiply-add each (4 x 2 FLOPs); nearest copies one input element (no arithmetic).
    per_output = 4 * 2 if mode == "linear" else 0
    assert layer.cost.flops == per_output * y.size
    assert layer.cost.bytes == 4 * (x.size + y.size)  # X read once, Y written once (scales: 4 values)
    assert layer.category == ("eltwise" if mode == "linear" else "data")
    resize = _only(_onnx_cost([_node("Resize", ["x", "", "scales"], ["y"], mode=mode)], [("x", FLOAT, [1, 2, 3, 4])],
                              [("y", FLOAT, None)], inits=[("scales", np.array([1, 1, 2, 3], np.float32))]))
    assert (layer.cost.flops, layer.cost.bytes, layer.category) == (resize.cost.flops, resize.cost.bytes,
                                                                    resize.category)
