"""Analytic cost model: FLOPs, parameters and bytes moved by one op.

One function per op kind, each returning an `OpCost`. The conventions below are
the contract; the README copies them.

FLOPs
- A multiply-add (MAC) is 2 FLOPs. `macs` is counted only for the contractions
  (conv2d, conv_transpose2d, linear, matmul, einsum), where flops_main == 2 x macs, and
  for attention (its two matmuls; its flops_main adds the scale and softmax); it is 0
  for every other op.
- conv2d follows the source document exactly:
      FLOPs = N x OC x OH x OW x IC/G x KH x KW x 2
  conv_transpose2d: every input pixel meets the whole kernel,
      FLOPs = N x IC x IH x IW x OC/G x KH x KW x 2
  (contributions later cropped by padding are counted, as torch's flop counter does).
  linear: 2 x rows x in_features x out_features; matmul: 2 x batch x M x K x N.
- The total is split into columns so it can be lined up with any other counter:
      flops_main      the multiply-adds x 2 (conv/linear/matmul); the op's own work (others)
      flops_bias      a bias: one add per output element
      flops_norm      a fused, unfolded BatchNorm: a multiply and an add per output element
      flops_act       a fused activation: UNARY_FLOPS[activation] per output element
      flops_residual  a fused residual add: one add per output element
      flops = flops_main + flops_bias + flops_norm + flops_act + flops_residual
  torchvision's published `_ops` and torch's FlopCounterMode count flops_main of
  conv/linear only; fvcore counts one per MAC (= macs).
- Element-wise ops cost UNARY_FLOPS[op] per output element, or BINARY_FLOPS[op] x (n - 1)
  for n inputs. exp, tanh, erf, sqrt... count 1 each; composite functions count the
  operations of their formula (sigmoid = neg, exp, add, div = 4).
- A reduction over R values counts R operations (not R - 1): pools cost KH x KW per
  output element (max and avg alike), global pools H x W per output element.
- softmax: 5 per element (max, subtract, exp, sum, divide).
- layernorm: 5 per element (sum, subtract mean, square, sum, scale by 1/std), 2 more
  with the affine (multiply, add), and 4 per normalised row (two divides by the row
  length, add eps, rsqrt).
- batchnorm (inference): 2 per element, x * scale + shift, with scale and shift
  precomputed from gamma, beta, mean and var. Folded into the preceding conv
  (`bn_folded=True`) it vanishes as an op and costs that conv only a bias.
- Integer dtypes are counted the same way; the "FLOPs" are then integer operations.
- More formulas, same conventions: ops_data.py (gather, scatter, pad, tile, expand, where,
  topk, cumsum, comparisons, nonzero, range), ops_norm.py (LRN, instance and group norm,
  resize), ops_attention.py (einsum, scaled dot-product attention).

Bytes
- Every tensor moves once: inputs and weights are read once, the output written once
  (the document's 访存量, the ideal where nothing is re-read from memory):
      conv bytes = (N x IC x IH x IW + N x OC x OH x OW + OC x IC/G x KH x KW) x sizeof(dtype)
- A bias reads OC values, an unfolded BatchNorm 2 x OC (scale, shift), a residual add an
  output-sized tensor; a fused activation moves no bytes.
- Broadcast inputs are read at their own size, not at the broadcast size.
- One dtype for every tensor of an op (int8 convs with int32 bias or accumulators
  are not modelled).

Parameters
- Weights of conv/linear (+ OC for a bias); BatchNorm and LayerNorm count 2 per channel
  (gamma and beta, as torch's parameters() does; running mean and var are buffers).

Units
- Counts are raw integers; intensity is true FLOPs per byte (flops / bytes, 0.0 when no
  bytes move). Convert with decimal SI (1 GB = 1e9 bytes, 1 GFLOP = 1e9 FLOPs). The source
  document's tables print MB meaning MiB (2^20 bytes), so its 计算密度 column,
  MFLOPs / MiB, is our intensity x 1.048576.

Errors
- An invalid configuration raises CostError (a ValueError) whose message starts with the
  offending field's name, e.g. "groups: in_channels 30 is not divisible by groups 4".
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from numbers import Integral

from harness.core.errors import UsageError


class CostError(UsageError, ValueError):
    """An invalid op configuration; the message starts with the offending field's name.

    A UsageError too, so the CLI reports it as one line rather than a traceback."""


DTYPE_BYTES = {
    "float64": 8, "fp64": 8,
    "float32": 4, "fp32": 4,
    "float16": 2, "fp16": 2,
    "bfloat16": 2, "bf16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1, "uint8": 1,
    "bool": 1,
}

# FLOPs per output element. Transcendentals count 1: hardware cost varies too much
# between targets for a finer figure to mean anything.
UNARY_FLOPS = {
    "identity": 0,
    "relu": 1,          # max(x, 0)
    "relu6": 2,         # min(max(x, 0), 6)
    "clip": 2,          # min(max(x, lo), hi)
    "leaky_relu": 2,    # compare, multiply
    "abs": 1, "neg": 1, "exp": 1, "log": 1, "sqrt": 1, "erf": 1,
    "tanh": 1,
    "sigmoid": 4,       # 1 / (1 + exp(-x)): neg, exp, add, div
    "hardsigmoid": 4,   # relu6(x + 3) / 6: add, max, min, div
    "silu": 5,          # x * sigmoid(x)
    "swish": 5,         # = silu
    "hardswish": 5,     # x * relu6(x + 3) / 6: add, max, min, mul, div
    "gelu": 5,          # 0.5 x (1 + erf(x / sqrt 2)): div, erf, add, mul, mul
    "gelu_tanh": 9,     # 0.5 x (1 + tanh(c (x + 0.044715 x^3))): 3 mul, add, mul, tanh, add, mul, mul
}

# FLOPs per output element for each pair of inputs combined; n inputs cost n - 1 times this.
BINARY_FLOPS = {"add": 1, "sub": 1, "mul": 1, "div": 1, "max": 1, "min": 1}

SOFTMAX_FLOPS_PER_ELEMENT = 5
LAYERNORM_FLOPS_PER_ELEMENT = 5
LAYERNORM_AFFINE_FLOPS_PER_ELEMENT = 2
LAYERNORM_FLOPS_PER_ROW = 4
BATCHNORM_FLOPS_PER_ELEMENT = 2

POOL_MODES = ("max", "avg", "global_max", "global_avg")


def _dtype_key(name) -> str:
    # str() and the prefix let torch and numpy dtype objects in ("torch.float16", "float16").
    key = str(name).lower().removeprefix("torch.")
    if key not in DTYPE_BYTES:
        raise CostError(f"dtype: unknown dtype {name!r}; known: {', '.join(DTYPE_BYTES)}")
    return key


def dtype_bytes(name) -> int:
    """Size in bytes of one element of `name` ("float32", "fp16", torch.int8, ...)."""
    return DTYPE_BYTES[_dtype_key(name)]


@dataclass(frozen=True)
class OpCost:
    """The cost of one op. flops, bytes and intensity are derived, never passed in."""

    op: str
    output_shape: tuple
    dtype: str
    macs: int = 0
    params: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    flops_main: int = 0
    flops_bias: int = 0
    flops_norm: int = 0
    flops_act: int = 0
    flops_residual: int = 0
    flops: int = field(init=False)
    bytes: int = field(init=False)
    intensity: float = field(init=False)

    def __post_init__(self):
        # Derived here so that the total can never disagree with its columns.
        flops = self.flops_main + self.flops_bias + self.flops_norm + self.flops_act + self.flops_residual
        total = self.bytes_read + self.bytes_written
        object.__setattr__(self, "output_shape", tuple(self.output_shape))
        object.__setattr__(self, "dtype", _dtype_key(self.dtype))  # a plain string, for JSON
        object.__setattr__(self, "flops", flops)
        object.__setattr__(self, "bytes", total)
        object.__setattr__(self, "intensity", flops / total if total else 0.0)

    def as_dict(self) -> dict:
        """Flat and JSON-serialisable, for records."""
        d = asdict(self)
        d["output_shape"] = list(self.output_shape)
        return d


# ---------------------------------------------------------------- validation helpers

def _is_int(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _pair(name: str, value) -> tuple[int, int]:
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise CostError(f"{name}: must be an int or an (h, w) pair of ints, got {value!r}")


def _positive_pair(name: str, value) -> tuple[int, int]:
    pair = _pair(name, value)
    if min(pair) <= 0:
        raise CostError(f"{name}: must be > 0, got {value!r}")
    return pair


def _nonnegative_pair(name: str, value) -> tuple[int, int]:
    pair = _pair(name, value)
    if min(pair) < 0:
        raise CostError(f"{name}: must be >= 0, got {value!r}")
    return pair


def _positive_int(name: str, value) -> int:
    if not _is_int(value):
        raise CostError(f"{name}: must be an int, got {value!r}")
    if value <= 0:
        raise CostError(f"{name}: must be > 0, got {value!r}")
    return int(value)


def _shape(name: str, shape, ndim: int | None = None, min_ndim: int = 0) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or not all(_is_int(s) for s in shape):
        raise CostError(f"{name}: must be a tuple of ints, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    if ndim is not None and len(shape) != ndim:
        raise CostError(f"{name}: must have {ndim} dims, got {len(shape)}: {shape}")
    if len(shape) < min_ndim:
        raise CostError(f"{name}: must have at least {min_ndim} dims, got {len(shape)}: {shape}")
    if any(s <= 0 for s in shape):
        raise CostError(f"{name}: sizes must be > 0, got {shape}")
    return shape


def _broadcast(name: str, shapes) -> tuple[int, ...]:
    """numpy broadcasting of `shapes`; the error names the pair that fails."""
    out: tuple[int, ...] = ()
    for shape in shapes:
        ndim = max(len(out), len(shape))
        a = (1,) * (ndim - len(out)) + out
        b = (1,) * (ndim - len(shape)) + shape
        if any(x != y and x != 1 and y != 1 for x, y in zip(a, b)):
            raise CostError(f"{name}: {out} and {shape} do not broadcast")
        out = tuple(max(x, y) for x, y in zip(a, b))
    return out


# The checks under public names, for the other formula modules (ops_data, ops_norm, ops_attention).
is_int = _is_int
checked_shape = _shape
broadcast_shapes = _broadcast


def _activation_flops(activation) -> int:
    if activation is None:
        return 0
    if activation not in UNARY_FLOPS:
        raise CostError(f"activation: unknown {activation!r}; known: {', '.join(UNARY_FLOPS)}")
    return UNARY_FLOPS[activation]


def contraction_cost(op, output_shape, dtype, *, macs, input_elems, weight_elems, channels,
                 bias, batchnorm, bn_folded, activation, residual) -> OpCost:
    """A conv/linear with its optional fused epilogue: bias, BatchNorm, activation, residual."""
    size = dtype_bytes(dtype)
    if bn_folded and not batchnorm:
        raise CostError("bn_folded: needs batchnorm=True (there is no BatchNorm to fold)")
    out = math.prod(output_shape)
    # Folding BN into the weights leaves a per-channel bias (merged into an existing one).
    has_bias = bias or bn_folded
    bn_unfolded = batchnorm and not bn_folded
    bias_elems = channels if has_bias else 0
    bn_elems = 2 * channels if bn_unfolded else 0
    residual_elems = out if residual else 0
    return OpCost(
        op=op, output_shape=output_shape, dtype=dtype, macs=macs,
        params=weight_elems + bias_elems + bn_elems,
        bytes_read=(input_elems + weight_elems + bias_elems + bn_elems + residual_elems) * size,
        bytes_written=out * size,
        flops_main=2 * macs,
        flops_bias=out if has_bias else 0,
        flops_norm=BATCHNORM_FLOPS_PER_ELEMENT * out if bn_unfolded else 0,
        flops_act=_activation_flops(activation) * out,
        flops_residual=out if residual else 0,
    )


# ---------------------------------------------------------------- ops

def _grouped_conv(name: str, input_shape, out_channels, groups) -> tuple[tuple[int, ...], int, int]:
    """An (N, C, H, W) input, output channels and groups, checked: both channel counts divide."""
    shape = _shape(name, input_shape, ndim=4)
    oc = _positive_int("out_channels", out_channels)
    g = _positive_int("groups", groups)
    if shape[1] % g:
        raise CostError(f"groups: in_channels {shape[1]} is not divisible by groups {g}")
    if oc % g:
        raise CostError(f"groups: out_channels {oc} is not divisible by groups {g}")
    return shape, oc, g


def conv2d_output_size(input_size, kernel_size, stride=1, padding=0, dilation=1) -> tuple[int, int]:
    """(OH, OW) of a conv or pool: floor((H + 2P - D(K - 1) - 1) / S) + 1 per side."""
    ih, iw = _positive_pair("input_size", input_size)
    kh, kw = _positive_pair("kernel_size", kernel_size)
    sh, sw = _positive_pair("stride", stride)
    ph, pw = _nonnegative_pair("padding", padding)
    dh, dw = _positive_pair("dilation", dilation)
    oh = (ih + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (iw + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        raise CostError(
            f"output size: {(oh, ow)} is not positive for input {ih}x{iw}, kernel {kernel_size}, "
            f"stride {stride}, padding {padding}, dilation {dilation}")
    return oh, ow


def conv2d_cost(input_shape, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, *,
                bias=False, batchnorm=False, bn_folded=False, activation=None, residual=False,
                dtype="float32") -> OpCost:
    """Conv2d on an (N, C, H, W) input; depthwise is groups == C.

    bias=False by default because the document's formula has none (torch's default is True).
    batchnorm=True fuses an unfolded inference BatchNorm; add bn_folded=True to fold it
    into the weights instead, which costs exactly a bias."""
    (n, ic, ih, iw), oc, g = _grouped_conv("input_shape", input_shape, out_channels, groups)
    kh, kw = _positive_pair("kernel_size", kernel_size)
    oh, ow = conv2d_output_size((ih, iw), kernel_size, stride, padding, dilation)
    output_shape = (n, oc, oh, ow)
    weight = oc * (ic // g) * kh * kw
    return contraction_cost(
        "conv2d", output_shape, dtype,
        macs=n * oc * oh * ow * (ic // g) * kh * kw,
        input_elems=n * ic * ih * iw, weight_elems=weight, channels=oc,
        bias=bias, batchnorm=batchnorm, bn_folded=bn_folded, activation=activation, residual=residual)


def conv_transpose2d_cost(input_shape, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                          dilation=1, groups=1, *, bias=False, activation=None, residual=False,
                          dtype="float32") -> OpCost:
    """ConvTranspose2d (deconv) on an (N, C, H, W) input; weight is (IC, OC/G, KH, KW).

    OH = (IH - 1) x S - 2P + D(K - 1) + output_padding + 1, as torch."""
    (n, ic, ih, iw), oc, g = _grouped_conv("input_shape", input_shape, out_channels, groups)
    kh, kw = _positive_pair("kernel_size", kernel_size)
    sh, sw = _positive_pair("stride", stride)
    ph, pw = _nonnegative_pair("padding", padding)
    oph, opw = _nonnegative_pair("output_padding", output_padding)
    dh, dw = _positive_pair("dilation", dilation)
    # torch's rule: output_padding only picks among the sizes a stride or dilation makes ambiguous.
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        raise CostError(f"output_padding: must be smaller than stride or dilation, got {output_padding!r} "
                        f"with stride {stride!r}, dilation {dilation!r}")
    oh = (ih - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (iw - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if oh <= 0 or ow <= 0:
        raise CostError(
            f"output size: {(oh, ow)} is not positive for input {ih}x{iw}, kernel {kernel_size}, "
            f"stride {stride}, padding {padding}, output_padding {output_padding}, dilation {dilation}")
    weight = ic * (oc // g) * kh * kw
    return contraction_cost(
        "conv_transpose2d", (n, oc, oh, ow), dtype,
        macs=n * ic * ih * iw * (oc // g) * kh * kw,
        input_elems=n * ic * ih * iw, weight_elems=weight, channels=oc,
        bias=bias, batchnorm=False, bn_folded=False, activation=activation, residual=residual)


def linear_cost(input_shape, out_features, *, bias=False, activation=None, residual=False,
                dtype="float32") -> OpCost:
    """Linear / Gemm: input (..., in_features) -> (..., out_features); leading dims are rows."""
    shape = _shape("input_shape", input_shape, min_ndim=1)
    out_f = _positive_int("out_features", out_features)
    in_f = shape[-1]
    rows = math.prod(shape[:-1])
    weight = in_f * out_f
    return contraction_cost(
        "linear", shape[:-1] + (out_f,), dtype,
        macs=rows * in_f * out_f,
        input_elems=rows * in_f, weight_elems=weight, channels=out_f,
        bias=bias, batchnorm=False, bn_folded=False, activation=activation, residual=residual)


def matmul_cost(a_shape, b_shape, *, dtype="float32") -> OpCost:
    """Batched MatMul with numpy/torch semantics: batch dims broadcast, 1-D operands promoted.

    Both operands are activations, so params is 0 (a constant operand is a linear_cost)."""
    a = _shape("a_shape", a_shape, min_ndim=1)
    b = _shape("b_shape", b_shape, min_ndim=1)
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    m, k = a2[-2:]
    if b2[-2] != k:
        raise CostError(f"b_shape: contraction dim {b2[-2]} of {b} does not match {k}, the last dim of a_shape {a}")
    n = b2[-1]
    batch = _broadcast("b_shape", [a2[:-2], b2[:-2]])
    output_shape = batch + ((m,) if len(a) > 1 else ()) + ((n,) if len(b) > 1 else ())
    size = dtype_bytes(dtype)
    macs = math.prod(batch) * m * n * k
    return OpCost(
        op="matmul", output_shape=output_shape, dtype=dtype, macs=macs,
        bytes_read=(math.prod(a) + math.prod(b)) * size,
        bytes_written=math.prod(output_shape) * size,
        flops_main=2 * macs)


def eltwise_cost(op, *input_shapes, dtype="float32") -> OpCost:
    """An element-wise op: a unary one (relu, sigmoid, ...) on one input, or a binary one
    (add, mul, ...) on two or more inputs that broadcast; every input is read once."""
    if op in UNARY_FLOPS:
        if len(input_shapes) != 1:
            raise CostError(f"input_shapes: {op} takes 1 input, got {len(input_shapes)}")
    elif op in BINARY_FLOPS:
        if len(input_shapes) < 2:
            raise CostError(f"input_shapes: {op} takes at least 2 inputs, got {len(input_shapes)}")
    else:
        raise CostError(f"op: unknown element-wise op {op!r}; known: {', '.join([*UNARY_FLOPS, *BINARY_FLOPS])}")
    shapes = [_shape("input_shapes", s) for s in input_shapes]
    output_shape = _broadcast("input_shapes", shapes)
    per_element = UNARY_FLOPS[op] if op in UNARY_FLOPS else BINARY_FLOPS[op] * (len(shapes) - 1)
    size = dtype_bytes(dtype)
    out = math.prod(output_shape)
    return OpCost(
        op=op, output_shape=output_shape, dtype=dtype,
        bytes_read=sum(math.prod(s) for s in shapes) * size,
        bytes_written=out * size,
        flops_main=per_element * out)


def pool2d_cost(input_shape, kernel_size=None, stride=None, padding=0, dilation=1, *, mode="max",
                dtype="float32") -> OpCost:
    """Max/avg pooling on (N, C, H, W); stride defaults to the kernel, as torch.
    mode "global_max" / "global_avg" pools the whole H x W (kernel_size must be None)."""
    n, c, ih, iw = _shape("input_shape", input_shape, ndim=4)
    if mode not in POOL_MODES:
        raise CostError(f"mode: unknown pooling mode {mode!r}; known: {', '.join(POOL_MODES)}")
    if mode.startswith("global"):
        if kernel_size is not None:
            raise CostError(f"kernel_size: must be None for {mode} pooling (the window is the whole H x W), "
                            f"got {kernel_size!r}")
        window, (oh, ow) = ih * iw, (1, 1)
    else:
        if kernel_size is None:
            raise CostError(f"kernel_size: required for {mode} pooling")
        kh, kw = _positive_pair("kernel_size", kernel_size)
        window = kh * kw
        oh, ow = conv2d_output_size((ih, iw), kernel_size, kernel_size if stride is None else stride,
                                    padding, dilation)
    size = dtype_bytes(dtype)
    out = n * c * oh * ow
    return OpCost(
        op=f"{mode}_pool2d", output_shape=(n, c, oh, ow), dtype=dtype,
        bytes_read=n * c * ih * iw * size,
        bytes_written=out * size,
        flops_main=window * out)


def batchnorm_cost(input_shape, *, bn_folded=False, dtype="float32") -> OpCost:
    """Inference BatchNorm on (N, C, ...): x * scale + shift per element, channel dim 1.

    bn_folded=True: folded into the preceding conv, the op is gone and costs nothing
    here; its whole cost is that conv's bias (conv2d_cost(..., batchnorm=True, bn_folded=True))."""
    shape = _shape("input_shape", input_shape, min_ndim=2)
    if bn_folded:
        return OpCost(op="batchnorm(folded)", output_shape=shape, dtype=dtype)
    size = dtype_bytes(dtype)
    c = shape[1]
    elems = math.prod(shape)
    return OpCost(
        op="batchnorm", output_shape=shape, dtype=dtype,
        params=2 * c,
        bytes_read=(elems + 2 * c) * size,
        bytes_written=elems * size,
        flops_main=BATCHNORM_FLOPS_PER_ELEMENT * elems)


