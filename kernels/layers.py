"""A model profiled layer by layer (the first source document: "measure, then profile layer
by layer"), as case kinds that run in a worker like every other measurement.

    layers.torch        a zoo model in torch eager: every torch-level call timed
    layers.onnxruntime  a zoo model (exported) or an ONNX file: every kernel ONNX Runtime runs

The case's own timing is the whole model with no profiler, by the measurement core. Then
the `layers` hook profiles `runs` more passes after `warmup` and returns each layer's time
per pass (its samples) and cost; the worker writes one `layer.*` record per layer, which
the analysis places on the roofline like any other record.

torch: the cost walk's TorchFunctionMode (harness.cost.torch_walk) with time.perf_counter
around every torch-level call (F.conv2d, F.batch_norm, the residual add, torch.cat, the
attention matmuls...), so layers and costs join one to one by name. Forward hooks around
leaf modules would miss the functional ops; torch.profiler was not chosen because its
events are aten ops, several per module, that must be mapped back. CPU ops run
synchronously, so the clock around a call is the op's time; what it costs (a Python call
and two clock reads per op) is measured as the whole model with and without the walk.

ONNX Runtime: its own profiler (SessionOptions.enable_profiling); the JSON trace gives, per
node and run, the kernel's duration. Runs are told apart by their model_run events; the
warm-up runs are dropped. Renamed and fused nodes are costed by harness.cost.ort_kernels.
torch and onnxruntime are imported inside functions (deferred on purpose).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.core.records import Cost
from harness.core.registry import Kind, Param
from harness.core.workload import Context, Layers, LayerTiming, Workload
from harness.cost.model import LayerCost
from harness.cost.onnx_graph import load_onnx, onnx_model_cost, parse_shapes, resolve_onnx_shapes
from harness.cost.ort_kernels import cost_profiled_nodes, shape_list
from harness.cost.torch_walk import TorchWalk, model_cost
from kernels import zoo
from kernels.models import (ZOO_NAME_HELP, export_onnx, model_memory, onnx_batch, onnx_feed, ort_value,
                            validate_onnx_file, validate_zoo_name)
from kernels.ort import OPT_LEVELS, create_session

BYTES_ACCOUNTING = "inputs + weights + output of the layer, each moved once"


def layer_cost(layer: LayerCost | None, source: str) -> Cost | None:
    if layer is None:
        return None
    c = layer.cost
    return Cost.of(float(c.flops), float(c.bytes), bytes_accounting=BYTES_ACCOUNTING, source=source,
                   params=int(c.params), breakdown={k: int(getattr(c, k)) for k in
                                                    ("flops_main", "flops_bias", "flops_norm", "flops_act",
                                                     "flops_residual")})


def layer_info(layer: LayerCost | None, **extra) -> dict:
    info = dict(extra)
    if layer is not None:
        info.update(category=layer.category, scope=layer.scope, module=layer.module,
                    output_shape=list(layer.cost.output_shape))
    return info


# --------------------------------------------------------------------------- torch

def torch_setup(params: dict):
    """(model, example input, its cost) of a layers/kernels case's zoo model in torch eager."""
    import torch

    name, batch, image = params["model"], params["batch"], params["image"]
    model = zoo.build(name)
    x = torch.randn(batch, 3, image, image, generator=torch.Generator().manual_seed(1))
    return model, x, model_cost(model, example=x, flop_counter=False, activations=False, source=name)


def profile_torch(model, x, cost, runs: int, warmup: int) -> tuple[list[LayerTiming], list[float]]:
    """Every torch-level call of a forward pass, costed, with its time in each of `runs` passes
    after `warmup` (the walk's clock around each call), and the whole passes' wall times."""
    import torch

    costs = {layer.name: layer for layer in cost.layers}
    uncosted = {u["op"]: {"uncosted": u["group"], "cost_error": u["reason"]} for u in cost.unknown}
    per_run, names, walled, shapes = [], None, [], {}
    with torch.inference_mode():
        for i in range(warmup + runs):
            walk = TorchWalk(model, cost=False, timer=True)
            t0 = time.perf_counter()
            with walk:
                model(x)
            wall = time.perf_counter() - t0
            if names is None:
                names, shapes = walk.ops, walk.input_shapes
            elif walk.ops != names:
                raise RuntimeError("the model ran different ops on different runs; layers cannot be matched")
            if i >= warmup:
                per_run.append(walk.times)
                walled.append(wall)
    out = []
    for j, (layer_name, op) in enumerate(names):
        if layer_name in costs:
            info = layer_info(costs[layer_name])
        else:
            info = dict(uncosted.get(op, {"uncosted": "no formula", "cost_error": "no cost formula for this op"}))
        info["input_shapes"] = shapes.get(layer_name, [])  # a conv: input, weight (and bias)
        out.append(LayerTiming(layer_name, op, [run[j] for run in per_run],
                               layer_cost(costs.get(layer_name), "harness.cost.torch_walk"), info))
    return out, walled


