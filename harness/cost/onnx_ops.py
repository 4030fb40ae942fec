"""ONNX nodes costed by the formulas of ops_data, ops_norm and ops_attention: the table of
op types and the reading of their attributes and inputs. onnx_graph.onnx_node_cost calls
`more_node_cost` for every op type in MORE_OPS.

Each tensor is read at its own dtype (int64 indices, bool conditions), so these ops are
costed whatever their output's type. Categories: the norms are "norm" (their FLOPs in
flops_norm), a contraction "matmul" ("linear" when an operand is a constant: a weight),
TopK and CumSum "reduce", Where and the comparisons "eltwise", a nearest resize "data"
(it only moves elements), linear and cubic "eltwise", and the copies "data". onnx is
imported inside functions (deferred: only a graph with constants to read needs it).
"""
from __future__ import annotations

import math

import numpy as np

from harness.cost.model import moved_to, with_changes
from harness.cost.ops import DTYPE_BYTES, CostError, OpCost, dtype_bytes
from harness.cost.ops_attention import einsum_cost
from harness.cost.ops_data import (compare_cost, cumsum_cost, expand_cost, gather_cost, gather_elements_cost,
                                   nonzero_cost, pad_cost, range_cost, scatter_elements_cost, scatter_nd_cost,
                                   tile_cost, topk_cost, where_cost)
from harness.cost.ops_norm import group_norm_cost, instance_norm_cost, lrn_cost, resize_cost

ONNX_COMPARE = {"Equal": "equal", "Less": "less", "Greater": "greater", "LessOrEqual": "less_equal",
                "GreaterOrEqual": "greater_equal", "And": "and", "Or": "or", "Xor": "xor"}
READ_EVERY_INPUT = {"Where", "Gather", "GatherElements", "ScatterND", "ScatterElements", "Scatter", "Einsum",
                    *ONNX_COMPARE}
SAME_SHAPE = {"LRN", "InstanceNormalization", "GroupNormalization", "CumSum"}
RESIZE_MODE = {"nearest": "nearest", "linear": "linear", "bilinear": "linear", "cubic": "cubic"}
MORE_OPS = {"LRN", "Resize", "Upsample", "InstanceNormalization", "GroupNormalization", "Einsum", "Gather",
            "GatherElements", "ScatterND", "ScatterElements", "Scatter", "Expand", "Tile", "Pad", "TopK", "CumSum",
            "Where", "NonZero", "Range", *ONNX_COMPARE}


def _dtype(dtypes: dict, name: str, default: str | None = None) -> str | None:
    dt = dtypes.get(name, default)
    return dt if dt in DTYPE_BYTES else default


def const_array(constants, name: str):
    """A constant's values as numpy (constants hold TensorProtos or arrays), else None."""
    if not name or not isinstance(constants, dict) or name not in constants:
        return None
    value = constants[name]
    if isinstance(value, np.ndarray):
        return value
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(value)
    except Exception:  # not a tensor proto: not a value we can read
        return None


def _const_elems(names, shapes, constants) -> int:
    return sum(math.prod(shapes[n]) for n in names if n and n in constants and n in shapes)