def concat_cost(input_shapes, axis=1, *, dtype="float32") -> OpCost:
    """Concat: no arithmetic, every input read once and the output written once."""
    if not isinstance(input_shapes, (tuple, list)) or not input_shapes:
        raise CostError(f"input_shapes: must be a non-empty list of shapes, got {input_shapes!r}")
    shapes = [_shape("input_shapes", s, min_ndim=1) for s in input_shapes]
    ndim = len(shapes[0])
    if not _is_int(axis) or not -ndim <= axis < ndim:
        raise CostError(f"axis: must be an int in [{-ndim}, {ndim}), got {axis!r}")
    axis %= ndim
    for s in shapes[1:]:
        if len(s) != ndim or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
            raise CostError(f"input_shapes: {s} does not match {shapes[0]} outside axis {axis}")
    output_shape = shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]
    size = dtype_bytes(dtype)
    elems = math.prod(output_shape)
    return OpCost(op="concat", output_shape=output_shape, dtype=dtype,
                  bytes_read=elems * size, bytes_written=elems * size)


def softmax_cost(input_shape, dim=-1, *, dtype="float32") -> OpCost:
    """Softmax along `dim`: 5 FLOPs per element; read once, written once (one fused pass)."""
    shape = _shape("input_shape", input_shape, min_ndim=1)
    if not _is_int(dim) or not -len(shape) <= dim < len(shape):
        raise CostError(f"dim: must be an int in [{-len(shape)}, {len(shape)}), got {dim!r}")
    size = dtype_bytes(dtype)
    elems = math.prod(shape)
    return OpCost(op="softmax", output_shape=shape, dtype=dtype,
                  bytes_read=elems * size, bytes_written=elems * size,
                  flops_main=SOFTMAX_FLOPS_PER_ELEMENT * elems)


