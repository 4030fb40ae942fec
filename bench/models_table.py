"""The model zoo's four size metrics beside its measured latency, and the layer-by-layer data
to answer the first source document's question on this device: which lower-FLOPs model is
not faster here, and why.

Per zoo model: FLOPs, parameters, memory access (every op's tensors moved once), memory
footprint (peak RSS of a fresh one-thread process above the runtime's own, and the
activation high-water mark), then the median latency per framework and thread count
(through the measurement core: pinned worker, warm-up, median). Then, at one thread and
batch 1, each model profiled layer by layer in eager PyTorch and ONNX Runtime, the time
grouped by kind of layer (dense conv, depthwise conv, linear/matmul, norm, activation,
residual add, pool, data movement) with each group's attained GFLOP/s and bound. Last, every
pair where the model with fewer FLOPs is not proportionally faster, with the layer groups
that explain the gap.

Usage: .venv/bin/python bench/models_table.py [--models resnet18 mobilenet_v2 ...]
           [--frameworks eager onnxruntime compile] [--threads 1 2] [--budget 0.5]
           [--image 224] [--no-layers] [--results results] [--json out.json]
Smoke run: --models resnet18 mobilenet_v2 --image 64 --budget 0.05 --threads 1
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.analysis.layers import layer_tables  # noqa: E402
from harness.core.errors import UsageError  # noqa: E402
from harness.core.records import final  # noqa: E402
from harness.core.suite import parse_suite  # noqa: E402
from harness.cost.torch_walk import zoo_model_cost  # noqa: E402
from harness.core.text import format_table  # noqa: E402
from harness.session.pipeline import run_suite  # noqa: E402
from kernels.zoo import MODELS  # noqa: E402

# A conv whose every output sums at most this many products is depthwise or near it
# (IC/G x KH x KW <= 25: a 3x3 or 5x5 depthwise); the dense stem conv (3 x 3 x 3 = 27) is not.
DEPTHWISE_MACS_PER_OUTPUT = 25
GROUPS = ("dense conv", "depthwise conv", "linear/matmul", "norm", "activation", "residual add", "pool",
          "softmax", "data movement", "other")


def group_of(row: dict) -> str:
    category = row.get("category")
    if category == "conv":
        out = 1
        for d in row.get("output_shape") or ():
            out *= d
        macs = (row.get("flops_main") or 0) / 2
        return "depthwise conv" if out and macs / out <= DEPTHWISE_MACS_PER_OUTPUT else "dense conv"
    return {"linear": "linear/matmul", "matmul": "linear/matmul", "norm": "norm", "act": "activation",
            "residual": "residual add", "pool": "pool", "softmax": "softmax", "data": "data movement",
            "bias": "activation", "eltwise": "other", "reduce": "pool"}.get(category, "other")


def groups_table(profile) -> dict:
    """{group: {time_s, share, flops, bytes, gflops, bound}} for one layer profile."""
    frame = profile.layers
    total = float(frame["time_s"].sum()) or 1.0
    out = {}
    for row in frame.to_dict("records"):
        g = out.setdefault(group_of(row), {"time_s": 0.0, "flops": 0, "bytes": 0, "layers": 0, "bounds": {}})
        g["time_s"] += row["time_s"]
        g["layers"] += 1
        if row["flops"] is not None and row["flops"] == row["flops"]:
            g["flops"] += int(row["flops"])
            g["bytes"] += int(row["bytes"])
        bound = row.get("bound") or "no cost"
        g["bounds"][bound] = g["bounds"].get(bound, 0.0) + row["time_s"]
    for g in out.values():
        g["share"] = g["time_s"] / total
        g["gflops"] = g["flops"] / g["time_s"] / 1e9 if g["time_s"] else 0.0
        g["bound"] = max(g["bounds"], key=g["bounds"].get)  # the bound of most of the group's time
    return out


def metrics_for(models: list[str], image: int) -> dict:
    out = {}
    for name in models:
        c = zoo_model_cost(name, 1, image)
        out[name] = {"flops": c.flops, "flops_main": c.flops_main_contractions, "params": c.params,
                     "bytes": c.bytes, "intensity": c.intensity, "activation_peak_bytes": c.activation_peak_bytes,
                     "footprint_bytes": None, "weights_bytes": None,
                     "torch_flop_counter": c.torch_flop_counter, "unknown_ops": c.unknown}
        print(f"{name}: {c.flops / 1e9:.3f} GFLOP, {c.params / 1e6:.2f} M params, {c.bytes / 1e6:.1f} MB accessed",
              file=sys.stderr, flush=True)
    return out


def measure_models(models, frameworks, threads, image, budget, results, layers: bool, footprint: bool) -> list:
    """One run: each model's footprint (a fresh worker), its latency per framework and thread
    count, and, at one thread, its per-layer profile in eager and ONNX Runtime."""
    cases = []
    for name in models:
        if footprint:
            cases.append({"id": f"{name}.footprint", "kind": "model.footprint", "threads": 1, "budget": 0.0,
                          "min_samples": 1, "warmup_max": 0.0, "params": {"model": name, "image": image}})
        for fw in frameworks:
            if fw == "onnxruntime":
                cases.append({"id": f"{name}.onnxruntime", "kind": "model.onnxruntime",
                              "params": {"model": name, "image": image, "batch": 1}})
            else:
                cases.append({"id": f"{name}.{fw}", "kind": "model.torch",
                              "params": {"model": name, "framework": fw, "image": image, "batch": 1},
                              **({"timeout": 1800} if fw == "compile" else {})})
        if layers:
            for fw, kind in (("eager", "layers.torch"), ("onnxruntime", "layers.onnxruntime")):
                if fw in frameworks:
                    cases.append({"id": f"{name}.layers.{fw}", "kind": kind, "threads": 1,
                                  "params": {"model": name, "image": image, "runs": 5, "warmup": 2}})
    suite = parse_suite({"name": "models-table", "defaults": {"budget": budget, "min_samples": 5, "timeout": 600,
                                                                "threads": threads}, "cases": cases},
                        "bench/models_table.py")
    _, records = run_suite(suite, Path(results), progress=True)
    return final(records)


def latency_of(records, name, fw, threads):
    for r in records:
        if not r.kind.startswith("model.") or r.kind == "model.footprint":
            continue
        rfw = "onnxruntime" if r.kind == "model.onnxruntime" else r.params.get("framework")
        if r.params.get("model") == name and rfw == fw and r.threads == threads and r.measured:
            return r.timing.median
    return None


def profiles_of(records) -> dict:
    """{model: {framework: LayerTable}} (framework 'eager' for torch)."""
    out: dict = {}
    for table in layer_tables(records):
        fw = "eager" if table.framework == "torch" else table.framework
        out.setdefault(table.model, {})[fw] = table
    return out


def why(a: str, b: str, metrics: dict, profiles: dict, fw: str) -> str:
    """Why model a (fewer FLOPs) is not proportionally faster than b, from their layer groups."""
    pa, pb = (profiles.get(a) or {}).get(fw), (profiles.get(b) or {}).get(fw)
    ma, mb = metrics[a], metrics[b]
    parts = [f"{a} has {ma['flops'] / mb['flops']:.2f}x the FLOPs of {b} but {ma['bytes'] / mb['bytes']:.2f}x "
             f"its memory access (intensity {ma['intensity']:.3g} vs {mb['intensity']:.3g} FLOP/B)"]
    if pa is not None and pb is not None:
        ga, gb = groups_table(pa), groups_table(pb)
        top = sorted(ga.items(), key=lambda kv: -kv[1]["time_s"])[:3]
        parts.append(f"in {fw} at one thread {a}'s time goes to " + ", ".join(
            f"{g} {v['share']:.0%} at {v['gflops']:.3g} GFLOP/s ({v['bound']})" for g, v in top))
        dense_b = gb.get("dense conv") or gb.get("linear/matmul")
        if dense_b:
            parts.append(f"{b}'s dense layers run at {dense_b['gflops']:.3g} GFLOP/s")
        parts.append(f"layers: {len(pa.layers)} vs {len(pb.layers)}, "
                     f"per-layer mean {pa.sum_layers_s / len(pa.layers) * 1e6:.3g} us vs "
                     f"{pb.sum_layers_s / len(pb.layers) * 1e6:.3g} us (fragmented networks pay a fixed cost per op)")
    return "; ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--frameworks", nargs="+", default=["eager", "onnxruntime"],
                        choices=["eager", "compile", "onnxruntime"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--budget", type=float, default=0.5, help="seconds of sampling per case")
    parser.add_argument("--image", type=int, default=224)
    parser.add_argument("--no-layers", action="store_true")
    parser.add_argument("--no-footprint", action="store_true")
    parser.add_argument("--results", default="results")
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    models = [m for m in args.models if not (m == "vit_tiny" and args.image != 224)]

    metrics = metrics_for(models, args.image)
    records = measure_models(models, args.frameworks, args.threads, args.image, args.budget, args.results,
                             layers=not args.no_layers, footprint=not args.no_footprint)
    for r in records:
        if r.kind == "model.footprint" and r.measured:
            f = r.info["footprint"]
            metrics[r.params["model"]].update(footprint_bytes=f["footprint_bytes"], weights_bytes=f["weights_bytes"])
    profiles = profiles_of(records)

    heads = ["model", "GFLOP", "params M", "access MB", "footprint MB", "act. peak MB"]
    cols = [(fw, t) for fw in args.frameworks for t in args.threads]
    heads += [f"{fw} t={t}" for fw, t in cols] + ["GFLOP/s (best)"]
    rows = []
    for name in models:
        m = metrics[name]
        lat = [latency_of(records, name, fw, t) for fw, t in cols]
        best = min((v for v in lat if v), default=None)
        rows.append([name, f"{m['flops'] / 1e9:.3f}", f"{m['params'] / 1e6:.2f}", f"{m['bytes'] / 1e6:.1f}",
                     f"{m['footprint_bytes'] / 1e6:.1f}" if m["footprint_bytes"] else "",
                     f"{m['activation_peak_bytes'] / 1e6:.2f}",
                     *[f"{v * 1e3:.3g} ms" if v else "failed" for v in lat],
                     f"{m['flops'] / best / 1e9:.3g}" if best else ""])
    print(f"\nbatch 1, input {args.image}x{args.image}; latency = median per forward pass")
    print(format_table(heads, rows))

    if profiles:
        print("\nlayer groups at one thread (each layer placed against the run's measured ceilings)")
        for name in models:
            for fw, prof in profiles.get(name, {}).items():
                g = groups_table(prof)
                cells = [f"{k} {v['share']:.0%} {v['gflops']:.3g}GF/s" for k, v in
                         sorted(g.items(), key=lambda kv: -kv[1]["time_s"]) if v["share"] >= 0.01]
                print(f"  {name:<20} {fw:<12} sum {prof.sum_layers_s * 1e3:.3g} ms / whole {prof.whole_s * 1e3:.3g} ms: "
                      + ", ".join(cells))

    print("\nwhich lower-FLOPs model is not faster here, and why")
    found = False
    for fw, t in cols:
        for a in models:
            for b in models:
                la, lb = latency_of(records, a, fw, t), latency_of(records, b, fw, t)
                fa, fb = metrics[a]["flops"], metrics[b]["flops"]
                if not la or not lb or fa >= fb:
                    continue
                # Not faster, or faster by less than half what the FLOPs ratio promises.
                if la >= lb or (lb / la) < 0.5 * (fb / fa):
                    found = True
                    verdict = "not faster" if la >= lb else f"only {lb / la:.2g}x faster for {fb / fa:.2g}x fewer FLOPs"
                    print(f"- {fw} t={t}: {a} ({la * 1e3:.3g} ms) vs {b} ({lb * 1e3:.3g} ms): {verdict}. "
                          + why(a, b, metrics, profiles, fw if fw != "compile" else "eager"))
    if not found:
        print("- none: here every model with fewer FLOPs was faster by at least half the FLOPs ratio")
    if args.json:
        data = {"metrics": metrics, "latency": {f"{n}|{fw}|{t}": latency_of(records, n, fw, t)
                                                for n in models for fw, t in cols},
                "layers": {n: {fw: {"sum_layers_s": p.sum_layers_s, "whole_s": p.whole_s, "overhead": p.overhead,
                                    "groups": groups_table(p)} for fw, p in profs.items()}
                           for n, profs in profiles.items()}}
        Path(args.json).write_text(json.dumps(data, indent=2, default=str))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
