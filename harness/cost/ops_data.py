"""Formulas for the data ops: indexing, copying, selecting. Same conventions as ops.py.

Bytes are what the op touches, each element once, at its own dtype's size:
- gather: the rows it gathers (output-sized) plus the indices, never the whole table;
  16 token ids into a 50000 x 256 float32 embedding read 16 x 256 x 4 B + 16 x 8 B.
- gather_elements: one data element per output element, plus the indices.
- scatter_nd / scatter_elements: the output is a copy of data with the updates written
  into it, so data is read whole and the output written whole (the copy), then the
  updates and indices are read and the updated elements written again. With a reduction
  (add, mul, max, min) each update also reads the element it lands on and costs 1 FLOP.
- expand, tile, pad: the input read once (pad with negative pads: the part kept), the
  output written once; no FLOPs.
- where: cond (1 B per element), x and y read at their own sizes; one select per output
  element.
- comparisons (equal, less, greater, ..., and, or, xor): both inputs read, a bool (1 B)
  output written, one compare per output element.
- nonzero: the input read, one compare per element, int64 indices written (rank x count);
  the count is data-dependent: without it, every element is taken as nonzero (an upper bound).
- range: the output written, one add per element (the running value plus delta).

FLOPs
- topk: each row of n values along the axis is kept in a heap of k, each value compared
  against it and sifted through ceil(log2(k + 1)) levels: n x ceil(log2(k + 1))
  comparisons per row (k = 1 is a max: n, as a reduction over n values counts n).
- cumsum: one add per element.
"""
from __future__ import annotations

import math

from harness.cost.ops import CostError, OpCost, broadcast_shapes, checked_shape, dtype_bytes, is_int

COMPARISONS = ("equal", "less", "greater", "less_equal", "greater_equal", "and", "or", "xor")
SCATTER_REDUCTIONS = ("none", "add", "mul", "max", "min")
PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _axis(name: str, axis, ndim: int) -> int:
    if not is_int(axis) or not -ndim <= axis < ndim:
        raise CostError(f"{name}: must be an int in [{-ndim}, {ndim}), got {axis!r}")
    return axis % ndim


def gather_cost(data_shape, indices_shape, axis=0, *, dtype="float32", index_dtype="int64") -> OpCost:
    """Gather along `axis`: output data[:axis] + indices + data[axis + 1:]; reads the gathered
    rows and the indices (an empty indices shape () is one scalar index)."""
    data = checked_shape("data_shape", data_shape, min_ndim=1)
    indices = checked_shape("indices_shape", indices_shape)
    a = _axis("axis", axis, len(data))
    output_shape = data[:a] + indices + data[a + 1:]
    out = math.prod(output_shape)
    return OpCost(op="gather", output_shape=output_shape, dtype=dtype,
                  bytes_read=out * dtype_bytes(dtype) + math.prod(indices) * dtype_bytes(index_dtype),
                  bytes_written=out * dtype_bytes(dtype))


def gather_elements_cost(data_shape, indices_shape, axis=0, *, dtype="float32", index_dtype="int64") -> OpCost:
    """GatherElements: the output has the indices' shape, one data element read per output element."""
    data = checked_shape("data_shape", data_shape, min_ndim=1)
    indices = checked_shape("indices_shape", indices_shape, ndim=len(data))
    _axis("axis", axis, len(data))
    out = math.prod(indices)
    return OpCost(op="gather_elements", output_shape=indices, dtype=dtype,
                  bytes_read=out * (dtype_bytes(dtype) + dtype_bytes(index_dtype)),
                  bytes_written=out * dtype_bytes(dtype))


def _scatter(op, data, indices, updates, reduction, dtype, index_dtype) -> OpCost:
    if reduction not in SCATTER_REDUCTIONS:
        raise CostError(f"reduction: unknown {reduction!r}; known: {', '.join(SCATTER_REDUCTIONS)}")
    size = dtype_bytes(dtype)
    n_data, n_updates = math.prod(data), math.prod(updates)
    # A reduction reads the element each update lands on before writing it back.
    landed = n_updates if reduction != "none" else 0
    return OpCost(op=op, output_shape=data, dtype=dtype,
                  bytes_read=(n_data + n_updates + landed) * size + math.prod(indices) * dtype_bytes(index_dtype),
                  bytes_written=(n_data + n_updates) * size,
                  flops_main=landed)