def layernorm_cost(input_shape, normalized_shape, *, elementwise_affine=True, dtype="float32") -> OpCost:
    """LayerNorm over the trailing `normalized_shape` dims (int or tuple), as torch."""
    shape = _shape("input_shape", input_shape, min_ndim=1)
    norm = (normalized_shape,) if _is_int(normalized_shape) else normalized_shape
    norm = _shape("normalized_shape", norm, min_ndim=1)
    if len(norm) > len(shape) or shape[len(shape) - len(norm):] != norm:
        raise CostError(f"normalized_shape: {norm} does not match the trailing dims of input_shape {shape}")
    size = dtype_bytes(dtype)
    elems = math.prod(shape)
    rows = elems // math.prod(norm)
    params = 2 * math.prod(norm) if elementwise_affine else 0
    per_element = LAYERNORM_FLOPS_PER_ELEMENT + (LAYERNORM_AFFINE_FLOPS_PER_ELEMENT if elementwise_affine else 0)
    return OpCost(op="layernorm", output_shape=shape, dtype=dtype, params=params,
                  bytes_read=(elems + params) * size, bytes_written=elems * size,
                  flops_main=per_element * elems + LAYERNORM_FLOPS_PER_ROW * rows)


# --------------------------------------------------------------------------- shapes as frameworks give them

