"""The networks of kernels.zoo_random's recipes, in torch.nn. Import kernels.zoo rather than
this module: zoo.build("calib-cnn-17") draws the recipe, builds it here and sets its weights.

Every op is a plain module or torch call that both ONNX exporters and ONNX Runtime map to a
plain node: attention is written out (matmul, softmax, matmul), not
scaled_dot_product_attention, so ONNX Runtime shows MatMul and Softmax kernels to time.
"""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU, "none": nn.Identity}


class ConvBN(nn.Module):
    """conv (padded by k // 2) + BatchNorm + activation."""

    def __init__(self, ic: int, oc: int, k: int, stride: int = 1, groups: int = 1, act: str = "none"):
        super().__init__()
        self.conv = nn.Conv2d(ic, oc, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(oc)
        self.act = ACTIVATIONS[act]()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Residual(nn.Module):
    """x + body(x): ResNet's basic block (two k x k convs, act after the add) or MobileNetV2's
    inverted residual (1x1 expand, depthwise k x k, 1x1 project, no act after the add)."""

    def __init__(self, c: int, block: dict):
        super().__init__()
        act, k = block["act"], block["k"]
        if block["variant"] == "basic":
            self.body = nn.Sequential(ConvBN(c, c, k, act=act), ConvBN(c, c, k))
            self.act = ACTIVATIONS[act]()
        else:
            e = block["expand"]
            self.body = nn.Sequential(ConvBN(c, e, 1, act=act), ConvBN(e, e, k, groups=e, act=act), ConvBN(e, c, 1))
            self.act = nn.Identity()

    def forward(self, x):
        return self.act(x + self.body(x))


class Concat(nn.Module):
    """Two branches (a 1x1 conv; a 3x3 conv or a 3x3 max pool) concatenated, then a 1x1 conv."""

    def __init__(self, c: int, block: dict):
        super().__init__()
        act = block["act"]
        self.a = ConvBN(c, block["a"], 1, act=act)
        self.b = ConvBN(c, block["b"], block["k"], act=act) if block["branch"] == "conv" else nn.MaxPool2d(3, 1, 1)
        self.fuse = ConvBN(block["a"] + block["b"], block["out"], 1, act=act)

    def forward(self, x):
        return self.fuse(torch.cat([self.a(x), self.b(x)], dim=1))


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle: reshape to (groups, c / groups), transpose, reshape back."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        b, c, h, w = x.shape
        return x.reshape(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class SqueezeExcite(nn.Module):
    """SE gating: global average pool, 1x1 down, ReLU, 1x1 up, sigmoid, times the input."""

    def __init__(self, c: int, squeeze: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(c, squeeze, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeeze, c, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class NormAct(nn.Module):
    """A BatchNorm with no conv before it to fold into (pre-activation style) + activation."""

    def __init__(self, c: int, act: str):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        self.act = ACTIVATIONS[act]()

    def forward(self, x):
        return self.act(self.bn(x))


class Head(nn.Module):
    """Global average pool, linear, and a softmax where the recipe says so."""

    def __init__(self, c: int, classes: int, softmax: bool):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)
        self.softmax = softmax

    def forward(self, x):
        x = self.fc(self.pool(x).flatten(1))
        return torch.softmax(x, dim=-1) if self.softmax else x


def cnn_block(block: dict, c: int) -> nn.Module:
    kind = block["kind"]
    if kind in ("conv_kxk", "conv1x1", "grouped", "depthwise"):
        groups = c if kind == "depthwise" else block.get("groups", 1)
        return ConvBN(c, block["out"], block["k"], block["stride"], groups, block["act"])
    if kind == "pool":
        pool = nn.MaxPool2d if block["mode"] == "max" else nn.AvgPool2d
        return pool(block["k"], 2, block["k"] // 2 if block["k"] > 2 else 0)
    if kind == "residual":
        return Residual(c, block)
    if kind == "concat":
        return Concat(c, block)
    if kind == "shuffle":
        return Shuffle(block["groups"])
    if kind == "se":
        return SqueezeExcite(c, block["squeeze"])
    if kind == "norm_act":
        return NormAct(c, block["act"])
    raise ValueError(f"unknown block kind {kind!r}")


class CalibCNN(nn.Module):
    def __init__(self, net: dict, classes: int):
        super().__init__()
        stem = net["stem"]
        self.stem = ConvBN(3, stem["out"], stem["k"], stem["stride"], act=stem["act"])
        blocks, c = [], stem["out"]
        for block in net["blocks"]:
            blocks.append(cnn_block(block, c))
            c = block.get("out", c)
        self.blocks = nn.Sequential(*blocks)
        self.head = Head(c, classes, net["head"]["softmax"])

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class Attention(nn.Module):
    """Multi-head self-attention written out: q, k, v from one 3x linear or three, heads by
    reshape/transpose, softmax(q @ k^T * scale) @ v, heads back, projection."""

    def __init__(self, dim: int, heads: int, fused: bool):
        super().__init__()
        self.heads, self.scale, self.fused = heads, (dim // heads) ** -0.5, fused
        if fused:
            self.qkv = nn.Linear(dim, 3 * dim)
        else:
            self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        if self.fused:
            qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q, k, v = (f(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
                       for f in (self.q, self.k, self.v))
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Encoder(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) with a 4x GELU MLP."""

    def __init__(self, dim: int, heads: int, fused: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, fused)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CalibViT(nn.Module):
    """Patch embedding (conv, stride = patch), encoders, LayerNorm, mean over tokens, linear.
    No position embedding or class token, so the same weights run at any image size."""

    def __init__(self, net: dict, classes: int):
        super().__init__()
        dim = net["dim"]
        self.patch_embed = nn.Conv2d(3, dim, net["patch"], net["patch"])
        self.blocks = nn.Sequential(*[Encoder(dim, net["heads"], net["qkv"] == "fused")
                                      for _ in range(net["depth"])])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(dim=1))


def build(net: dict, classes: int) -> nn.Module:
    """The untrained network of a recipe (kernels.zoo sets its weights)."""
    return CalibCNN(net, classes) if net["family"] == "cnn" else CalibViT(net, classes)