def scatter_nd_cost(data_shape, indices_shape, updates_shape, *, reduction="none", dtype="float32",
                    index_dtype="int64") -> OpCost:
    """ScatterND: indices (..., k) address slices data[k:]; updates = indices[:-1] + data[k:]."""
    data = checked_shape("data_shape", data_shape, min_ndim=1)
    indices = checked_shape("indices_shape", indices_shape, min_ndim=1)
    updates = checked_shape("updates_shape", updates_shape)
    k = indices[-1]
    if k > len(data):
        raise CostError(f"indices_shape: last dim {k} exceeds the rank {len(data)} of data_shape {data}")
    if updates != indices[:-1] + data[k:]:
        raise CostError(f"updates_shape: must be {indices[:-1] + data[k:]} for indices {indices} "
                        f"and data {data}, got {updates}")
    return _scatter("scatter_nd", data, indices, updates, reduction, dtype, index_dtype)


def scatter_elements_cost(data_shape, indices_shape, *, reduction="none", dtype="float32",
                          index_dtype="int64") -> OpCost:
    """ScatterElements: one update per index, updates shaped as the indices."""
    data = checked_shape("data_shape", data_shape, min_ndim=1)
    indices = checked_shape("indices_shape", indices_shape, ndim=len(data))
    return _scatter("scatter_elements", data, indices, indices, reduction, dtype, index_dtype)


def _copy(op, input_elems, output_shape, dtype) -> OpCost:
    size = dtype_bytes(dtype)
    return OpCost(op=op, output_shape=output_shape, dtype=dtype, bytes_read=input_elems * size,
                  bytes_written=math.prod(output_shape) * size)


def expand_cost(input_shape, shape, *, dtype="float32") -> OpCost:
    """Expand to `shape` with numpy broadcasting (ONNX's rule: the output may keep the input's larger dims)."""
    x = checked_shape("input_shape", input_shape)
    target = checked_shape("shape", shape)
    return _copy("expand", math.prod(x), broadcast_shapes("shape", [x, target]), dtype)


def tile_cost(input_shape, repeats, *, dtype="float32") -> OpCost:
    """Tile: dim i repeated repeats[i] times."""
    x = checked_shape("input_shape", input_shape, min_ndim=1)
    reps = checked_shape("repeats", repeats, ndim=len(x))
    return _copy("tile", math.prod(x), tuple(d * r for d, r in zip(x, reps)), dtype)


def pad_cost(input_shape, pads, *, mode="constant", dtype="float32") -> OpCost:
    """Pad with ONNX's pads [begin_0, ..., begin_n-1, end_0, ..., end_n-1]; negative pads crop."""
    x = checked_shape("input_shape", input_shape, min_ndim=1)
    if mode not in PAD_MODES:
        raise CostError(f"mode: unknown pad mode {mode!r}; known: {', '.join(PAD_MODES)}")
    if not isinstance(pads, (tuple, list)) or len(pads) != 2 * len(x) or not all(is_int(p) for p in pads):
        raise CostError(f"pads: must be {2 * len(x)} ints (begins then ends) for input {x}, got {pads!r}")
    begins, ends = pads[:len(x)], pads[len(x):]
    output_shape = tuple(d + b + e for d, b, e in zip(x, begins, ends))
    if any(d <= 0 for d in output_shape):
        raise CostError(f"pads: {list(pads)} crop input {x} to {output_shape}")
    kept = math.prod(d + min(b, 0) + min(e, 0) for d, b, e in zip(x, begins, ends))
    return _copy("pad", kept, output_shape, dtype)


