"""`harness model NAME|FILE`: one model's four size metrics, its latency and throughput per
framework, thread count and batch, and with --layers where the time goes, layer by layer.

NAME is a zoo model (kernels/zoo.py); FILE a .onnx file (bring your own model), run in ONNX
Runtime with shapes from ONNX shape inference (give --shape for dynamic inputs), costed per
node by the cost model. Everything that runs a model runs as a case in a worker process of
the run (pinned, warmed up, with the runner's crash, hang and memory handling): the
memory footprint (a fresh worker), the timing cases, and with --layers the per-layer
profiles (torch's function mode, ONNX Runtime's profiler). Bad input is one line, exit 2.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.analysis.layers import layer_tables
from harness.commands import options
from harness.core import registry
from harness.core.errors import UsageError
from harness.core.records import final
from harness.core.suite import parse_suite
from harness.cost.onnx_graph import format_shape, load_onnx, onnx_model_cost, parse_shapes, resolve_onnx_shapes
from harness.cost.onnx_weights import onnx_memory_estimate
from harness.cost.torch_walk import zoo_model_cost
from harness.presentation.console import closing_lines
from harness.presentation.model_text import format_layer_table, format_metrics, format_timings
from harness.core.text import cut, fmt_si
from harness.session.pipeline import exit_status, run_suite

HELP = "a zoo model or an ONNX file: four size metrics, latency and throughput per framework, layer by layer"
DESCRIPTION = __doc__
FRAMEWORKS = ("eager", "compile", "onnxruntime")
OPT_LEVELS = ("disable", "basic", "extended", "all")
EPILOG = """\
examples:
  harness model resnet18                          four metrics; eager and onnxruntime at 1 and all threads
  harness model mobilenet_v2 --batch 1 8 --layers latency, throughput and the per-layer table
  harness model vgg16 --framework compile         torch.compile (skipped with the reason if it fails here)
  harness model my.onnx --shape input=1x3x224x224 bring your own ONNX model (dynamic dims need --shape)
