"""The distinct convolution layers of a zoo model, as conv case params.

    distinct_conv_layers("resnet50")   -> one dict per distinct conv, in order of first use
    python -m kernels.conv_layers resnet50 [--hw 224]   -> the YAML block for suites/conv.yaml

A forward pass with a hook on every nn.Conv2d records the input each conv really sees,
so the spatial sizes come from the network, not from reading its definition.

torch is imported inside functions (deferred on purpose: listing layers of a suite must not start it).
"""
from __future__ import annotations

import argparse
import sys

from kernels import zoo

# The conv fields, in the words of the conv kinds' params (kernels/conv.py).
FIELDS = ("n", "ic", "oc", "h", "w", "kh", "kw", "stride", "pad", "dilation", "groups", "bias")
# Values a suite may leave out: the kinds' defaults (w and kw then follow h and kh).
DEFAULTS = {"n": 1, "stride": 1, "pad": 0, "dilation": 1, "groups": 1, "bias": False}


def _square(module_name: str, what: str, value) -> int:
    """The conv kinds take one stride/pad/dilation for both sides; say so if a model differs."""
    values = value if isinstance(value, (tuple, list)) else (value, value)
    if isinstance(values, str) or len(set(values)) != 1:
        raise ValueError(f"{module_name}: {what} {value!r} is not the same on both sides; "
                         "the conv kinds take one value")
    return int(values[0])


def distinct_conv_layers(model_name: str, hw: int = 224, batch: int = 1) -> list[dict]:
    """Every distinct nn.Conv2d of zoo model `model_name` on a batch x 3 x hw x hw input.

    Each dict holds the FIELDS plus `count` (how many layers share the config) and
    `modules` (their names), in order of first execution."""
    import torch

    model = zoo.build(model_name)
    seen: dict[tuple, dict] = {}
    hooks = []

    def hook(name):
        def record(module, inputs, output):
            n, c, h, w = inputs[0].shape
            layer = {
                "n": int(n), "ic": int(c), "oc": module.out_channels, "h": int(h), "w": int(w),
                "kh": module.kernel_size[0], "kw": module.kernel_size[1],
                "stride": _square(name, "stride", module.stride),
                "pad": _square(name, "padding", module.padding),
                "dilation": _square(name, "dilation", module.dilation),
                "groups": module.groups, "bias": module.bias is not None,
            }
            key = tuple(layer[f] for f in FIELDS)
            if key not in seen:
                seen[key] = {**layer, "count": 0, "modules": []}
            seen[key]["count"] += 1
            seen[key]["modules"].append(name)
        return record

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            hooks.append(module.register_forward_hook(hook(name)))
    try:
        with torch.inference_mode():
            model(torch.zeros(batch, 3, hw, hw))
    finally:
        for h in hooks:
            h.remove()
    return list(seen.values())


def layer_params(layer: dict) -> dict:
    """A layer's conv params for a suite, leaving out the kinds' defaults."""
    params = {"ic": layer["ic"], "oc": layer["oc"], "h": layer["h"]}
    if layer["w"] != layer["h"]:
        params["w"] = layer["w"]
    params["kh"] = layer["kh"]
    if layer["kw"] != layer["kh"]:
        params["kw"] = layer["kw"]
    for key in ("stride", "pad", "dilation", "groups", "bias", "n"):
        if layer[key] != DEFAULTS[key]:
            params[key] = layer[key]
    return params


def case_id(model_name: str, index: int) -> str:
    """resnet50-l1, resnet50-l2, ... in order of first execution."""
    short = {"shufflenet_v2_x1_0": "shufflenetv2", "mobilenet_v2": "mobilenetv2"}.get(model_name, model_name)
    return f"{short}-l{index + 1}"


def yaml_block(model_name: str, hw: int = 224) -> str:
    """The suite entries for a model's distinct convs, one flow-style line each."""
    lines = [f"  # {model_name} at {hw}x{hw}: {{}} distinct convs of {{}} (python -m kernels.conv_layers {model_name})"]
    layers = distinct_conv_layers(model_name, hw)
    for i, layer in enumerate(layers):
        params = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                           for k, v in layer_params(layer).items())
        shown = ", ".join(layer["modules"][:3]) + (", ..." if layer["count"] > 3 else "")
        lines.append(f"  - {{id: {case_id(model_name, i)}, kind: conv, params: {{{params}}}}}"
                     f"  # x{layer['count']}: {shown}")
    lines[0] = lines[0].format(len(layers), sum(layer["count"] for layer in layers))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.conv_layers",
                                     description="print the suite entries for a zoo model's distinct convs")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--hw", type=int, default=224, help="input height and width (default 224)")
    args = parser.parse_args(argv)
    for name in args.models:
        print(yaml_block(name, args.hw))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
