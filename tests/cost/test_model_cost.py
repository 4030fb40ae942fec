"""The four size metrics of whole models: FLOPs against torch's FlopCounterMode for every zoo
model, exact parameter counts, memory access, footprint; the ONNX path against the torch walk."""
from __future__ import annotations

import os
import math

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from harness.cost import ops as cm  # noqa: E402
from harness.core.errors import UsageError  # noqa: E402
from harness.cost.onnx_graph import onnx_model_cost, parse_shapes, resolve_onnx_shapes  # noqa: E402
from harness.cost.torch_walk import TorchWalk, flop_counter_comparison, model_cost, zoo_model_cost  # noqa: E402
from kernels import zoo  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


@pytest.fixture(scope="module")
def resnet18_cost():
    return zoo_model_cost("resnet18", batch=1, image=224)


def test_resnet18_four_metrics(resnet18_cost):
    c = resnet18_cost
    assert c.params == 11_689_512 == c.params_layers
    # FlopCounterMode counts conv/linear multiply-adds x 2: exactly our flops_main over them.
    assert c.torch_flop_counter == c.flops_main_contractions
    # torchvision's published figure: 1.814 GMACs at 224 x 224.
    assert c.macs == c.flops_main_contractions // 2
    assert abs(c.macs / 1e9 - 1.814) < 0.001
    assert c.bytes > 0 and c.intensity > 0
    assert c.activation_peak_bytes > 0
    assert c.unknown == []
    # The total is the counter's figure plus the columns torch does not count.
    by = c.flops_by_category()
    assert sum(by.values()) == c.flops
    assert by["norm"] == 2 * sum(math.prod(l.cost.output_shape) for l in c.layers if l.op == "batchnorm")
    assert by["residual"] == sum(math.prod(l.cost.output_shape) for l in c.layers if l.category == "residual")
    assert by["pool"] > 0 and by["act"] > 0


def test_resnet18_layer_table(resnet18_cost):
    t = resnet18_cost.table()
    assert list(t.columns[:10]) == ["name", "op", "category", "module", "output_shape", "flops", "macs", "params",
                                    "bytes", "intensity"]
    first = t.iloc[0]
    assert first["name"] == "conv1" and first["op"] == "conv2d"
    # The document's formula for the 7x7/2 stem conv.
    assert first["flops"] == 1 * 64 * 112 * 112 * 3 * 7 * 7 * 2
    assert first["bytes"] == (3 * 224 * 224 + 64 * 112 * 112 + 64 * 3 * 7 * 7) * 4
    # The residual adds are functional, not modules, and are still found and named.
    adds = t[t["category"] == "residual"]
    assert len(adds) == 8 and adds.iloc[0]["name"] == "layer1.0.add"
    # BatchNorm FLOPs sit in the norm column, ReLU's in act, the add's in residual.
    bn = t[t["op"] == "batchnorm"].iloc[0]
    assert bn["flops_norm"] == bn["flops"] > 0 and bn["flops_main"] == 0
    relu = t[t["op"] == "relu"].iloc[0]
    assert relu["flops_act"] == relu["flops"]
    assert adds.iloc[0]["flops_residual"] == adds.iloc[0]["flops"]
    assert t["name"].is_unique


def _input_size(name):
    # The CNNs end in adaptive pooling, so 64 x 64 exercises every layer; the ViT needs 224.
    return 224 if name == "vit_tiny" else 64


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_flop_counter_agrees_for_every_zoo_model(name):
    c = zoo_model_cost(name, batch=1, image=_input_size(name), activations=False)
    cmp = flop_counter_comparison(c)
    assert cmp["equal"], cmp
    # The difference is exactly the columns torch does not count, all non-negative.
    assert cmp["difference"] == sum(cmp["difference_by_category"].values())
    assert all(v > 0 for v in cmp["difference_by_category"].values())
    assert c.unknown == [], c.unknown
    assert c.params_layers == c.params
    expected = {"resnet18": {"norm", "residual"}, "mobilenet_v2": {"norm", "residual"},
                "shufflenet_v2_x1_0": {"norm", "pool"}, "vgg16": {"bias"}, "repvgg_a0": {"norm", "residual"},
                "repvgg_a0_deploy": {"bias"}, "vit_tiny": {"softmax", "norm", "residual", "eltwise"}}
    assert expected.get(name, set()) <= set(cmp["difference_by_category"])


def test_vit_functional_ops_are_found():
    c = zoo_model_cost("vit_tiny", activations=False)
    ops = [l.op for l in c.layers]
    assert ops.count("matmul") == 24  # q @ k^T and attn @ v per block
    assert ops.count("softmax") == 12
    assert ops.count("layernorm") == 25
    # The ViT's parameters outside Linear/LayerNorm/Conv: pos_embed (add) and cls_token (expand).
    assert c.params_layers == c.params == 5_717_416
    attn = next(l for l in c.layers if l.op == "matmul")
    assert attn.cost.flops_main == 2 * 3 * 197 * 197 * 64
    assert attn.name == "blocks.0.attn.matmul"


