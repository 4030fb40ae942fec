"""harness.cost against hand-computed figures, its own invariants, and torch's flop counter."""
import json

import pytest

from harness.cost.ops import (
    BINARY_FLOPS, DTYPE_BYTES, UNARY_FLOPS, CostError, OpCost, batchnorm_cost, concat_cost,
    conv2d_cost, conv2d_output_size, conv_transpose2d_cost, dtype_bytes, eltwise_cost,
    layernorm_cost, linear_cost, matmul_cost, pool2d_cost, softmax_cost,
)
from harness.core.errors import UsageError

try:
    import torch
except ImportError:  # the cross-checks need torch; the rest of this file does not
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

# ---------------------------------------------------------------- conv2d


def test_conv_resnet_stem():
    # 7x7/2 conv, 3 -> 64 on 224x224: the well-known 118M MACs of ResNet's first layer.
    c = conv2d_cost((1, 3, 224, 224), 64, 7, stride=2, padding=3)
    assert c.op == "conv2d"
    assert c.output_shape == (1, 64, 112, 112)
    assert c.macs == 64 * 112 * 112 * 3 * 7 * 7 == 118_013_952
    assert c.flops == c.flops_main == 2 * c.macs
    assert c.params == 64 * 3 * 49 == 9408
    assert c.bytes_read == (3 * 224 * 224 + 9408) * 4
    assert c.bytes_written == 64 * 112 * 112 * 4
    assert c.bytes == c.bytes_read + c.bytes_written
    assert c.intensity == c.flops / c.bytes


def test_conv_depthwise():
    c = conv2d_cost((1, 32, 112, 112), 32, 3, padding=1, groups=32)
    assert c.output_shape == (1, 32, 112, 112)
    assert c.macs == 32 * 112 * 112 * 9  # IC/G = 1
    assert c.params == 32 * 9
    assert c.bytes == (2 * 32 * 112 * 112 + 32 * 9) * 4
    # Depthwise is memory-bound: under 1 FLOP per byte.
    assert c.intensity == pytest.approx(2 * 9 / (2 * 4), rel=1e-3)


