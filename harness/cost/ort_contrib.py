"""ONNX Runtime's contrib ops (com.microsoft) whose formulas both the graph side
(onnx_graph.onnx_node_cost, a file that holds them) and the kernel side (ort_kernels, the
kernels ONNX Runtime runs) need: one home for each fact.

- The activations a FusedConv/FusedGemm carries (FUSED_ACTIVATIONS, fused_activation).
- FusedMatMul: its operands as multiplied (transBatchA/B, transA/B) and its alpha.
- The quantized element-wise and pooling ops (QLINEAR_OPS): QLinearAdd, QLinearMul,
  QLinearSigmoid, QLinearLeakyRelu, QLinearGlobalAveragePool, QLinearAveragePool,
  QLinearConcat, QLinearSoftmax.

The quantized ops' convention: FLOPs are the float op's, counted as the cost model counts
that op (an add 1 per output element, a sigmoid 4, a window average one per element of the
window...), in the float op's column; the dequantize and requantize arithmetic is not
counted (ONNX Runtime runs QLinearSigmoid, QLinearLeakyRelu and QLinearSoftmax through
256-entry lookup tables built when the session is made, and QLinearAdd/Mul in fixed-point
lanes, so that arithmetic is not a per-element float cost). This differs on purpose from
QLinearConv and QLinearMatMul (ort_kernels), whose requantisation is one epilogue per output
element beside K multiply-adds and is booked in flops_bias. Bytes: every input at its own
type (the int8/uint8 data, the float scales and the 8-bit zero points) and the output at its.
"""
from __future__ import annotations

import math

from harness.cost import ops as cm
from harness.cost.model import moved_to, with_changes

FUSED_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leaky_relu",
                     "HardSigmoid": "hardsigmoid", "Clip": "clip", "HardSwish": "hardswish"}

# The data inputs of each quantized op (the rest are scales and zero points; QLinearConcat's
# inputs are y_scale, y_zero_point, then (X, X_scale, X_zero_point) per input).
QLINEAR_OPS = {"QLinearAdd": (0, 3), "QLinearMul": (0, 3), "QLinearSigmoid": (0,), "QLinearLeakyRelu": (0,),
               "QLinearGlobalAveragePool": (0,), "QLinearAveragePool": (0,), "QLinearConcat": None,
               "QLinearSoftmax": (0,)}


def fused_activation(attrs: dict) -> str | None:
    """The cost model's name for a fused node's `activation` attribute (Clip(0, 6): relu6),
    None where it has none; CostError for one there is no formula for."""
    act = attrs.get("activation")
    if not act:
        return None
    if act not in FUSED_ACTIVATIONS:
        raise cm.CostError(f"activation: no formula for the fused activation {act!r}")
    if act == "Clip" and [float(v) for v in attrs.get("activation_params", [])] == [0.0, 6.0]:
        return "relu6"
    return FUSED_ACTIVATIONS[act]


def logical_operand(shape, trans_batch: bool, trans: bool) -> tuple:
    """A FusedMatMul operand as it is multiplied: transBatch moves dim 0 to just before the
    matrix dims ([d0, d1, .., dn-2, dn-1] -> [d1, .., dn-2, d0, dn-1]), then trans swaps the
    last two."""
    shape = tuple(shape)
    if trans_batch and len(shape) >= 3:
        shape = (*shape[1:-1], shape[0], shape[-1])
    if trans and len(shape) >= 2:
        shape = (*shape[:-2], shape[-1], shape[-2])
    return shape


def fused_matmul_cost(a_shape, b_shape, attrs: dict, b_const: bool, dtype: str) -> tuple[str, cm.OpCost]:
    """(category, OpCost) of a FusedMatMul: alpha * op(A) @ op(B) with op the transposes of
    logical_operand. A constant 2-D B is a weight (linear); alpha != 1 scales each output
    element once (flops_bias, the epilogue)."""
    a = logical_operand(a_shape, attrs.get("transBatchA"), attrs.get("transA"))
    b = logical_operand(b_shape, attrs.get("transBatchB"), attrs.get("transB"))
    if b_const and len(b) == 2:
        category, cost = "linear", cm.linear_cost(a, b[1], dtype=dtype)
    else:
        category, cost = "matmul", cm.matmul_cost(a, b, dtype=dtype)
    if float(attrs.get("alpha", 1.0)) != 1.0:
        cost = with_changes(cost, flops_bias=cost.flops_bias + math.prod(cost.output_shape))
    return category, cost


def qlinear_cost(op: str, attrs: dict, shapes: list, dtypes: list, consts: list, y, y_dtype: str):
    """(category, OpCost) of one of QLINEAR_OPS from its inputs' shapes, dtypes and
    constant-ness (lists by input slot; None or False for an input left out) and its output;
    None where a shape it needs is missing. The module's docstring gives the convention."""
    data = list(range(2, len(shapes), 3)) if op == "QLinearConcat" else list(QLINEAR_OPS[op])
    x_shapes = [shapes[i] if i < len(shapes) else None for i in data]
    if y is None or not x_shapes or any(s is None for s in x_shapes):
        return None
    dtype = dtypes[data[0]]
    if dtype not in cm.DTYPE_BYTES or y_dtype not in cm.DTYPE_BYTES:
        return None
    read = sum(math.prod(s) * cm.dtype_bytes(d) for s, d in zip(shapes, dtypes) if s is not None and d)
    out = math.prod(y)
    base = cm.OpCost(op=op, output_shape=tuple(y), dtype=dtype, bytes_read=read,
                     bytes_written=out * cm.dtype_bytes(y_dtype))
    if op in ("QLinearAdd", "QLinearMul"):
        cost = with_changes(base, flops_main=cm.BINARY_FLOPS["add" if op == "QLinearAdd" else "mul"] * out)
        constant = [i for i in data if i < len(consts) and consts[i]]
        params = sum(math.prod(shapes[i]) for i in constant if math.prod(shapes[i]) > 1)
        if op == "QLinearAdd" and not constant and x_shapes[0] == x_shapes[1]:
            return "residual", moved_to(cost, "flops_residual")  # two activations of one shape
        return "eltwise", with_changes(cost, params=params)
    if op in ("QLinearSigmoid", "QLinearLeakyRelu"):
        act = "sigmoid" if op == "QLinearSigmoid" else "leaky_relu"
        return "act", with_changes(base, flops_act=cm.UNARY_FLOPS[act] * out)
    if op == "QLinearGlobalAveragePool":  # every input element summed once into its channel
        return "pool", with_changes(base, flops_main=math.prod(x_shapes[0]))
    if op == "QLinearAveragePool":  # a window per output element, as the float AveragePool
        if "kernel_shape" not in attrs:
            raise cm.CostError("kernel_shape: QLinearAveragePool needs its kernel_shape attribute")
        return "pool", with_changes(base, flops_main=math.prod(attrs["kernel_shape"]) * out)
    if op == "QLinearConcat":
        return "data", base
    return "softmax", with_changes(base, flops_main=cm.SOFTMAX_FLOPS_PER_ELEMENT * out)