def test_shufflenet_data_movement_is_counted_as_bytes():
    c = zoo_model_cost("shufflenet_v2_x1_0", image=64, activations=False)
    t = c.table()
    cat = t[t["op"] == "concat"]
    assert len(cat) == 16 and (cat["flops"] == 0).all() and (cat["bytes"] > 0).all()
    # channel_shuffle: view + transpose are views (no bytes); contiguous copies.
    assert (t[t["op"].isin(["view", "transpose", "chunk"])]["bytes"] == 0).all()
    contiguous = t[t["op"] == "contiguous"]
    assert len(contiguous) == 16 and (contiguous["bytes"] > 0).all()


class _Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        y = torch.repeat_interleave(y, 2, dim=2)  # no formula in the cost model
        return torch.logcumsumexp(y, dim=1)  # nor for this one


def test_unknown_ops_are_listed_not_zero():
    c = model_cost(_Odd().eval(), (1, 3, 8, 8), activations=False)
    unknown = {u["op"]: u for u in c.unknown}
    assert set(unknown) == {"repeat_interleave", "logcumsumexp"}
    assert unknown["repeat_interleave"]["count"] == 1
    assert unknown["repeat_interleave"]["output_elements"] == 8 * 16 * 8
    assert 0 < unknown["logcumsumexp"]["share_of_output_elements"] < 1
    assert 0 < unknown["logcumsumexp"]["share_of_ops"] < 1
    assert [l.op for l in c.layers] == ["conv2d"]


def test_the_walk_keeps_each_calls_input_shapes():
    class Convs(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Conv2d(3, 8, 5, stride=2, padding=2, bias=False)
            self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)

        def forward(self, x):
            y = self.dense(x)
            return torch.cat([y, self.grouped(y)], dim=1) * 0.5

    model = Convs().eval()
    walk = TorchWalk(model)
    with torch.no_grad(), walk:
        model(torch.randn(1, 3, 16, 16))
    # A conv: input and weight (and bias); kernel size and groups read from the weight.
    assert walk.input_shapes["dense"] == [[1, 3, 16, 16], [8, 3, 5, 5]]
    assert walk.input_shapes["grouped"] == [[1, 8, 8, 8], [8, 2, 3, 3], [8]]
    assert walk.input_shapes["cat"] == [[1, 8, 8, 8], [1, 8, 8, 8]]  # a list argument, flattened
    assert walk.input_shapes["mul"] == [[1, 16, 8, 8]]  # the scalar is no tensor
    assert [l.name for l in walk.layers] == ["dense", "grouped", "cat", "mul"]


def test_activation_high_water_counts_live_tensors():
    class Two(nn.Module):
        def forward(self, x):
            a = x * 2.0  # 4 MB
            b = a + 1.0  # 4 MB while a is alive
            del a
            return b * 3.0  # a is gone: peak stays at x + a + b

    x_bytes = 1_000_000 * 4
    c = model_cost(Two(), (1, 1000, 1000), flop_counter=False)
    assert c.activation_peak_bytes == 3 * x_bytes


# ----------------------------------------------------------------------------- ONNX