def test_conv_grouped():
    c = conv2d_cost((2, 8, 10, 10), 12, 3, groups=4)
    assert c.output_shape == (2, 12, 8, 8)
    assert c.macs == 2 * 12 * 8 * 8 * (8 // 4) * 9 == 27_648
    assert c.params == 12 * 2 * 9


def test_conv_dilated():
    # Dilation 2 spreads a 3x3 kernel over 5x5; padding 2 keeps the size.
    c = conv2d_cost((1, 4, 16, 16), 4, 3, padding=2, dilation=2)
    assert c.output_shape == (1, 4, 16, 16)
    assert c.macs == 4 * 16 * 16 * 4 * 9
    # Dilation 3, no padding: 16 - 3 x 2 = 10.
    assert conv2d_cost((1, 4, 16, 16), 4, 3, dilation=3).output_shape == (1, 4, 10, 10)


def test_conv_strided_rectangular():
    c = conv2d_cost((1, 2, 11, 20), 3, (3, 5), stride=(2, 3), padding=(1, 0))
    # (11 + 2 - 2 - 1) // 2 + 1 = 6 and (20 - 4 - 1) // 3 + 1 = 6
    assert c.output_shape == (1, 3, 6, 6)
    assert c.macs == 3 * 6 * 6 * 2 * 3 * 5 == 3240


def test_conv2d_output_size():
    assert conv2d_output_size(224, 7, 2, 3) == (112, 112)
    assert conv2d_output_size((7, 9), 3) == (5, 7)
    assert conv2d_output_size(5, 5) == (1, 1)
    assert conv2d_output_size(8, 3, stride=2) == (3, 3)  # floor, as torch


def test_conv_bias_activation_residual_columns():
    out = 8 * 4 * 4
    c = conv2d_cost((1, 8, 4, 4), 8, 1, bias=True, activation="relu6", residual=True)
    assert c.flops_main == 2 * out * 8
    assert c.flops_bias == out
    assert c.flops_norm == 0
    assert c.flops_act == 2 * out
    assert c.flops_residual == out
    assert c.flops == 2 * out * 8 + out + 2 * out + out
    assert c.params == 64 + 8
    # input + weight + bias + residual read; the activation moves nothing.
    assert c.bytes_read == (128 + 64 + 8 + 128) * 4
    assert c.bytes_written == 128 * 4
    plain = conv2d_cost((1, 8, 4, 4), 8, 1)
    with_act = conv2d_cost((1, 8, 4, 4), 8, 1, activation="silu")
    assert with_act.bytes == plain.bytes and with_act.flops_act == 5 * out


def test_batchnorm_folding_costs_only_a_bias():
    shape, oc, out = (1, 16, 8, 8), 32, 32 * 8 * 8
    plain = conv2d_cost(shape, oc, 3, padding=1)
    unfolded = conv2d_cost(shape, oc, 3, padding=1, batchnorm=True)
    folded = conv2d_cost(shape, oc, 3, padding=1, batchnorm=True, bn_folded=True)
    with_bias = conv2d_cost(shape, oc, 3, padding=1, bias=True)
    assert unfolded.flops_norm == 2 * out
    assert unfolded.params == plain.params + 2 * oc
    assert unfolded.bytes_read == plain.bytes_read + 2 * oc * 4
    assert folded.as_dict() == with_bias.as_dict()
    assert folded.flops - plain.flops == out  # one add per output element
    assert folded.params - plain.params == oc
    assert folded.bytes - plain.bytes == oc * 4
    # An existing bias absorbs the folded BN: still just one bias.
    assert conv2d_cost(shape, oc, 3, padding=1, bias=True, batchnorm=True, bn_folded=True) == with_bias
    # Standalone: the BN op costs a multiply-add per element; folded it is gone.
    bn = batchnorm_cost((1, oc, 8, 8))
    assert (bn.flops, bn.params, bn.bytes_read, bn.bytes_written) == (2 * out, 2 * oc, (out + 2 * oc) * 4, out * 4)
    gone = batchnorm_cost((1, oc, 8, 8), bn_folded=True)
    assert (gone.flops, gone.bytes, gone.params, gone.intensity) == (0, 0, 0, 0.0)
    assert gone.output_shape == (1, oc, 8, 8)
    assert plain.flops + bn.flops - folded.flops == out  # what folding saves


# ---------------------------------------------------------------- conv_transpose2d, linear, matmul


def test_conv_transpose():
    # 4x4/2 with padding 1 doubles 7x7 to 14x14 (a DCGAN-style upsampler).
    c = conv_transpose2d_cost((1, 16, 7, 7), 8, 4, stride=2, padding=1)
    assert c.op == "conv_transpose2d"
    assert c.output_shape == (1, 8, 14, 14)
    assert c.macs == 16 * 7 * 7 * 8 * 16 == 100_352  # every input pixel meets the whole kernel
    assert c.params == 16 * 8 * 16
    assert c.bytes_read == (16 * 49 + 2048) * 4
    assert c.bytes_written == 8 * 14 * 14 * 4
    # 3x3/2, padding 1: output_padding 1 picks 14 rather than 13.
    assert conv_transpose2d_cost((1, 4, 7, 7), 4, 3, stride=2, padding=1).output_shape == (1, 4, 13, 13)
    assert conv_transpose2d_cost((1, 4, 7, 7), 4, 3, stride=2, padding=1,
                                 output_padding=1).output_shape == (1, 4, 14, 14)
    g = conv_transpose2d_cost((2, 8, 5, 5), 12, 3, stride=2, groups=2, bias=True)
    assert g.output_shape == (2, 12, 11, 11)
    assert g.macs == 2 * 8 * 25 * 6 * 9
    assert g.params == 8 * 6 * 9 + 12
    assert g.flops_bias == 2 * 12 * 11 * 11


def test_linear():
    c = linear_cost((8, 128, 768), 3072, bias=True, activation="gelu")
    rows = 8 * 128
    assert c.op == "linear"
    assert c.output_shape == (8, 128, 3072)
    assert c.macs == rows * 768 * 3072
    assert c.flops_main == 2 * c.macs
    assert c.flops_bias == rows * 3072
    assert c.flops_act == 5 * rows * 3072
    assert c.params == 768 * 3072 + 3072
    assert c.bytes_read == (rows * 768 + 768 * 3072 + 3072) * 4
    assert c.bytes_written == rows * 3072 * 4
    v = linear_cost((10,), 5)
    assert (v.output_shape, v.macs, v.params) == ((5,), 50, 50)


def test_matmul_broadcasting():
    c = matmul_cost((4, 1, 3, 5), (6, 5, 2))
    assert c.output_shape == (4, 6, 3, 2)
    assert c.macs == 4 * 6 * 3 * 5 * 2 == 720
    assert c.params == 0
    assert c.bytes_read == (4 * 3 * 5 + 6 * 5 * 2) * 4  # broadcast operands read once
    assert c.bytes_written == 4 * 6 * 3 * 2 * 4
    # Attention scores: (B, heads, S, d) @ (B, heads, d, S).
    a = matmul_cost((2, 12, 128, 64), (2, 12, 64, 128), dtype="fp16")
    assert a.output_shape == (2, 12, 128, 128)
    assert a.flops == 2 * 2 * 12 * 128 * 128 * 64
    assert a.bytes == (2 * 2 * 12 * 128 * 64 + 2 * 12 * 128 * 128) * 2
    # 1-D operands are promoted and the promoted dim dropped, as numpy and torch.
    assert matmul_cost((5,), (5,)).output_shape == ()
    assert matmul_cost((5,), (5,)).macs == 5
    assert matmul_cost((3, 5), (5,)).output_shape == (3,)
    assert matmul_cost((5,), (2, 5, 4)).output_shape == (2, 4)


# ---------------------------------------------------------------- memory-bound ops


def test_eltwise_add_is_one_twelfth():
    # The document's example: fp32 EltwiseAdd has I = 1 / 12 FLOPs per byte.
    c = eltwise_cost("add", (1, 64, 56, 56), (1, 64, 56, 56))
    assert c.flops == 64 * 56 * 56
    assert c.intensity == pytest.approx(1 / 12)


@pytest.mark.parametrize("op", sorted(UNARY_FLOPS))
def test_eltwise_unary_table(op):
    c = eltwise_cost(op, (2, 3, 4))
    assert c.op == op
    assert c.flops == c.flops_main == UNARY_FLOPS[op] * 24
    assert (c.bytes_read, c.bytes_written) == (24 * 4, 24 * 4)


def test_eltwise_table_figures():
    assert UNARY_FLOPS["relu"] == 1
    assert UNARY_FLOPS["sigmoid"] == 4
    assert UNARY_FLOPS["silu"] == UNARY_FLOPS["swish"] == UNARY_FLOPS["sigmoid"] + 1
    assert UNARY_FLOPS["hardswish"] == 5
    assert set(BINARY_FLOPS) == {"add", "sub", "mul", "div", "max", "min"}


def test_eltwise_n_inputs_and_broadcast():
    three = eltwise_cost("add", (2, 8), (2, 8), (2, 8))
    assert three.flops == 2 * 16  # two adds per element
    assert three.bytes_read == 3 * 16 * 4  # every input read
    b = eltwise_cost("mul", (2, 3, 4), (3, 1), dtype="fp16")
    assert b.output_shape == (2, 3, 4)
    assert b.flops == 24
    assert b.bytes_read == (24 + 3) * 2
    assert b.bytes_written == 24 * 2
    scalar = eltwise_cost("div", (4, 4), ())
    assert scalar.output_shape == (4, 4) and scalar.bytes_read == 17 * 4


def test_pool():
    m = pool2d_cost((1, 64, 112, 112), 3, stride=2, padding=1)
    assert m.op == "max_pool2d"
    assert m.output_shape == (1, 64, 56, 56)
    assert m.flops == 64 * 56 * 56 * 9
    assert m.bytes_read == 64 * 112 * 112 * 4
    assert m.bytes_written == 64 * 56 * 56 * 4
    a = pool2d_cost((1, 1, 4, 4), 2, mode="avg")  # stride defaults to the kernel
    assert a.output_shape == (1, 1, 2, 2) and a.flops == 4 * 4
    g = pool2d_cost((2, 2048, 7, 7), mode="global_avg")
    assert g.op == "global_avg_pool2d"
    assert g.output_shape == (2, 2048, 1, 1)
    assert g.flops == 2 * 2048 * 49
    assert g.bytes == (2 * 2048 * 49 + 2 * 2048) * 4
    assert pool2d_cost((1, 3, 5, 6), mode="global_max").flops == 3 * 30


def test_concat():
    c = concat_cost([(1, 2, 3, 3), (1, 4, 3, 3)], axis=1)
    assert c.output_shape == (1, 6, 3, 3)
    assert c.flops == 0 and c.intensity == 0.0
    assert c.bytes_read == c.bytes_written == 54 * 4
    assert concat_cost([(2, 5), (2, 7)], axis=-1).output_shape == (2, 12)


def test_softmax():
    c = softmax_cost((2, 12, 128, 128))
    n = 2 * 12 * 128 * 128
    assert c.flops == 5 * n
    assert c.bytes_read == c.bytes_written == n * 4


def test_layernorm():
    c = layernorm_cost((2, 10, 16), 16)
    assert c.flops == 7 * 320 + 4 * 20  # 20 rows of 16
    assert c.params == 32
    assert c.bytes_read == (320 + 32) * 4
    assert c.bytes_written == 320 * 4
    bare = layernorm_cost((2, 10, 16), (10, 16), elementwise_affine=False)
    assert bare.flops == 5 * 320 + 4 * 2
    assert bare.params == 0


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize("name, size", [
    ("float32", 4), ("fp32", 4), ("float16", 2), ("fp16", 2), ("bfloat16", 2), ("bf16", 2),
    ("int8", 1), ("uint8", 1), ("float64", 8), ("fp64", 8), ("int32", 4), ("torch.float16", 2), ("FP32", 4),
    ("int64", 8), ("torch.bool", 1),
])
def test_dtype_sizes(name, size):
    assert dtype_bytes(name) == size
    c = conv2d_cost((1, 4, 8, 8), 8, 3, padding=1, dtype=name)
    assert c.bytes == (4 * 64 + 8 * 64 + 8 * 4 * 9) * size
    assert c.flops == conv2d_cost((1, 4, 8, 8), 8, 3, padding=1).flops  # dtype moves bytes only


def test_dtype_table():
    assert DTYPE_BYTES == {"float64": 8, "fp64": 8, "float32": 4, "fp32": 4, "float16": 2, "fp16": 2,
                           "bfloat16": 2, "bf16": 2, "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1,
                           "bool": 1}


# ---------------------------------------------------------------- errors


ERRORS = [
    ("groups", lambda: conv2d_cost((1, 30, 8, 8), 8, 3, groups=4), "groups: in_channels 30 is not divisible by groups 4"),
    ("groups", lambda: conv2d_cost((1, 8, 8, 8), 30, 3, groups=4), "groups: out_channels 30 is not divisible by groups 4"),
    ("groups", lambda: conv_transpose2d_cost((1, 6, 8, 8), 8, 3, groups=4), "groups: in_channels 6"),
    ("groups", lambda: conv2d_cost((1, 8, 8, 8), 8, 3, groups=0), "groups: must be > 0"),
    ("padding", lambda: conv2d_cost((1, 3, 8, 8), 8, 3, padding=-1), "padding: must be >= 0, got -1"),
    ("padding", lambda: conv2d_cost((1, 3, 8, 8), 8, 3, padding=(1, -1)), "padding: must be >= 0"),
    ("output size", lambda: conv2d_cost((1, 3, 3, 3), 8, 5), "output size: (-1, -1) is not positive for input 3x3, kernel 5"),
    ("output size", lambda: conv2d_cost((1, 3, 3, 9), 8, 5), "output size: (-1, 5)"),
    ("output size", lambda: conv2d_output_size(3, 3, dilation=2), "output size:"),
    ("output size", lambda: conv_transpose2d_cost((1, 3, 1, 1), 3, 1, padding=1), "output size:"),
    ("kernel_size", lambda: conv2d_cost((1, 3, 8, 8), 8, 0), "kernel_size: must be > 0"),
    ("kernel_size", lambda: conv2d_cost((1, 3, 8, 8), 8, (3, 3, 3)), "kernel_size: must be an int or an (h, w) pair"),
    ("kernel_size", lambda: conv2d_cost((1, 3, 8, 8), 8, 1.5), "kernel_size:"),
    ("kernel_size", lambda: pool2d_cost((1, 3, 8, 8)), "kernel_size: required"),
    ("kernel_size", lambda: pool2d_cost((1, 3, 8, 8), 2, mode="global_avg"), "kernel_size: must be None"),
    ("stride", lambda: conv2d_cost((1, 3, 8, 8), 8, 3, stride=0), "stride: must be > 0, got 0"),
    ("stride", lambda: pool2d_cost((1, 3, 8, 8), 2, stride=-1), "stride: must be > 0"),
    ("dilation", lambda: conv2d_cost((1, 3, 8, 8), 8, 3, dilation=0), "dilation: must be > 0"),
    ("out_channels", lambda: conv2d_cost((1, 3, 8, 8), 0, 3), "out_channels: must be > 0"),
    ("out_features", lambda: linear_cost((4, 8), -2), "out_features: must be > 0"),
    ("input_shape", lambda: conv2d_cost((1, 3, 8), 8, 3), "input_shape: must have 4 dims"),
    ("input_shape", lambda: conv2d_cost((1, 0, 8, 8), 8, 3), "input_shape: sizes must be > 0"),
    ("input_shape", lambda: linear_cost((), 8), "input_shape: must have at least 1 dims"),
    ("input_shape", lambda: batchnorm_cost((4,)), "input_shape:"),
    ("output_padding", lambda: conv_transpose2d_cost((1, 4, 7, 7), 4, 3, stride=2, output_padding=2), "output_padding: must be smaller"),
    ("bn_folded", lambda: conv2d_cost((1, 3, 8, 8), 8, 3, bn_folded=True), "bn_folded:"),
    ("dtype", lambda: dtype_bytes("float8"), "dtype: unknown dtype 'float8'"),
    ("dtype", lambda: conv2d_cost((1, 3, 8, 8), 8, 3, dtype="int4"), "dtype: unknown dtype 'int4'"),
    ("dtype", lambda: eltwise_cost("relu", (4,), dtype="f32"), "dtype:"),
    ("op", lambda: eltwise_cost("frobnicate", (4,)), "op: unknown element-wise op 'frobnicate'"),
    ("activation", lambda: conv2d_cost((1, 3, 8, 8), 8, 3, activation="softplus"), "activation: unknown 'softplus'"),
    ("input_shapes", lambda: eltwise_cost("relu", (4,), (4,)), "input_shapes: relu takes 1 input, got 2"),
    ("input_shapes", lambda: eltwise_cost("add", (4,)), "input_shapes: add takes at least 2 inputs"),
    ("input_shapes", lambda: eltwise_cost("add", (2, 3), (4, 3)), "input_shapes: (2, 3) and (4, 3) do not broadcast"),
    ("input_shapes", lambda: concat_cost([(1, 2, 3), (1, 2, 4)], axis=1), "input_shapes: (1, 2, 4) does not match"),
    ("input_shapes", lambda: concat_cost([]), "input_shapes: must be a non-empty list"),
    ("axis", lambda: concat_cost([(1, 2)], axis=2), "axis: must be an int in [-2, 2)"),
    ("dim", lambda: softmax_cost((2, 3), dim=2), "dim:"),
    ("b_shape", lambda: matmul_cost((3, 5), (4, 2)), "b_shape: contraction dim 4"),
    ("b_shape", lambda: matmul_cost((2, 3, 5), (4, 5, 2)), "b_shape: (2,) and (4,) do not broadcast"),
    ("normalized_shape", lambda: layernorm_cost((2, 10, 16), 10), "normalized_shape: (10,) does not match"),
    ("mode", lambda: pool2d_cost((1, 3, 8, 8), 2, mode="lp"), "mode: unknown pooling mode 'lp'"),
]


@pytest.mark.parametrize("field, make, message", ERRORS, ids=[f"{i}-{e[0]}" for i, e in enumerate(ERRORS)])
def test_invalid_config_names_the_field(field, make, message):
    with pytest.raises(CostError) as info:
        make()
    text = str(info.value)
    assert text.startswith(field + ":")
    assert text.startswith(message)
    assert "\n" not in text


def test_cost_error_is_a_value_error_and_a_usage_error():
    assert issubclass(CostError, ValueError)
    assert issubclass(CostError, UsageError)


# ---------------------------------------------------------------- invariants


def all_kinds() -> list[OpCost]:
    return [
        conv2d_cost((2, 16, 14, 14), 32, 3, stride=2, padding=1, bias=True, batchnorm=True,
                    activation="hardswish", residual=False),
        conv2d_cost((1, 32, 28, 28), 32, 3, padding=1, groups=32, batchnorm=True, bn_folded=True,
                    activation="relu", residual=True, dtype="int8"),
        conv_transpose2d_cost((1, 8, 5, 5), 4, 4, stride=2, padding=1, bias=True, activation="sigmoid",
                              residual=True, dtype="fp16"),
        linear_cost((4, 16, 64), 256, bias=True, activation="gelu_tanh", residual=True, dtype="bf16"),
        matmul_cost((3, 1, 16, 8), (5, 8, 4)),
        eltwise_cost("add", (1, 8, 4, 4), (1, 8, 1, 1)),
        eltwise_cost("hardswish", (1, 8, 4, 4)),
        pool2d_cost((1, 8, 9, 9), 3, stride=2, mode="avg"),
        pool2d_cost((1, 8, 9, 9), mode="global_max"),
        batchnorm_cost((1, 8, 4, 4)),
        batchnorm_cost((1, 8, 4, 4), bn_folded=True),
        concat_cost([(1, 8, 4, 4), (1, 8, 4, 4)]),
        softmax_cost((4, 16)),
        layernorm_cost((4, 16), 16),
    ]


@pytest.mark.parametrize("c", all_kinds(), ids=lambda c: c.op)
def test_invariants(c):
    assert c.flops == c.flops_main + c.flops_bias + c.flops_norm + c.flops_act + c.flops_residual
    assert c.bytes == c.bytes_read + c.bytes_written
    assert c.intensity == (c.flops / c.bytes if c.bytes else 0.0)
    if c.op in ("conv2d", "conv_transpose2d", "linear", "matmul"):
        assert c.macs * 2 == c.flops_main
    else:
        assert c.macs == 0
    d = c.as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["output_shape"] == list(c.output_shape)
    assert {"op", "macs", "flops", "params", "bytes_read", "bytes_written", "bytes", "intensity", "output_shape",
            "flops_main", "flops_bias", "flops_norm", "flops_act", "flops_residual"} <= set(d)
    assert all(not isinstance(v, (dict, tuple)) for v in d.values())  # flat


def test_dtype_is_recorded_as_a_plain_name():
    assert eltwise_cost("relu", (4,), dtype="FP16").dtype == "fp16"
    if torch is not None:
        c = eltwise_cost("relu", (4,), dtype=torch.bfloat16)
        assert c.dtype == "bfloat16" and c.bytes == 16
        json.dumps(c.as_dict())


def test_derived_fields_cannot_be_passed_or_changed():
    with pytest.raises(TypeError):
        OpCost(op="x", output_shape=(1,), dtype="fp32", flops=5)
    c = eltwise_cost("relu", (4,))
    with pytest.raises(AttributeError):
        c.flops = 0


# ---------------------------------------------------------------- torch's flop counter


def torch_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as mode:
        fn()
    return mode.get_total_flops()


def meta(*shape):
    return torch.empty(*shape, device="meta")  # shapes only: no memory, no compute


CONVS = [  # input_shape, out_channels, kernel, stride, padding, dilation, groups
    ((1, 3, 224, 224), 64, 7, 2, 3, 1, 1),
    ((2, 32, 28, 28), 32, 3, 1, 1, 1, 32),
    ((2, 8, 10, 10), 12, 3, 1, 0, 1, 4),
    ((1, 4, 16, 16), 4, 3, 1, 2, 2, 1),
    ((1, 2, 11, 20), 3, (3, 5), (2, 3), (1, 0), 1, 1),
    ((1, 512, 7, 7), 1024, 1, 1, 0, 1, 1),
]


@needs_torch
@pytest.mark.parametrize("shape, oc, k, s, p, d, g", CONVS)
def test_conv_matches_torch(shape, oc, k, s, p, d, g):
    import torch.nn.functional as F

    c = conv2d_cost(shape, oc, k, s, p, d, g, bias=True)
    kh, kw = (k, k) if isinstance(k, int) else k
    out = [None]
    counted = torch_flops(lambda: out.__setitem__(0, F.conv2d(
        meta(*shape), meta(oc, shape[1] // g, kh, kw), meta(oc), stride=s, padding=p, dilation=d, groups=g)))
    assert tuple(out[0].shape) == c.output_shape
    assert counted == c.flops_main  # torch counts 2 x MACs and leaves the bias out


@needs_torch
def test_conv_transpose_matches_torch():
    import torch.nn.functional as F

    c = conv_transpose2d_cost((2, 8, 5, 5), 12, 3, stride=2, padding=1, output_padding=1, groups=2)
    out = [None]
    counted = torch_flops(lambda: out.__setitem__(0, F.conv_transpose2d(
        meta(2, 8, 5, 5), meta(8, 6, 3, 3), stride=2, padding=1, output_padding=1, groups=2)))
    assert tuple(out[0].shape) == c.output_shape
    assert counted == c.flops_main


@needs_torch
@pytest.mark.parametrize("shape, out_features", [((3, 7, 10), 5), ((16, 768), 3072), ((10,), 4)])
def test_linear_matches_torch(shape, out_features):
    import torch.nn.functional as F

    c = linear_cost(shape, out_features, bias=True)
    counted = torch_flops(lambda: F.linear(meta(*shape), meta(out_features, shape[-1]), meta(out_features)))
    assert counted == c.flops_main


@needs_torch
@pytest.mark.parametrize("a, b", [((4, 1, 3, 5), (6, 5, 2)), ((2, 12, 128, 64), (2, 12, 64, 128)), ((3, 5), (5, 7))])
def test_matmul_matches_torch(a, b):
    c = matmul_cost(a, b)
    out = [None]
    counted = torch_flops(lambda: out.__setitem__(0, torch.matmul(meta(*a), meta(*b))))
    assert tuple(out[0].shape) == c.output_shape
    assert counted == c.flops_main
