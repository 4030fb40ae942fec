"""A model's memory footprint (the first source document's 内存占用), measured in a fresh worker.

The case always gets a worker of its own (Kind.fresh_process), so what it measures is one
model in one process: the runtime loaded (rss_runtime_bytes, the floor), then the peak
while loading the model, resident once loaded, the peak during a first and during a second
forward pass; weights_bytes is what the model holds as weights (a zoo model: its parameters
and buffers; an ONNX file: its constant tensors, initializers in external files included,
counted from their dims, not the .onnx file's size). Each phase's peak is exact where the
kernel lets /proc/self/clear_refs reset the peak-RSS counter (else sampled every 0.5 ms); freed memory is handed back between
phases (glibc malloc_trim), so resident figures count what is in use, not what the
allocator kept. footprint_bytes = the second pass's peak above the floor: the memory the
loaded model occupies at its highest while it runs (weights, activations, the runtime's
workspaces and caches). One thread, as a footprint should not depend on thread pools.

The timed part of the case is the forward pass itself (a short budget); the figures are in
info["footprint"]. A model too big for the machine is killed by the runner's memory handling
like any case, and becomes a failed record with the reason, never a traceback.
torch and onnxruntime are imported inside functions (deferred on purpose).
"""
from __future__ import annotations

import ctypes
import gc

from harness.core import system
from harness.core.registry import Kind, Param
from harness.core.workload import Context, Workload
from harness.cost.onnx_graph import load_onnx, parse_shapes, resolve_onnx_shapes
from harness.cost.onnx_weights import graph_constants, weights_bytes
from kernels import zoo
from kernels.models import model_memory, onnx_feed, ort_value, validate_onnx_file
from kernels.ort import create_session


def _trim() -> None:
    """Hands memory the process freed back to the OS (glibc malloc_trim), so RSS after a
    phase counts what is still in use (building a zoo model calibrates BatchNorm on a
    float64 batch and frees it)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def footprint(params: dict, ctx: Context) -> Workload:
    peak = system.PeakRSS()
    if params["onnx"]:
        import onnxruntime as ort

        # The graph without its external weights: enough for the feed and the weight bytes
        # (counted from dims), and freed before the baseline is read.
        graph = load_onnx(params["onnx"], load_weights=False)
        shapes = resolve_onnx_shapes(graph, parse_shapes(params["shape"]), params["onnx"])
        feed = onnx_feed(graph, shapes)
        weights = weights_bytes(graph_constants(graph))
        del graph
        _trim()
        baseline = system.rss_bytes()
        built, load_peak = peak.measure(lambda: create_session(params["onnx"], 1, ctx.cpus, "all"))
        session = built.session
        inputs = {name: ort_value(array) for name, array in feed.items()}
        run = lambda: session.run_with_ort_values(None, inputs)  # OrtValues: bfloat16 has no numpy twin in ORT
        runtime = f"onnxruntime {ort.__version__}"
    else:
        import torch

        torch.set_num_threads(1)
        _trim()
        baseline = system.rss_bytes()
        model, load_peak = peak.measure(lambda: zoo.build(params["model"]))
        weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        x = torch.randn(params["batch"], 3, params["image"], params["image"],
                        generator=torch.Generator().manual_seed(0))

        def run():
            with torch.inference_mode():
                return model(x)
        runtime = f"torch {torch.__version__} eager"
    _trim()
    loaded = system.rss_bytes()
    out, first_peak = peak.measure(run)
    del out
    _trim()
    before_second = system.rss_bytes()
    out, steady_peak = peak.measure(run)
    del out
    info = {"footprint": {
        "method": peak.method + "; malloc_trim between phases", "runtime": runtime, "threads": 1,
        "weights_bytes": weights, "rss_runtime_bytes": baseline, "load_peak_bytes": load_peak - baseline,
        "loaded_bytes": loaded - baseline, "first_run_peak_bytes": first_peak - baseline,
        "steady_run_peak_bytes": steady_peak - baseline, "first_run_growth_bytes": first_peak - loaded,
        "run_growth_bytes": steady_peak - before_second, "footprint_bytes": steady_peak - baseline}}
    return Workload(fn=run, info=info)


def _validate(params: dict) -> None:
    if bool(params["model"]) == bool(params["onnx"]):
        raise ValueError("model: give exactly one of model (a zoo name) or onnx (a .onnx path)")
    if params["model"] and params["model"] not in zoo.MODELS:
        raise ValueError(f"model: unknown zoo model {params['model']!r} (known: {', '.join(zoo.MODELS)})")
    validate_onnx_file(params)


KINDS = [
    Kind("model.footprint", "kernels.footprint:footprint",
         {"model": Param(str, "", help="zoo model name"),
          "onnx": Param(str, "", help="path to a .onnx file instead of a zoo model"),
          "shape": Param(str, "", help="fixed shapes for an ONNX file's inputs: input=1x3x224x224[,name=...]"),
          "batch": Param(int, 1, min=1, max=4096, help="images per forward pass (zoo models)"),
          "image": Param(int, 224, min=32, max=1024, help="input height = width (zoo models)")},
         "a model's memory footprint in a fresh process: resident memory by phase (load, first and "
         "second forward pass), one thread",
         validate=_validate, fresh_process=True, memory=model_memory),
]
