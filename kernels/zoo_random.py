"""Random networks for latency calibration (nn-Meter style): a predictor is fitted on kernels
measured inside these networks and validated on the zoo models, which it never sees.

    calib-cnn-<seed>[-<focus>]   a chain of 6-16 CNN blocks after a stem conv, then a head
    calib-vit-<seed>[-<focus>]   a patch embedding, 1-4 transformer encoder blocks, a head

A name is the whole recipe: every kind (model.*, layers.*, the ONNX export) rebuilds the
same network from it. `focus` raises the probability of one kind of block (adaptive
sampling: more samples where the predictor is wrong); FOCUS lists the words each family takes.

Layer shapes are drawn from the zoo's real ones and perturbed: a block's channels come from
the zoo convs at the same depth (STAGE_CHANNELS: the output channels of the zoo's distinct
convs by how many times the image was halved before them, at 224x224), scaled by
{0.5, 0.75, 1, 1.5, 2} and sometimes moved 1-3 off the multiple of 8, so that channels mod
8 and 16 vary as kernels' vector tails do. A draw over MAX_CHANNELS channels (a block's
widest) or outside [MIN_FLOPS, MAX_FLOPS] at its own image is rejected and drawn again,
which keeps one forward pass at 1 thread at a few to a few tens of milliseconds.

This module is plain Python (validating a name or estimating memory starts nothing); the
networks themselves are in kernels/zoo_random_nets.py, built through kernels.zoo.build.
"""
from __future__ import annotations

import functools
import random
import re

FAMILIES = ("cnn", "vit")
# Focus words each family takes, and the block kinds (CNN) each raises.
CNN_FOCUS = {"conv1x1": ("conv1x1",), "convkxk": ("conv_kxk",), "depthwise": ("depthwise",),
             "grouped": ("grouped",), "pool": ("pool",), "eltwise": ("residual", "se"),
             "data": ("concat", "shuffle"), "gemm": ("conv1x1",), "norm": ("norm_act",),
             "softmax": ()}  # softmax: the head ends in a softmax, the CNN's only one
# The transformer has one shape of block; a focus tilts its draws instead (sample_vit).
VIT_FOCUS = ("gemm", "softmax", "norm", "eltwise", "data")
FOCUS = {"cnn": tuple(CNN_FOCUS), "vit": VIT_FOCUS}
NAME = re.compile(r"calib-(cnn|vit)-(0|[1-9][0-9]{0,8})(?:-([a-z0-9]+))?")

# Output channels of the zoo's distinct convs (kernels.conv_layers.distinct_conv_layers over
# zoo.MODELS but vit_tiny's patch embedding, at 224x224), by stage = round(log2(224 / output
# height)); checked against resnet18 and mobilenet_v2 by tests/kernels/test_zoo_random.py.
STAGE_CHANNELS = {
    0: (64,),  # VGG-16's first convs, before any halving; the stem here always halves
    1: (16, 24, 32, 48, 64, 96, 128),
    2: (24, 48, 58, 64, 96, 128, 144, 256),
    3: (24, 32, 58, 96, 116, 128, 144, 192, 256, 512),
    4: (64, 96, 116, 192, 232, 256, 384, 512, 576, 1024),
    5: (160, 232, 320, 512, 576, 960, 1024, 1280, 2048),
}
CNN_IMAGES = (56, 64, 96, 112, 128, 160, 224)
VIT_IMAGES = (32, 48, 64, 96, 112, 128, 160, 192, 224)
VIT_DIMS = (64, 96, 128, 192, 256, 384)
VIT_HEADS = (1, 2, 3, 4, 6, 8)
SCALES = (0.5, 0.75, 1, 1.5, 2)
ACTS = ("relu", "relu6", "silu", "none")
ACT_WEIGHTS = (0.45, 0.2, 0.2, 0.15)
# Base weights of the CNN block kinds; a focused kind's weight is multiplied by FOCUS_BOOST.
BLOCK_WEIGHTS = {"conv_kxk": 3.0, "conv1x1": 3.0, "depthwise": 2.0, "grouped": 1.5, "pool": 1.0,
                 "residual": 2.0, "concat": 1.5, "shuffle": 1.0, "se": 1.0, "norm_act": 0.5}
FOCUS_BOOST = 6.0
MAX_CHANNELS = 512
MIN_CHANNELS = 8
MAX_FLOPS = 1.5e9
MIN_FLOPS = 0.05e9
# At most this many halvings of the image, stem included: any image >= 32 (the kinds'
# smallest) then reaches the head at 1x1 or more, so a net drawn at one size runs at any other.
MAX_HALVINGS = 5
CLASSES = 1000
MAX_DRAWS = 1000


# --------------------------------------------------------------------------- names