def torch_layers(params: dict, ctx: Context) -> Workload:
    import torch

    model, x, cost = torch_setup(params)

    def fn():
        with torch.inference_mode():
            model(x)

    def layers() -> Layers:
        out, walled = profile_torch(model, x, cost, params["runs"], params["warmup"])
        # Ops without a cost: the layer table's footer gives each group's share of the time.
        return Layers(out, "TorchFunctionMode + time.perf_counter per torch call", params["runs"], params["warmup"],
                      float(np.median(walled)), [])

    info = {"model": params["model"], "framework": "eager", "batch": params["batch"],
            "input_shape": list(x.shape), "torch": torch.__version__, "graph_flops": cost.flops}
    return Workload(fn=fn, flops=float(cost.flops), bytes=float(cost.bytes), info=info, layers=layers)


def parse_ort_profile(events: list[dict], warmup: int = 0) -> tuple[dict, list[float]]:
    """ONNX Runtime's profiling trace -> ({node name: {op, durations per run (s), shapes}},
    whole-run durations (s)), the first `warmup` runs dropped."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    kept = runs[warmup:]
    nodes: dict[str, dict] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        ts = e["ts"]
        index = next((i for i, r in enumerate(kept) if r["ts"] <= ts <= r["ts"] + r["dur"]), None)
        if index is None:
            continue
        node_name = e["name"][: -len("_kernel_time")]
        args = e.get("args") or {}
        node = nodes.setdefault(node_name, {"op": args.get("op_name", ""), "provider": args.get("provider", ""),
                                            "durations": [0.0] * len(kept),
                                            "input_shapes": args.get("input_type_shape", []),
                                            "output_shapes": args.get("output_type_shape", [])})
        node["durations"][index] += e["dur"] * 1e-6
    return nodes, [r["dur"] * 1e-6 for r in kept]


def ort_setup(params: dict):
    """(path, label, shapes, graph, cost, feed) of a layers/kernels case's model: a zoo model
    exported once (cached), or an ONNX file with its shapes resolved."""
    if params["model"]:
        path = export_onnx(params["model"], params["batch"], params["image"])
        label, shapes = params["model"], None
    else:
        path, label = Path(params["onnx"]), Path(params["onnx"]).stem
        shapes = parse_shapes(params["shape"]) if params["shape"] else None
    graph = load_onnx(path, load_weights=False)  # cost, feed, node matching: dims; the sessions read the file
    shapes = resolve_onnx_shapes(graph, shapes, str(path))
    cost = onnx_model_cost(graph, shapes)
    feed = {name: ort_value(array) for name, array in onnx_feed(graph, shapes).items()}  # bfloat16 too
    return path, label, shapes, graph, cost, feed


def profile_ort(path, graph, cost, feed, ctx: Context, opt_level: str, runs: int,
                warmup: int) -> tuple[list[LayerTiming], list[float], list[str]]:
    """Every kernel ONNX Runtime runs, costed, with its time in each of `runs` profiled passes
    after `warmup` (its profiler's trace), the whole passes' times, and notes."""
    with tempfile.TemporaryDirectory(prefix="harness-ort-profile-") as tmp:
        built = create_session(path, ctx.threads, ctx.cpus, opt_level, profile_prefix=str(Path(tmp) / "ort"),
                               keep_optimized=True)
        for _ in range(warmup + runs):
            built.session.run_with_ort_values(None, feed)
        events = json.loads(Path(built.session.end_profiling()).read_text())
    nodes, whole = parse_ort_profile(events, warmup)
    kernels = cost_profiled_nodes(nodes, graph, cost, built.optimized_model)
    out = []
    for node_name, node in nodes.items():
        k = kernels[node_name]
        outputs = shape_list(node["output_shapes"])
        # The trace's shapes of every input, initializers too (a conv: X, W and B).
        info = layer_info(k.layer, cost_source=k.how, provider=node["provider"], kernel=k.kernel,
                          source_nodes=k.source_nodes,
                          input_shapes=[list(dims) for dims, _ in shape_list(node["input_shapes"])])
        if "output_shape" not in info and outputs:
            info["output_shape"] = list(outputs[0][0])
        if k.layer is None:
            info.update(uncosted=k.uncosted, cost_error=k.reason)
        out.append(LayerTiming(node_name, k.op, node["durations"], layer_cost(k.layer, k.how), info))
    costed = sum(lt.cost.flops for lt in out if lt.cost is not None)
    notes = [] if built.optimized_model is not None else [
        "ONNX Runtime's optimized graph could not be read: kernels costed from their trace shapes alone"]
    notes.append(f"the graph costs {cost.flops / 1e9:.4g} GFLOP as given; the profiled kernels "
                 f"{costed / 1e9:.4g} GFLOP after ONNX Runtime's {opt_level} optimisations")
    return out, whole, notes


def ort_layers(params: dict, ctx: Context) -> Workload:
    import onnxruntime as ort

    path, label, shapes, graph, cost, feed = ort_setup(params)
    plain = create_session(path, ctx.threads, ctx.cpus, params["opt_level"]).session

    def fn():
        plain.run_with_ort_values(None, feed)

    def layers() -> Layers:
        out, whole, notes = profile_ort(path, graph, cost, feed, ctx, params["opt_level"], params["runs"],
                                        params["warmup"])
        return Layers(out, "onnxruntime SessionOptions.enable_profiling (kernel time per node)", params["runs"],
                      params["warmup"], float(np.median(whole)) if whole else float("nan"), notes)

    info = {"model": label, "framework": "onnxruntime", "onnx_path": str(path), "opt_level": params["opt_level"],
            "batch": onnx_batch(shapes), "input_shapes": {k: list(v) for k, v in shapes.items()},
            "onnxruntime": ort.__version__, "graph_flops": cost.flops}
    return Workload(fn=fn, flops=float(cost.flops), bytes=float(cost.bytes), info=info, layers=layers)


def validate(params: dict) -> None:
    """A zoo name or one ONNX file, and the input the model takes (shared with kernels/discover.py)."""
    if "onnx" in params and bool(params["model"]) == bool(params["onnx"]):
        raise ValueError("model: give exactly one of model (a zoo name) or onnx (a .onnx path)")
    validate_zoo_name(params)
    if params["model"] == "vit_tiny" and params["image"] != 224:
        raise ValueError("image: vit_tiny's position embedding fixes its input at 224")
    validate_onnx_file(params)


MODEL_INPUT = {"batch": Param(int, 1, min=1, max=4096, help="images per forward pass (zoo models)"),
               "image": Param(int, 224, min=32, max=1024, help="input height = width (zoo models)")}
_COMMON = {**MODEL_INPUT,
           "runs": Param(int, 10, min=1, max=10_000, help="profiled passes (each layer's samples)"),
           "warmup": Param(int, 3, min=0, max=10_000, help="profiled passes dropped before them")}

# The model an ONNX Runtime case runs (shared with kernels/discover.py's listing kind).
ORT_MODEL = {"model": Param(str, "", help="zoo model name (exported to ONNX once, cached)"),
             "onnx": Param(str, "", help="path to a .onnx file instead of a zoo model"),
             "shape": Param(str, "", help="fixed shapes for dynamic inputs: input=1x3x224x224[,name=...]"),
             "opt_level": Param(str, "all", choices=OPT_LEVELS, help="ONNX Runtime graph optimization level")}

KINDS = [
    Kind("layers.torch", "kernels.layers:torch_layers",
         {"model": Param(str, help=ZOO_NAME_HELP), **_COMMON},
         "a zoo model in torch eager, layer by layer: one record per torch-level call, with its cost",
         validate=validate, memory=model_memory),
    Kind("layers.onnxruntime", "kernels.layers:ort_layers", {**ORT_MODEL, **_COMMON},
         "a model in ONNX Runtime, node by node from its profiler: one record per kernel, with its cost",
         validate=validate, memory=model_memory),
]