def more_node_cost(op_type: str, inputs: list, outputs: list, attrs: dict, shapes: dict, dtypes: dict,
                   constants) -> tuple[str, OpCost] | None:
    """(category, OpCost) for one node of MORE_OPS, or None when a shape it needs is unknown."""
    present = [i for i in inputs if i]
    x = shapes.get(present[0]) if present else None
    y = shapes.get(outputs[0]) if outputs else None
    data_dtype = _dtype(dtypes, present[0]) if present else None
    if op_type == "NonZero":
        if x is None or data_dtype is None:
            return None
        return "eltwise", nonzero_cost(x, y[1] if y is not None and len(y) == 2 else None, dtype=data_dtype)
    if op_type == "Range":
        return _range(inputs, outputs, y, dtypes, constants)
    if y is None and op_type in SAME_SHAPE:
        y = x  # onnx's shape inference leaves some of these out (GroupNormalization: a function op)
    in_shapes = [shapes.get(i) for i in present]
    # Resize, Pad, Tile, Expand, TopK read their other inputs as values only: X and Y suffice.
    operands = in_shapes if op_type in READ_EVERY_INPUT else in_shapes[:1]
    if x is None or y is None or data_dtype is None or any(s is None for s in operands):
        return None
    if op_type in ONNX_COMPARE:
        return "eltwise", compare_cost(ONNX_COMPARE[op_type], in_shapes[0], in_shapes[1], dtype=data_dtype)
    dtype = _dtype(dtypes, outputs[0], data_dtype)
    index_dtype = _dtype(dtypes, inputs[1], "int64") if len(inputs) > 1 else "int64"
    if op_type == "Where":
        return "eltwise", where_cost(*in_shapes, dtype=dtype)
    if op_type == "Gather":
        cost = gather_cost(x, in_shapes[1], attrs.get("axis", 0), dtype=data_dtype, index_dtype=index_dtype)
        # A constant table is a weight (an embedding): its elements are the layer's parameters.
        table = math.prod(x) if inputs[0] in constants and "float" in data_dtype else 0
        return "data", with_changes(cost, params=table) if table else cost
    if op_type == "GatherElements":
        return "data", gather_elements_cost(x, in_shapes[1], attrs.get("axis", 0), dtype=data_dtype,
                                            index_dtype=index_dtype)
    if op_type == "ScatterND":
        return "data", scatter_nd_cost(x, in_shapes[1], in_shapes[2], reduction=attrs.get("reduction", "none"),
                                       dtype=data_dtype, index_dtype=index_dtype)
    if op_type in ("ScatterElements", "Scatter"):
        return "data", scatter_elements_cost(x, in_shapes[1], reduction=attrs.get("reduction", "none"),
                                             dtype=data_dtype, index_dtype=index_dtype)
    if op_type == "Expand":
        return "data", expand_cost(x, y, dtype=data_dtype)
    if op_type == "Tile":
        if len(x) != len(y) or any(b % a for a, b in zip(x, y)):
            raise CostError(f"repeats: output {y} is not a whole tiling of input {x}")
        return "data", tile_cost(x, [b // a for a, b in zip(x, y)], dtype=data_dtype)
    if op_type == "Pad":
        # The pads as the shapes show them (all at the end): exact in bytes unless one axis is
        # both cropped and padded.
        pads = [0] * len(x) + [b - a for a, b in zip(x, y)]
        return "data", pad_cost(x, pads, mode=attrs.get("mode", "constant"), dtype=data_dtype)
    if op_type == "TopK":
        axis = attrs.get("axis", -1)
        return "reduce", topk_cost(x, y[axis], axis, dtype=data_dtype,
                                   index_dtype=_dtype(dtypes, outputs[1], "int64") if len(outputs) > 1 else "int64")
    if op_type == "CumSum":
        return "reduce", cumsum_cost(x, dtype=data_dtype)
    if op_type == "Einsum":
        cost = einsum_cost(attrs.get("equation", ""), *in_shapes, dtype=dtype)
        weights = _const_elems(present, shapes, constants)
        if weights and cost.macs:
            return "linear", with_changes(cost, params=weights)
        return ("matmul" if cost.macs else "reduce" if cost.flops else "data"), cost
    return _norm_or_resize(op_type, inputs, attrs, x, y, shapes, constants, dtype)


def _norm_or_resize(op_type, inputs, attrs, x, y, shapes, constants, dtype):
    if op_type in ("Resize", "Upsample"):
        mode = attrs.get("mode", "nearest")
        if mode not in RESIZE_MODE:
            raise CostError(f"mode: unknown {op_type} mode {mode!r}; known: {', '.join(RESIZE_MODE)}")
        if attrs.get("antialias") and any(b < a for a, b in zip(x, y)):
            raise CostError("antialias: a downscale with antialias widens the filter; not modelled")
        cost = resize_cost(x, y, RESIZE_MODE[mode], dtype=dtype)
        return ("data" if RESIZE_MODE[mode] == "nearest" else "eltwise"), cost
    if op_type == "LRN":
        if "size" not in attrs:
            raise CostError("size: LRN needs its size attribute")
        return "norm", moved_to(lrn_cost(x, attrs["size"], dtype=dtype), "flops_norm")
    if op_type == "InstanceNormalization":
        cost = instance_norm_cost(x, dtype=dtype)
    else:  # GroupNormalization: scale and bias per group (opset 18) or per channel (opset 21)
        cost = group_norm_cost(x, attrs.get("num_groups", 1), dtype=dtype)
    affine = [i for i in inputs[1:3] if i]
    affine_elems = sum(math.prod(shapes[i]) for i in affine if i in shapes)
    cost = with_changes(cost, params=_const_elems(affine, shapes, constants),
                        bytes_read=(math.prod(x) + affine_elems) * dtype_bytes(dtype))
    return "norm", moved_to(cost, "flops_norm")


def _range(inputs, outputs, y, dtypes, constants):
    dtype = _dtype(dtypes, outputs[0]) if outputs else None
    if y is not None and dtype is not None:
        return "data", range_cost(math.prod(y), dtype=dtype)
    values = [const_array(constants, i) for i in inputs[:3]]
    if len(values) < 3 or any(v is None for v in values):
        return None
    start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in values)
    if delta == 0:
        raise CostError("delta: Range with delta 0 never ends")
    n = max(math.ceil((limit - start) / delta), 0)
    return "data", range_cost(n, dtype=dtype or "int64")
