"""The kernels a framework would run for a model, each costed, with nothing of the model
timed: what `harness predict` predicts from.

    kernels.onnxruntime  ONNX Runtime builds its optimized graph at the chosen level and runs
                         the model once with its profiler on, for the kernels' names and shapes
                         (its graph rewrites and NCHWc layouts exist only in the session);
                         the trace's times are dropped.
    kernels.torch        one forward pass walked in the cost model's function mode.

The case's own timed callable is empty (the record's timing is of nothing and says nothing);
the kernel list is in info["kernels"], one entry per kernel in the order the framework runs
them, in the fields harness.analysis.predict.Kernel reads. A model that crashes, hangs or
runs out of memory while its kernels are listed is a failed record like any case.
torch and onnxruntime are imported inside functions (deferred on purpose, as in layers.py).
"""
from __future__ import annotations

from harness.core.registry import Kind, Param
from harness.core.workload import Context, LayerTiming, Workload
from kernels.layers import MODEL_INPUT, ORT_MODEL, ort_setup, profile_ort, profile_torch, torch_setup, validate
from kernels.models import ZOO_NAME_HELP, model_memory

UNTIMED = "nothing of the model is timed: the case's callable is empty; info['kernels'] lists the kernels"


def kernel_entry(lt: LayerTiming, dtype: str = "float32") -> dict:
    """One kernel as harness.analysis.predict.Kernel reads it (the fields of a layer record)."""
    cost, info = lt.cost, lt.info
    return {"name": lt.name, "op": lt.op, "category": info.get("category"),
            "flops": cost.flops if cost else None, "bytes": cost.bytes if cost else None,
            "flops_main": (cost.breakdown or {}).get("flops_main") if cost else None,
            "params": cost.params if cost else None, "output_shape": list(info.get("output_shape") or []),
            "input_shapes": [list(s) for s in info.get("input_shapes") or []], "dtype": dtype}


def nothing() -> None:
    """The timed callable of a listing case: there is nothing to time."""


def ort_kernels(params: dict, ctx: Context) -> Workload:
    path, label, shapes, graph, cost, feed = ort_setup(params)
    layers, _, notes = profile_ort(path, graph, cost, feed, ctx, params["opt_level"], runs=1, warmup=0)
    return Workload(fn=nothing, info={"model": label, "framework": "onnxruntime", "opt_level": params["opt_level"],
                                      "input_shapes": {k: list(v) for k, v in shapes.items()}, "method": UNTIMED,
                                      "kernels": [kernel_entry(lt) for lt in layers], "notes": notes})


def torch_kernels(params: dict, ctx: Context) -> Workload:
    model, x, cost = torch_setup(params)
    layers, _ = profile_torch(model, x, cost, runs=1, warmup=0)
    return Workload(fn=nothing, info={"model": params["model"], "framework": "eager", "input_shape": list(x.shape),
                                      "method": UNTIMED, "kernels": [kernel_entry(lt) for lt in layers]})


KINDS = [
    Kind("kernels.torch", "kernels.discover:torch_kernels",
         {"model": Param(str, help=ZOO_NAME_HELP), **MODEL_INPUT},
         "the torch-level calls of a zoo model in eager, costed, nothing timed (for harness predict)",
         validate=validate, memory=model_memory),
    Kind("kernels.onnxruntime", "kernels.discover:ort_kernels", {**ORT_MODEL, **MODEL_INPUT},
         "the kernels ONNX Runtime runs for a model, costed, nothing timed (for harness predict)",
         validate=validate, memory=model_memory),
]