def pairs(v):
    """torch's int-or-sequence argument as the cost model takes it: an int or an (h, w) pair."""
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1]))
    return int(v)


def pair2(v) -> tuple[int, int]:
    v = pairs(v)
    return (v, v) if isinstance(v, int) else v


def conv2d_cost_padded(x, w, y, stride, dilation, groups, bias, dtype) -> OpCost:
    """A conv whose padding is given as a rule ('same', auto_pad, asymmetric pads): the cost
    of the same conv on the input padded to what the output needs, reading only the real input."""
    (sh, sw), (dh, dw) = pair2(stride), pair2(dilation)
    kh, kw = w[2], w[3]
    ph = max((y[2] - 1) * sh + dh * (kh - 1) + 1 - x[2], 0)
    pw = max((y[3] - 1) * sw + dw * (kw - 1) + 1 - x[3], 0)
    cost = conv2d_cost((x[0], x[1], x[2] + ph, x[3] + pw), w[0], (kh, kw), (sh, sw), 0, (dh, dw), groups,
                       bias=bias, dtype=dtype)
    pad_bytes = x[0] * x[1] * ((x[2] + ph) * (x[3] + pw) - x[2] * x[3]) * dtype_bytes(dtype)
    return dataclasses.replace(cost, bytes_read=cost.bytes_read - pad_bytes)