def topk_cost(input_shape, k, axis=-1, *, dtype="float32", index_dtype="int64") -> OpCost:
    """TopK: k values and their indices per row along `axis`; see the module docstring."""
    x = checked_shape("input_shape", input_shape, min_ndim=1)
    a = _axis("axis", axis, len(x))
    n = x[a]
    if not is_int(k) or not 0 < k <= n:
        raise CostError(f"k: must be an int in [1, {n}] (the size of axis {a}), got {k!r}")
    output_shape = x[:a] + (k,) + x[a + 1:]
    rows = math.prod(x) // n
    out = math.prod(output_shape)
    return OpCost(op="topk", output_shape=output_shape, dtype=dtype,
                  bytes_read=math.prod(x) * dtype_bytes(dtype),
                  bytes_written=out * (dtype_bytes(dtype) + dtype_bytes(index_dtype)),
                  flops_main=rows * n * math.ceil(math.log2(k + 1)))


def cumsum_cost(input_shape, *, dtype="float32") -> OpCost:
    """CumSum along any axis: one add per element."""
    x = checked_shape("input_shape", input_shape)
    elems = math.prod(x)
    size = dtype_bytes(dtype)
    return OpCost(op="cumsum", output_shape=x, dtype=dtype, bytes_read=elems * size, bytes_written=elems * size,
                  flops_main=elems)


def where_cost(cond_shape, x_shape, y_shape, *, dtype="float32") -> OpCost:
    """Where(cond, x, y): broadcast; one select per output element."""
    shapes = [checked_shape(n, s) for n, s in (("cond_shape", cond_shape), ("x_shape", x_shape),
                                                ("y_shape", y_shape))]
    output_shape = broadcast_shapes("y_shape", shapes)
    size = dtype_bytes(dtype)
    out = math.prod(output_shape)
    return OpCost(op="where", output_shape=output_shape, dtype=dtype,
                  bytes_read=math.prod(shapes[0]) * dtype_bytes("bool") + (math.prod(shapes[1]) + math.prod(shapes[2])) * size,
                  bytes_written=out * size, flops_main=out)


def compare_cost(op, a_shape, b_shape, *, dtype="float32") -> OpCost:
    """A comparison or logical op of two inputs (dtype: theirs); the output is bool."""
    if op not in COMPARISONS:
        raise CostError(f"op: unknown comparison {op!r}; known: {', '.join(COMPARISONS)}")
    a, b = checked_shape("a_shape", a_shape), checked_shape("b_shape", b_shape)
    output_shape = broadcast_shapes("b_shape", [a, b])
    out = math.prod(output_shape)
    return OpCost(op=op, output_shape=output_shape, dtype=dtype,
                  bytes_read=(math.prod(a) + math.prod(b)) * dtype_bytes(dtype),
                  bytes_written=out * dtype_bytes("bool"), flops_main=out)


def nonzero_cost(input_shape, nonzero=None, *, dtype="float32") -> OpCost:
    """NonZero: output (rank, count) int64; count None = every element (an upper bound)."""
    x = checked_shape("input_shape", input_shape)
    elems = math.prod(x)
    count = elems if nonzero is None else nonzero
    if not is_int(count) or not 0 <= count <= elems:
        raise CostError(f"nonzero: must be an int in [0, {elems}], got {nonzero!r}")
    rank = max(len(x), 1)  # a scalar input gives a (1, count) output, as numpy.nonzero on atleast_1d
    return OpCost(op="nonzero", output_shape=(rank, count), dtype=dtype,
                  bytes_read=elems * dtype_bytes(dtype),
                  bytes_written=rank * count * dtype_bytes("int64"), flops_main=elems)


def range_cost(n, *, dtype="int64") -> OpCost:
    """Range with n = max(ceil((limit - start) / delta), 0) elements."""
    if not is_int(n) or n < 0:
        raise CostError(f"n: must be an int >= 0, got {n!r}")
    return OpCost(op="range", output_shape=(n,), dtype=dtype, bytes_written=n * dtype_bytes(dtype), flops_main=n)