"""


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="NAME|FILE",
                        help="a zoo model (resnet18, mobilenet_v2, ...) or a path to a .onnx file")
    parser.add_argument("--framework", nargs="+", choices=FRAMEWORKS,
                        help="frameworks to time (default: eager onnxruntime for a zoo model, onnxruntime for a file)")
    parser.add_argument("--threads", nargs="+", default=["1", "all"], help="thread counts, or 'all' (default: 1 all)")
    parser.add_argument("--batch", nargs="+", type=options.bounded_int(1, 4096), default=[1],
                        help="batch sizes of a zoo model (default: 1)")
    parser.add_argument("--image", type=options.bounded_int(32, 1024), default=224,
                        help="input height = width of a zoo model (default: 224)")
    parser.add_argument("--shape", help="shapes of an ONNX file's inputs: NAME=1x3x224x224[,NAME=...]")
    parser.add_argument("--opt-level", default="all", choices=OPT_LEVELS,
                        help="ONNX Runtime graph optimization level (default: all)")
    parser.add_argument("--layers", action="store_true", help="profile layer by layer (first batch size)")
    parser.add_argument("--top", type=options.bounded_int(1, 10_000), default=10,
                        help="layers shown per profile (default: 10)")
    parser.add_argument("--budget", type=options.seconds, default=1.0,
                        help="seconds of timed sampling per case (default: 1)")
    parser.add_argument("--no-footprint", action="store_true", help="skip the memory footprint (saves a model build)")
    options.add_run_options(parser)


def resolve_target(text: str, shape: str | None) -> dict:
    """{'kind': 'zoo', 'name'} or {'kind': 'onnx', 'path', 'shapes'}; UsageError otherwise."""
    models = registry.model_zoo().MODELS
    looks_like_file = text.endswith(".onnx") or os.sep in text or Path(text).exists()
    if text in models and not Path(text).exists():
        if shape:
            raise UsageError("--shape: is for ONNX files; a zoo model takes --batch and --image")
        return {"kind": "zoo", "name": text}
    if not looks_like_file:
        raise UsageError(f"unknown model {text!r}: not a zoo model (known: {', '.join(models)}) and not a .onnx file")
    model = load_onnx(text, load_weights=False)
    shapes = resolve_onnx_shapes(model, parse_shapes(shape), text)
    return {"kind": "onnx", "path": str(Path(text).resolve()), "shapes": shapes}


def build_suite(target: dict, frameworks: list[str], threads: list, batches: list[int], image: int,
                opt_level: str, budget: float, layers: bool = False, footprint: bool = True) -> dict:
    """The suite (as a dict for harness.core.suite.parse_suite) that measures the model."""
    cases = []
    common = {"threads": threads, "budget": budget, "min_samples": 5, "timeout": 600}
    if target["kind"] == "zoo":
        name = label = target["name"]
        source = {"model": name}
        if footprint:
            cases.append({"id": f"{name}.footprint", "kind": "model.footprint", "threads": 1, "budget": 0.0,
                          "min_samples": 1, "warmup_max": 0.0, "timeout": 600,
                          "params": {"model": name, "batch": batches[0], "image": image}})
        for fw in frameworks:
            if fw == "onnxruntime":
                cases.append({"id": f"{name}.onnxruntime", "kind": "model.onnxruntime",
                              "params": {"model": name, "opt_level": opt_level, "image": image},
                              "matrix": {"batch": batches}, **common})
            else:  # compilation runs in the factory: a failing compiler is a skip with its reason
                cases.append({"id": f"{name}.{fw}", "kind": "model.torch",
                              "params": {"model": name, "framework": fw, "image": image},
                              "matrix": {"batch": batches}, **common, "timeout": 1200 if fw == "compile" else 600})
        layer_params = {**source, "batch": batches[0], "image": image}
    else:
        label = Path(target["path"]).stem
        shape = ",".join(f"{k}={format_shape(v)}" for k, v in target["shapes"].items())
        source = {"onnx": target["path"], "shape": shape}
        if footprint:
            cases.append({"id": f"{label}.footprint", "kind": "model.footprint", "threads": 1, "budget": 0.0,
                          "min_samples": 1, "warmup_max": 0.0, "timeout": 600, "params": source})
        cases.append({"id": f"{label}.onnxruntime", "kind": "model.onnxruntime",
                      "params": {**source, "opt_level": opt_level}, **common})
        layer_params = dict(source)
    if layers:
        for fw in frameworks:
            if fw == "eager":
                cases.append({"id": f"{label}.layers.torch", "kind": "layers.torch", "params": layer_params,
                              **common})
            elif fw == "onnxruntime":
                cases.append({"id": f"{label}.layers.onnxruntime", "kind": "layers.onnxruntime",
                              "params": {**layer_params, "opt_level": opt_level}, **common})
    return {"name": f"model-{label}", "description": f"harness model {label}", "cases": cases}


def run(args) -> int:
    target = resolve_target(args.model, args.shape)
    frameworks = args.framework or (["eager", "onnxruntime"] if target["kind"] == "zoo" else ["onnxruntime"])
    if target["kind"] == "onnx":
        wrong = [fw for fw in frameworks if fw != "onnxruntime"]
        if wrong:
            raise UsageError(f"--framework {wrong[0]}: an ONNX file runs in onnxruntime only")
    threads = options.thread_counts(args.threads)
    data = build_suite(target, frameworks, threads, args.batch, args.image, args.opt_level, args.budget,
                       layers=args.layers, footprint=not args.no_footprint)
    try:  # validates every case, its memory estimate included, before anything heavy starts
        suite = parse_suite(data, "harness model")
    except UsageError as exc:
        _, _, what = str(exc).partition("params: ")
        if not what:
            raise
        flags = "--batch/--image" if target["kind"] == "zoo" else target["path"]
        if target["kind"] == "onnx" and "(an estimate)" in what:
            est = onnx_memory_estimate(load_onnx(target["path"], load_weights=False), target["shapes"])
            what = what.replace("(an estimate)", f"(an estimate: weights {fmt_si(est.weights_bytes, 'B')}, "
                                f"activation high-water {fmt_si(est.activation_peak_bytes, 'B')} from shape "
                                "inference, with the runtime and its copies)", 1)
        raise UsageError(f"{flags}: {what}") from None
    if target["kind"] == "zoo":
        name = target["name"]
        shape = (args.batch[0], 3, args.image, args.image)
        cost = zoo_model_cost(name, args.batch[0], args.image)
        title = f"{name}: {registry.model_zoo().MODELS[name]}\ninput {'x'.join(map(str, shape))} float32"
    else:
        cost = onnx_model_cost(target["path"], target["shapes"])
        title = f"{target['path']}: inputs " + ", ".join(f"{k} {'x'.join(map(str, v))}"
                                                         for k, v in target["shapes"].items())
    if args.layers and "compile" in frameworks:
        print("per-layer: torch.compile is not profiled layer by layer (inductor fuses layers into kernels that "
              "no longer match the model's ops); see eager", file=sys.stderr)
    print(f"measuring {len(suite.cases)} cases ({', '.join(frameworks)}; threads {threads}"
          f"{'; layer by layer' if args.layers else ''})", file=sys.stderr, flush=True)
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    foot = next((r for r in final(records) if r.kind == "model.footprint"), None)
    footprint = foot.info.get("footprint") if foot is not None and foot.measured else None
    note = f"not measured: {foot.status}: {cut(foot.reason, 120)}" if foot is not None and not foot.measured else ""
    print(format_metrics(cost, footprint, title, note))
    print()
    print(format_timings(records))
    for table in layer_tables(records):
        print()
        print(format_layer_table(table, args.top))
    for r in final(records):
        if r.kind.startswith("layers.") and not r.measured:
            print(f"\nper-layer {r.case_id}: {r.status}: {cut(r.reason, 160)}")
    print()
    print("\n".join(closing_lines(store, records)))
    return exit_status(records)