def window_pool_cost(mode: str, x, y, kernel, dtype) -> OpCost:
    """A KH x KW window per output element (the cost model's convention), the output shape as run."""
    kh, kw = pair2(kernel)
    size = dtype_bytes(dtype)
    return OpCost(op=f"{mode}_pool2d", output_shape=tuple(y), dtype=dtype, bytes_read=math.prod(x) * size,
                  bytes_written=math.prod(y) * size, flops_main=kh * kw * math.prod(y))


def adaptive_pool_cost(mode: str, x, y, dtype) -> OpCost:
    """Adaptive pooling: output cell i covers input rows floor(i H / OH) .. ceil((i + 1) H / OH),
    as torch; each output element costs its window's size (a 1x1 output is a global pool)."""
    n, c, ih, iw = x
    oh, ow = y[-2], y[-1]
    rows = sum(math.ceil((i + 1) * ih / oh) - (i * ih) // oh for i in range(oh))
    cols = sum(math.ceil((j + 1) * iw / ow) - (j * iw) // ow for j in range(ow))
    size = dtype_bytes(dtype)
    op = f"global_{mode}_pool2d" if (oh, ow) == (1, 1) else f"adaptive_{mode}_pool2d"
    return OpCost(op=op, output_shape=tuple(y), dtype=dtype, bytes_read=math.prod(x) * size,
                  bytes_written=math.prod(y) * size, flops_main=n * c * rows * cols)