def parse_name(name: str) -> tuple[str, int, str]:
    """'calib-cnn-17-depthwise' -> ('cnn', 17, 'depthwise'); ValueError saying what is wrong."""
    m = NAME.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not calib-cnn-<seed>[-<focus>] or calib-vit-<seed>[-<focus>] "
                         "(seed: a number without leading zeros)")
    family, seed, focus = m.group(1), int(m.group(2)), m.group(3) or ""
    if focus and focus not in FOCUS[family]:
        raise ValueError(f"{name!r}: focus {focus!r} is not one of {', '.join(FOCUS[family])} ({family})")
    return family, seed, focus


def is_calib(name: str) -> bool:
    try:
        parse_name(name)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def spec(name: str) -> dict:
    """The network's recipe: plain data, the same for a name in every process (cached and
    shared: read it, do not change it)."""
    family, seed, focus = parse_name(name)
    return sample_cnn(seed, focus) if family == "cnn" else sample_vit(seed, focus)


# --------------------------------------------------------------------------- shapes and costs

def conv_out(h: int, k: int, stride: int) -> int:
    """Output height of a conv or pool padded by k // 2 (pool k=2: no padding)."""
    pad = k // 2 if k > 2 else 0
    return (h + 2 * pad - k) // stride + 1


def _conv(ic: int, oc: int, k: int, stride: int, groups: int, h: int) -> tuple[int, int, int]:
    """(output height, multiply-adds, weights incl. BN's four per channel) of conv + BN."""
    ho = conv_out(h, k, stride)
    return ho, oc * ho * ho * (ic // groups) * k * k, oc * (ic // groups) * k * k + 4 * oc


def block_facts(block: dict, c: int, h: int) -> dict:
    """A CNN block on c channels of h x h: its output channels and height, multiply-adds,
    weights (parameters and BN statistics) and widest map (elements per image)."""
    kind, stride = block["kind"], block.get("stride", 1)
    out = block.get("out", c)
    if kind in ("conv_kxk", "conv1x1", "grouped", "depthwise"):
        groups = c if kind == "depthwise" else block.get("groups", 1)
        ho, macs, weights = _conv(c, out, block.get("k", 1), stride, groups, h)
        return {"c": out, "h": ho, "macs": macs, "weights": weights, "widest": c * h * h + out * ho * ho}
    if kind == "pool":
        ho = conv_out(h, block["k"], 2)
        return {"c": c, "h": ho, "macs": 0, "weights": 0, "widest": c * h * h + c * ho * ho}
    if kind in ("shuffle", "norm_act"):
        return {"c": c, "h": h, "macs": 0, "weights": 4 * c if kind == "norm_act" else 0, "widest": 2 * c * h * h}
    if kind == "se":
        s = block["squeeze"]
        return {"c": c, "h": h, "macs": 2 * c * s, "weights": 2 * c * s + c + s, "widest": 2 * c * h * h}
    if kind == "residual":
        if block["variant"] == "basic":
            parts = [_conv(c, c, block["k"], 1, 1, h), _conv(c, c, block["k"], 1, 1, h)]
            wide = c
        else:
            e = block["expand"]
            parts = [_conv(c, e, 1, 1, 1, h), _conv(e, e, block["k"], 1, e, h), _conv(e, c, 1, 1, 1, h)]
            wide = e
        return {"c": c, "h": h, "macs": sum(p[1] for p in parts), "weights": sum(p[2] for p in parts),
                "widest": (2 * c + 2 * wide) * h * h}
    if kind == "concat":
        a, b = block["a"], block["b"]
        parts = [_conv(c, a, 1, 1, 1, h), _conv(a + b, out, 1, 1, 1, h)]
        if block["branch"] == "conv":
            parts.append(_conv(c, b, block["k"], 1, 1, h))
        return {"c": out, "h": h, "macs": sum(p[1] for p in parts), "weights": sum(p[2] for p in parts),
                "widest": (c + 2 * (a + b) + out) * h * h}
    raise ValueError(f"unknown block kind {kind!r}")


def cnn_walk(net: dict, image: int) -> list[dict]:
    """block_facts of the stem, every block and the head, in order, at image x image."""
    facts = [block_facts(net["stem"], 3, image)]
    for block in net["blocks"]:
        facts.append(block_facts(block, facts[-1]["c"], facts[-1]["h"]))
    c = facts[-1]["c"]
    facts.append({"c": CLASSES, "h": 1, "macs": c * CLASSES, "weights": (c + 1) * CLASSES, "widest": c + CLASSES})
    return facts


def vit_facts(net: dict, image: int) -> dict:
    """Multiply-adds, weights and widest live elements per image of the transformer."""
    d, p, heads = net["dim"], net["patch"], net["heads"]
    t = (image // p) ** 2
    per_block = 12 * t * d * d + 2 * t * t * d  # qkv 3, proj 1, MLP 8 (t x d x d each); q.k^T and a.v
    weights_block = 12 * d * d + 13 * d  # qkv, proj, MLP weights and biases; two LayerNorms
    return {"macs": 3 * p * p * d * t + net["depth"] * per_block + d * CLASSES,
            "weights": 3 * p * p * d + d + net["depth"] * weights_block + 2 * d + (d + 1) * CLASSES,
            "widest": 2 * heads * t * t + 8 * t * d}


def flops(net: dict, image: int | None = None) -> int:
    """2 x the multiply-adds of the convs, linears and matmuls of one image (the main FLOPs)."""
    image = image or net["image"]
    if net["family"] == "vit":
        return 2 * vit_facts(net, image)["macs"]
    return 2 * sum(f["macs"] for f in cnn_walk(net, image))


def weights(net: dict) -> int:
    """Parameters plus BN running statistics: what the weights of the built network hold."""
    if net["family"] == "vit":
        return vit_facts(net, net["image"])["weights"]
    return sum(f["weights"] for f in cnn_walk(net, net["image"]))


def activation_bytes(net: dict, image: int) -> int:
    """float32 bytes of the widest point of one image's forward pass (maps live at once)."""
    if net["family"] == "vit":
        return 4 * vit_facts(net, image)["widest"]
    return 4 * max(f["widest"] for f in cnn_walk(net, image))


# --------------------------------------------------------------------------- CNN

def _channels(rng: random.Random, stage: int) -> int:
    """Channels from the zoo convs at this stage, scaled, sometimes 1-3 off a multiple of 8."""
    base = rng.choice(STAGE_CHANNELS[min(max(stage, min(STAGE_CHANNELS)), max(STAGE_CHANNELS))])
    c = max(MIN_CHANNELS, round(base * rng.choice(SCALES) / 8) * 8)
    if rng.random() < 0.35:
        c += rng.choice((-3, -2, -1, 1, 2, 3))
    return min(c, MAX_CHANNELS)


def _divisors(c: int, low: int, high: int) -> list[int]:
    return [g for g in range(low, high + 1) if c % g == 0]


def _act(rng: random.Random) -> str:
    return rng.choices(ACTS, ACT_WEIGHTS)[0]


def _cnn_block(rng: random.Random, kind: str, c: int, stage: int, stride: int) -> dict | None:
    """One block of `kind` on c channels, or None where c does not allow it (no divisor)."""
    new = _channels(rng, stage + (stride == 2)) if rng.random() < 0.6 else c
    if kind == "conv_kxk":
        return {"kind": kind, "k": rng.choice((3, 5, 7)), "stride": stride, "out": new, "act": _act(rng)}
    if kind == "conv1x1":
        return {"kind": kind, "k": 1, "stride": 1, "out": new, "act": _act(rng)}
    if kind == "depthwise":
        return {"kind": kind, "k": rng.choice((3, 5, 7)), "stride": stride, "out": c,
                "act": rng.choices(ACTS[:3], ACT_WEIGHTS[:3])[0]}
    if kind == "grouped":
        both = [g for g in _divisors(c, 2, 8) if new % g == 0] or _divisors(c, 2, 8)
        if not both:
            return None
        g = rng.choice(both)
        return {"kind": kind, "k": rng.choice((1, 3)), "stride": stride, "groups": g,
                "out": new if new % g == 0 else c, "act": _act(rng)}
    if kind == "pool":
        return {"kind": kind, "mode": rng.choice(("max", "avg")), "k": rng.choice((2, 3))}
    if kind == "residual":
        if rng.random() < 0.5:
            return {"kind": kind, "variant": "basic", "k": rng.choice((3, 3, 5)), "act": _act(rng)}
        expand = min(c * rng.choice((2, 3, 4, 6)), MAX_CHANNELS)
        return {"kind": kind, "variant": "inverted", "expand": expand, "k": rng.choice((3, 5, 7)),
                "act": rng.choices(ACTS[:3], ACT_WEIGHTS[:3])[0]}
    if kind == "concat":
        a = max(MIN_CHANNELS, _channels(rng, stage) // 2)
        branch = rng.choice(("conv", "conv", "pool"))
        b = c if branch == "pool" else max(MIN_CHANNELS, _channels(rng, stage) // 2)
        return {"kind": kind, "a": a, "b": b, "branch": branch, "k": 3, "out": new, "act": _act(rng)}
    if kind == "shuffle":
        groups = [g for g in (2, 3, 4, 8) if c % g == 0]
        return {"kind": kind, "groups": rng.choice(groups)} if groups else None
    if kind == "se":
        return {"kind": kind, "squeeze": max(MIN_CHANNELS, c // rng.choice((4, 8, 16)))}
    if kind == "norm_act":
        return {"kind": kind, "act": rng.choices(ACTS[:3], ACT_WEIGHTS[:3])[0]}
    raise ValueError(f"unknown block kind {kind!r}")


def _draw_cnn(rng: random.Random, focus: str) -> dict:
    weights_by_kind = dict(BLOCK_WEIGHTS)
    for kind in CNN_FOCUS.get(focus, ()):
        weights_by_kind[kind] *= FOCUS_BOOST
    kinds = list(weights_by_kind)
    image = rng.choice(CNN_IMAGES)
    stem = {"kind": "conv_kxk", "k": rng.choice((3, 5, 7)), "stride": 2, "out": _channels(rng, 1),
            "act": _act(rng)}
    n_blocks = rng.randint(6, 16)
    halvings = rng.randint(2, MAX_HALVINGS - 1)  # after the stem
    c, h, stage, blocks = stem["out"], conv_out(image, stem["k"], 2), 1, []
    while len(blocks) < n_blocks:
        left = n_blocks - len(blocks)
        # Spread the halvings: stride 2 with the chance that leaves them used by the end.
        stride = 2 if halvings and h >= 4 and rng.random() < halvings / left else 1
        # A pool always halves: drawn only while halvings are left.
        weights_now = [0.0 if k == "pool" and (halvings == 0 or h < 4) else weights_by_kind[k] for k in kinds]
        kind = rng.choices(kinds, weights_now)[0]
        if stride == 2 and kind not in ("conv_kxk", "depthwise", "grouped"):
            stride = 1  # only these convs halve; the other blocks keep the size
        block = _cnn_block(rng, kind, c, stage, stride)
        if block is None:
            continue
        facts = block_facts(block, c, h)
        if facts["h"] < h:
            halvings -= 1
            stage += 1
        blocks.append(block)
        c, h = facts["c"], facts["h"]
    head = {"softmax": focus == "softmax" or rng.random() < 0.3}
    return {"family": "cnn", "image": image, "stem": stem, "blocks": blocks, "head": head}


def _widest_channels(net: dict) -> int:
    widest = net["stem"]["out"]
    for block in net["blocks"]:
        widest = max(widest, block.get("out", 0), block.get("expand", 0), block.get("a", 0) + block.get("b", 0))
    return widest


def sample_cnn(seed: int, focus: str = "") -> dict:
    """The CNN of `seed` (and `focus`): draws until one fits MAX_CHANNELS and the FLOP range."""
    rng = random.Random(f"calib-cnn-{seed}-{focus}")
    for _ in range(MAX_DRAWS):
        net = _draw_cnn(rng, focus)
        if _widest_channels(net) <= MAX_CHANNELS and MIN_FLOPS <= flops(net) <= MAX_FLOPS:
            return net
    raise RuntimeError(f"calib-cnn-{seed}-{focus}: no draw in {MAX_DRAWS} fits the limits")


# --------------------------------------------------------------------------- transformer

def _vit_dim(rng: random.Random, dims: tuple[int, ...]) -> int:
    d = round(rng.choice(dims) * rng.choice((0.75, 1, 1, 1.25)) / 8) * 8
    if rng.random() < 0.3:
        d += rng.choice((-3, -2, -1, 1, 2, 3))
    return d


def _draw_vit(rng: random.Random, focus: str) -> dict:
    dims = VIT_DIMS[3:] if focus == "gemm" else VIT_DIMS
    dim = _vit_dim(rng, dims)
    heads = [h for h in VIT_HEADS if dim % h == 0]
    if focus in ("softmax", "data") and len(heads) > 1:
        heads = heads[len(heads) // 2:]  # the larger counts: more, smaller attention matrices
    image = rng.choice(VIT_IMAGES)
    patch = 8 if rng.random() < (0.8 if focus == "softmax" else 0.5) else 16  # >= 4 tokens at 32x32
    depth = 4 if focus in ("norm", "eltwise") else rng.randint(1, 4)
    qkv = "fused" if focus == "data" else rng.choice(("fused", "separate"))
    return {"family": "vit", "image": image, "patch": patch, "dim": dim, "heads": rng.choice(heads),
            "depth": depth, "qkv": qkv}


def sample_vit(seed: int, focus: str = "") -> dict:
    """The transformer of `seed` (and `focus`): draws until one fits the FLOP range."""
    rng = random.Random(f"calib-vit-{seed}-{focus}")
    for _ in range(MAX_DRAWS):
        net = _draw_vit(rng, focus)
        if MIN_FLOPS <= flops(net) <= MAX_FLOPS:
            return net
    raise RuntimeError(f"calib-vit-{seed}-{focus}: no draw in {MAX_DRAWS} fits the limits")
