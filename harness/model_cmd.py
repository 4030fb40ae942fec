"""`harness model NAME|FILE`: one model's four size metrics, its latency and throughput per
framework, thread count and batch, and with --layers where the time goes, layer by layer.

NAME is a zoo model (kernels/zoo.py); FILE a .onnx file (bring your own model), run in
ONNX Runtime with shapes from ONNX shape inference (give --shape for dynamic inputs),
cost per node from the cost model, time per node from ONNX Runtime's profiler.

The timing cases run through the measurement core (a worker process per thread setting,
pinned, warmed up, timed to a median) into a run under --results; layer records are
appended to the same run. Bad input is one line and exit code 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.errors import UsageError

FRAMEWORKS = ("eager", "compile", "onnxruntime")
OPT_LEVELS = ("disable", "basic", "extended", "all")

EXAMPLES = """\
examples:
  harness model resnet18                          four metrics; eager and onnxruntime at 1 and all threads
  harness model mobilenet_v2 --batch 1 8 --layers latency, throughput and the per-layer table
  harness model vgg16 --framework compile         torch.compile (skipped with the reason if it fails here)
  harness model my.onnx --shape input=1x3x224x224 bring your own ONNX model (dynamic dims need --shape)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NAME|FILE",
                        help="a zoo model (resnet18, mobilenet_v2, ...) or a path to a .onnx file")
    parser.add_argument("--framework", nargs="+", choices=FRAMEWORKS,
                        help="frameworks to time (default: eager onnxruntime for a zoo model, onnxruntime for a file)")
    parser.add_argument("--threads", nargs="+", default=["1", "all"],
                        help="thread counts, or 'all' (default: 1 all)")
    parser.add_argument("--batch", nargs="+", type=int, default=[1], help="batch sizes of a zoo model (default: 1)")
    parser.add_argument("--image", type=int, default=224, help="input height = width of a zoo model (default: 224)")
    parser.add_argument("--shape", help="shapes of an ONNX file's inputs: NAME=1x3x224x224[,NAME=...]")
    parser.add_argument("--opt-level", default="all", choices=OPT_LEVELS,
                        help="ONNX Runtime graph optimization level (default: all)")
    parser.add_argument("--layers", action="store_true", help="profile layer by layer (first batch size)")
    parser.add_argument("--top", type=int, default=10, help="layers shown per profile (default: 10)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timed sampling per case (default: 1)")
    parser.add_argument("--results", default="results", help="where runs are stored (default: results)")
    parser.add_argument("--no-footprint", action="store_true",
                        help="skip the memory-footprint subprocess (saves a model build)")
    parser.add_argument("--no-progress", action="store_true", help="no progress output")


# ---------------------------------------------------------------------------- target

def resolve_target(text: str, shape: str | None) -> dict:
    """{'kind': 'zoo', 'name'} or {'kind': 'onnx', 'path', 'shapes'}; UsageError otherwise."""
    from harness.model_cost import load_onnx, parse_shapes, resolve_onnx_shapes
    from kernels.zoo import MODELS

    looks_like_file = text.endswith(".onnx") or os.sep in text or Path(text).exists()
    if text in MODELS and not Path(text).exists():
        if shape:
            raise UsageError("--shape: is for ONNX files; a zoo model takes --batch and --image")
        return {"kind": "zoo", "name": text}
    if not looks_like_file:
        raise UsageError(f"unknown model {text!r}: not a zoo model (known: {', '.join(MODELS)}) "
                         "and not a .onnx file")
    model = load_onnx(text, load_weights=False)
    shapes = resolve_onnx_shapes(model, parse_shapes(shape), text)
    return {"kind": "onnx", "path": str(Path(text)), "shapes": shapes}


def _threads(values: list[str]) -> list:
    out = []
    for v in values:
        if v == "all":
            out.append("all")
            continue
        try:
            out.append(int(v))
        except ValueError:
            raise UsageError(f"--threads {v}: expected a positive integer or 'all'") from None
    return out


def build_suite(target: dict, frameworks: list[str], threads: list, batches: list[int], image: int,
                opt_level: str, budget: float) -> dict:
    """The suite (as a dict for harness.suite.parse_suite) that times the model."""
    cases = []
    common = {"threads": threads, "budget": budget, "min_samples": 5, "timeout": 600}
    if target["kind"] == "zoo":
        name = target["name"]
        for fw in frameworks:
            if fw == "onnxruntime":
                cases.append({"id": f"{name}.onnxruntime", "kind": "model.onnxruntime",
                              "params": {"model": name, "opt_level": opt_level, "image": image},
                              "matrix": {"batch": batches}, **common})
            else:
                # Compilation runs in the factory, before the timeout's case clock matters most.
                cases.append({"id": f"{name}.{fw}", "kind": "model.torch",
                              "params": {"model": name, "framework": fw, "image": image},
                              "matrix": {"batch": batches}, **common,
                              "timeout": 1200 if fw == "compile" else 600})
        label = name
    else:
        from harness.model_cost import format_shape

        label = Path(target["path"]).stem
        shape = ",".join(f"{k}={format_shape(v)}" for k, v in target["shapes"].items())
        cases.append({"id": f"{label}.onnxruntime", "kind": "model.onnxruntime",
                      "params": {"onnx": str(Path(target["path"]).resolve()), "shape": shape, "opt_level": opt_level},
                      **common})
    return {"name": f"model-{label}", "description": f"harness model {label}", "cases": cases}