class Tiny(nn.Module):
    """Every node kind the ONNX path must cost: conv (+ folded BN), depthwise, residual add,
    pools, concat, linear (Gemm), matmul, softmax, layernorm, reshape/transpose."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.MaxPool2d(2)
        self.norm = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = y + self.dw(y)
        y = torch.cat([self.pool(y), self.pool(y) * 0.5], dim=1)  # (N, 16, 4, 4)
        t = y.flatten(2).transpose(1, 2)  # (N, 16 tokens, 16)
        a = torch.softmax(t @ t.transpose(1, 2), dim=-1) @ t
        return self.fc(self.norm(a).mean(1))


def _export(model, path, batch=2, dynamic=False, dynamo=False):
    x = torch.randn(batch, 3, 8, 8)
    kwargs = {"dynamic_axes": {"x": {0: "N"}}} if dynamic else {}
    torch.onnx.export(model.eval(), (x,), str(path), input_names=["x"], output_names=["y"], dynamo=dynamo, **kwargs)
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    model = Tiny().eval()
    return model, _export(model, d / "tiny.onnx"), _export(model, d / "tiny_dyn.onnx", dynamic=True)


def _contractions(cost):
    return sorted((l.category, l.cost.flops_main, l.cost.macs) for l in cost.layers
                  if l.category in ("conv", "linear", "matmul"))


def test_onnx_cost_equals_torch_walk_for_conv_linear_matmul(tiny_onnx):
    model, path, _ = tiny_onnx
    torch_cost = model_cost(model, (2, 3, 8, 8), activations=False)
    onnx_cost = onnx_model_cost(path)
    assert onnx_cost.unknown == [], onnx_cost.unknown
    assert _contractions(onnx_cost) == _contractions(torch_cost)
    assert onnx_cost.flops_main_contractions == torch_cost.torch_flop_counter
    ops = {l.op for l in onnx_cost.layers}
    assert {"conv2d", "max_pool2d", "concat", "softmax", "layernorm", "linear", "matmul"} <= ops
    # The exporter folds BatchNorm into the conv: a bias instead of the norm column.
    assert "batchnorm" not in ops and onnx_cost.layers[0].cost.flops_bias == 2 * 8 * 8 * 8
    residual = [l for l in onnx_cost.layers if l.category == "residual"]
    assert len(residual) == 1 and residual[0].cost.flops_residual == 2 * 8 * 8 * 8


def test_onnx_cost_of_a_zoo_export_matches(tmp_path):
    from kernels.models import export_onnx

    path = export_onnx("mobilenet_v2", 1, 64, cache_dir=tmp_path)
    assert export_onnx("mobilenet_v2", 1, 64, cache_dir=tmp_path) == path  # cached, not exported again
    onnx_cost = onnx_model_cost(path)
    torch_cost = zoo_model_cost("mobilenet_v2", 1, 64, activations=False)
    assert onnx_cost.unknown == []
    assert _contractions(onnx_cost) == _contractions(torch_cost)
    depthwise = [l for l in onnx_cost.layers if l.op == "conv2d" and l.cost.params < 3 * 3 * 1000 and
                 l.cost.intensity < 3]
    assert depthwise, "depthwise convs are the low-intensity ones"


def test_onnx_conv_matches_cost_model_exactly(tiny_onnx):
    _, path, _ = tiny_onnx
    c = onnx_model_cost(path)
    first = c.layers[0]
    expect = cm.conv2d_cost((2, 3, 8, 8), 8, 3, 1, 1, bias=True)  # BN folded: a bias
    assert first.cost == expect


def test_onnx_dynamic_dims_need_a_shape(tiny_onnx):
    _, _, dyn = tiny_onnx
    with pytest.raises(UsageError, match=r"input 'x' has dynamic dims \[N, 3, 8, 8\]; give --shape x=1x3x8x8"):
        onnx_model_cost(dyn)
    a = onnx_model_cost(dyn, "x=2x3x8x8")
    assert a.input_shapes == {"x": (2, 3, 8, 8)}
    b = onnx_model_cost(dyn, {"x": (4, 3, 8, 8)})
    assert b.flops_main_contractions == 2 * a.flops_main_contractions
    with pytest.raises(UsageError, match="is fixed at"):
        onnx_model_cost(dyn, "x=1x3x9x9")
    with pytest.raises(UsageError, match="has no input 'image'"):
        onnx_model_cost(dyn, "image=1x3x8x8")


def test_onnx_bad_files(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        onnx_model_cost(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_text("this is not a protobuf of an ONNX model\n" * 10)
    with pytest.raises(UsageError, match="not an ONNX model"):
        onnx_model_cost(junk)


def test_parse_shapes():
    assert parse_shapes("input=1x3x224x224") == {"input": (1, 3, 224, 224)}
    assert parse_shapes("a=1x2, b=3") == {"a": (1, 2), "b": (3,)}
    for bad in ("input", "input=", "input=1xax2", "input=0x3"):
        with pytest.raises(UsageError, match="--shape"):
            parse_shapes(bad)


def test_unknown_onnx_ops_are_listed(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Mod", ["a", "b"], ["y"], fmod=1, name="mod0")  # no formula in the cost model
    relu = helper.make_node("Relu", ["y"], ["z"], name="relu0")
    graph = helper.make_graph([node, relu], "g",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 6]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 6])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    c = onnx_model_cost(model)
    assert [u["op"] for u in c.unknown] == ["Mod"]
    assert c.unknown[0]["share_of_ops"] == 0.5 and c.unknown[0]["output_elements"] == 24
    assert [l.op for l in c.layers] == ["relu"]
    assert resolve_onnx_shapes(model) == {"a": (4, 6), "b": (1, 6)}


def test_an_export_killed_mid_write_leaves_nothing_behind_the_next_export(tmp_path):
    from kernels.models import export_onnx

    name = "mobilenet_v2-b1-64px-seed0-torch2.13.0.onnx"
    dead = tmp_path / f".{name}.999999999.tmp"  # no such process: a worker killed mid-export
    live = tmp_path / f".{name}.{os.getppid()}.tmp"  # another live exporter's file is left alone
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    export_onnx("mobilenet_v2", 1, 64, cache_dir=tmp_path)
    assert not dead.exists() and live.exists()