# ---------------------------------------------------------------------------- printing

def _si(value, unit: str) -> str:
    from harness.report import fmt_si

    return fmt_si(value, unit, digits=4) or "n/a"


def _time(seconds) -> str:
    from harness.cli import _human_time

    return _human_time(seconds) if seconds else ""


def format_metrics(cost, footprint: dict | None, title: str) -> str:
    """The four size metrics of the first source document, with how each was obtained."""
    by = cost.flops_by_category()
    extra = ", ".join(f"{k} {_si(v, 'FLOP')}" for k, v in by.items() if k != "main" and v)
    lines = [title, "  FLOPs             " + _si(cost.flops, "FLOP")
             + f"  (conv/linear/matmul multiply-adds x 2: {_si(by['main'], 'FLOP')}"
             + (f"; + {extra}" if extra else "") + ")"]
    if cost.torch_flop_counter is not None:
        same = "equal" if cost.torch_flop_counter == by["main"] else "DIFFERENT"
        lines.append(f"                    torch FlopCounterMode: {_si(cost.torch_flop_counter, 'FLOP')} ({same} to "
                     "our conv/linear/matmul figure; it counts nothing else)")
    lines.append(f"  parameters        {cost.params:,} ({_si(cost.params * 4, 'B')} as float32)")
    lines.append(f"  memory access     {_si(cost.bytes, 'B')} (every op's inputs, weights and output moved once; "
                 f"intensity {cost.intensity:.3g} FLOP/B)")
    foot = []
    if footprint:
        foot.append(f"{_si(footprint['footprint_bytes'], 'B')} peak while running, above the runtime's own "
                    f"{_si(footprint['rss_runtime_bytes'], 'B')} ({footprint['runtime']}, 1 thread, fresh process): "
                    f"weights {_si(footprint['weights_bytes'], 'B')}, resident once loaded "
                    f"{_si(footprint['loaded_bytes'], 'B')}, first run peak {_si(footprint['first_run_peak_bytes'], 'B')}")
    if cost.activation_peak_bytes is not None:
        foot.append(f"activation high-water {_si(cost.activation_peak_bytes, 'B')} (live tensors, torch eager)")
    lines.append("  memory footprint  " + ("; ".join(foot) if foot else "not measured"))
    if cost.unknown:
        lines.append("  ops without a cost formula (not counted): " + ", ".join(
            f"{u['op']} x{u['count']} ({u['share_of_output_elements']:.1%} of output elements)" for u in cost.unknown))
    else:
        lines.append("  every op has a cost formula")
    for note in cost.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _framework_of(record: dict) -> str:
    if record.get("kind") == "model.onnxruntime":
        return "onnxruntime"
    return (record.get("params") or {}).get("framework", "?")


def format_timings(records: list[dict]) -> str:
    """Latency and throughput per framework, threads and batch; one-off costs apart."""
    from harness.cli import format_table

    rows = []
    order = {fw: i for i, fw in enumerate(FRAMEWORKS)}
    for r in sorted(records, key=lambda r: (order.get(_framework_of(r), 9), r.get("threads") or 0,
                                            (r.get("params") or {}).get("batch", 0))):
        info = r.get("info") or {}
        batch = info.get("batch", (r.get("params") or {}).get("batch"))
        if r.get("status") != "ok":
            reason = (r.get("error") or "").strip().splitlines()
            rows.append([_framework_of(r), r.get("threads"), batch, r.get("status"), "", "", "", "", "", "", "",
                         reason[0][:90] if reason else ""])
            continue
        t, m = r["timing"], r.get("metrics") or {}
        roof = r.get("roofline") or {}
        setup = info.get("compile_s") or info.get("session_create_s")
        setup_label = ("compile " if "compile_s" in info else "session ") + _time(setup) if setup else ""
        eff = roof.get("efficiency")
        rows.append([_framework_of(r), r["threads"], batch, "ok", _time(t["median"]),
                     f"{100 * t['cv']:.1f}%", f"{m.get('throughput_per_s', 0):.4g}",
                     f"{m.get('flops_per_s', 0) / 1e9:.4g}", setup_label, _time(t.get("first_call_s")),
                     f"{eff:.1%} ({roof.get('source')})" if eff else "", f"{len(r.get('warnings', []))} warnings"
                     if r.get("warnings") else ""])
    return format_table(["framework", "threads", "batch", "status", "latency", "CV", "images/s", "GFLOP/s",
                         "one-off setup", "first run", "roofline eff.", "note"], rows)


# ---------------------------------------------------------------------------- run

def _pinned(threads: int):
    """Pins this process to `threads` CPUs (one per core first) for in-process profiling."""
    from contextlib import contextmanager

    from harness.conditions import available_cpus, choose_cpus

    @contextmanager
    def pin():
        before = available_cpus()
        os.sched_setaffinity(0, choose_cpus(threads, before))
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)
    return pin()


def profile_layers(target: dict, frameworks: list[str], threads: list[int], batch: int, image: int,
                   opt_level: str, top: int, results: str, store_path: Path | None) -> list:
    """Per-layer profiles for each (framework, threads), printed, their records appended to the run."""
    from harness import layers
    from harness.store import RunStore

    profiles = []
    for fw in frameworks:
        if fw == "compile":
            print("\nper-layer: torch.compile is not profiled layer by layer (inductor fuses layers into "
                  "kernels that no longer match the model's ops); see eager")
            continue
        for t in threads:
            ceil = layers.ceilings(t, results)
            with _pinned(t):
                if fw == "eager":
                    import torch

                    from kernels import zoo

                    model = zoo.build(target["name"])
                    x = torch.randn(batch, 3, image, image)
                    prof = layers.profile_torch(model, x, threads=t, name=target["name"], ceil=ceil)
                else:
                    if target["kind"] == "zoo":
                        from kernels.models import export_onnx

                        path = export_onnx(target["name"], batch, image)
                        shapes, name = None, target["name"]
                    else:
                        path, shapes, name = target["path"], target["shapes"], Path(target["path"]).stem
                    prof = layers.profile_onnxruntime(path, shapes, threads=t, opt_level=opt_level, name=name,
                                                      ceil=ceil)
            print()
            print(layers.format_profile(prof, top))
            if store_path is not None:
                store = RunStore(store_path)
                try:
                    for record in layers.layer_records(prof):
                        store.append(record)
                finally:
                    store.close()
            profiles.append(prof)
    return profiles


def run(args) -> int:
    from harness.cli import run_suite
    from harness.model_cost import memory_footprint, onnx_model_cost, zoo_model_cost
    from harness.suite import parse_suite, resolve_threads
    from harness.conditions import available_cpus

    target = resolve_target(args.model, args.shape)
    frameworks = args.framework or (["eager", "onnxruntime"] if target["kind"] == "zoo" else ["onnxruntime"])
    if target["kind"] == "onnx":
        wrong = [fw for fw in frameworks if fw != "onnxruntime"]
        if wrong:
            raise UsageError(f"--framework {wrong[0]}: an ONNX file runs in onnxruntime only")
    if not args.budget >= 0 or args.budget == float("inf"):  # also refuses NaN
        raise UsageError(f"--budget {args.budget}: must be >= 0")
    if any(b < 1 for b in args.batch):
        raise UsageError("--batch: sizes must be >= 1")
    threads = resolve_threads("--threads", _threads(args.threads), available_cpus())
    data = build_suite(target, frameworks, threads, args.batch, args.image, args.opt_level, args.budget)
    suite = parse_suite(data, "harness model")  # validates every case before anything heavy starts

    if target["kind"] == "zoo":
        from kernels.zoo import MODELS

        name = target["name"]
        shape = (args.batch[0], 3, args.image, args.image)
        cost = zoo_model_cost(name, args.batch[0], args.image)
        footprint = None if args.no_footprint else memory_footprint(name, shape)
        title = f"{name}: {MODELS[name]}\ninput {'x'.join(map(str, shape))} float32"
    else:
        cost = onnx_model_cost(target["path"], target["shapes"])
        footprint = None if args.no_footprint else memory_footprint(onnx_path=target["path"], shapes=target["shapes"])
        title = f"{target['path']}: inputs " + ", ".join(
            f"{k} {'x'.join(map(str, v))}" for k, v in target["shapes"].items())
    print(format_metrics(cost, footprint, title))
    print(f"\ntiming {len(suite.cases)} cases ({', '.join(frameworks)}; threads {threads}; "
          f"batch {args.batch if target['kind'] == 'zoo' else 'from the input shape'})", file=sys.stderr, flush=True)
    sys.stdout.flush()
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    print()
    print(format_timings(records))
    if args.layers:
        profile_layers(target, frameworks, threads, args.batch[0], args.image, args.opt_level, args.top,
                       args.results, store.path)
        from harness.cli import write_report_safely

        store.report = write_report_safely(store.path)  # again, now with the layers in it
    print(f"\nrun stored in {store.path}")
    print(f"report: {store.report}")
    from harness.cli import exit_status

    return exit_status(records)


def main(argv: list[str] | None = None) -> int:
    """`harness model ...` run as `python -m harness.model_cmd ...`."""
    from harness.cli import main as harness_main

    return harness_main(["model", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
