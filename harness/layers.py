"""Layer-by-layer profiling (the first source document: "measure, then profile layer by
layer"): time per layer, joined with its cost and placed on the roofline, the sum of the
layers set beside the whole-model time, and the bottleneck layers.

PyTorch: the same TorchFunctionMode walk that harness.model_cost counts with, with
time.perf_counter around every torch-level call (F.conv2d, F.batch_norm, the residual
add, torch.cat, the attention matmuls...), so layers and costs join one to one by name.
Forward hooks around leaf modules would miss the functional ops; torch.profiler was not
chosen because its events are aten ops, several per module, that must be mapped back.
CPU ops run synchronously, so the clock around a call is the op's time. What it costs:
a Python call and two clock reads per op; the whole-model time is measured with and
without the walk and the difference reported (`overhead`), typically 10-50 us per op.

ONNX Runtime: its built-in profiler (SessionOptions.enable_profiling); the JSON trace
gives, per node and run, the kernel's duration. Runs are told apart by their model_run
events; the warm-up runs are dropped and each node's median over the remaining runs kept.
A node keeps its graph name unless an optimisation fused or re-laid it (level extended or
all: FusedConv, NCHWc nodes, MatMul+Add -> Gemm); such a node is costed from the op type
and shapes the trace records (cost_source "trace"), otherwise from the graph node.

Roofline: measured ceilings from results/<device>/profile.json (written by the probes)
at the profiled thread count where measured there, else the best over thread counts;
without a profile, the fingerprint's theoretical peak and no bandwidth (the memory side
of the roof is then unknown, and each label says so). Every ceiling carries its source.
"""
from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.cost import CostError
from harness.roofline import Roofline, roofline_bound

TOP = 10


# ============================================================================ ceilings

def ceilings(threads: int | None = None, results: str | Path = "results", dtype: str = "float32",
             bandwidth_bytes_per_s: float | None = None, bandwidth_source: str = "") -> dict:
    """The roof to place layers under: {source, label, peak_flops_per_s, bandwidth_bytes_per_s, ...}.

    From the device profile when it has a compute ceiling for `dtype`; else the fingerprint's
    theoretical peak. `bandwidth_bytes_per_s` overrides the memory side (labelled by
    `bandwidth_source`), for a caller that measured one itself."""
    from harness.fingerprint import device_slug, fingerprint

    fp = fingerprint(with_gpu=False)
    path = Path(results) / device_slug(fp) / "profile.json"
    profile = None
    if path.exists():
        try:
            profile = json.loads(path.read_text())
        except ValueError:
            profile = None
    out = None
    if profile:
        for use_threads in (threads, None):
            roof = Roofline.from_profile(profile, threads=use_threads)
            try:
                peak = roof.peak(dtype)
            except KeyError:
                continue
            try:
                bw = roof.bandwidth("DRAM")
            except KeyError:
                bw = None
            which = f"{use_threads} threads" if use_threads else "best over thread counts"
            out = {"source": "measured", "profile": str(path), "peak_flops_per_s": peak.value,
                   "peak_label": f"{peak.label} ({which})",
                   "bandwidth_bytes_per_s": bw.value if bw else None,
                   "bandwidth_label": f"{bw.label} ({which})" if bw else "no DRAM bandwidth in the profile"}
            break
    if out is None:
        peak = (fp.get("theoretical_peak") or {}).get(dtype) or {}
        out = {"source": "theoretical", "profile": None, "peak_flops_per_s": peak.get("flops_per_s"),
               "peak_label": (f"theoretical {dtype} {peak.get('isa')} {peak['flops_per_s'] / 1e9:.4g} GFLOP/s "
                              f"(all {peak.get('cores')} cores, fingerprint)") if peak.get("flops_per_s") else
                             "no peak known",
               "bandwidth_bytes_per_s": None,
               "bandwidth_label": "no measured bandwidth (run the probes for the memory side of the roof)"}
        if out["peak_flops_per_s"] and threads and peak.get("cores"):
            # The datasheet peak is for every core; a run on fewer threads can reach its share.
            share = min(threads, peak["cores"]) / peak["cores"]
            out["peak_flops_per_s"] *= share
            out["peak_label"] += f", x {share:g} for {threads} thread(s)"
    if bandwidth_bytes_per_s:
        out["bandwidth_bytes_per_s"] = float(bandwidth_bytes_per_s)
        out["bandwidth_label"] = f"DRAM {bandwidth_bytes_per_s / 1e9:.3g} GB/s ({bandwidth_source or 'given'})"
    out["label"] = f"{out['peak_label']}; {out['bandwidth_label']}"
    out["dtype"] = dtype
    out["threads"] = threads
    return out


def place(flops: float, nbytes: float, seconds: float, ceil: dict) -> dict:
    """One (FLOPs, bytes, measured time) point under the roof: bound, theoretical time, efficiency."""
    peak, bw = ceil.get("peak_flops_per_s"), ceil.get("bandwidth_bytes_per_s")
    out = {"source": ceil.get("source"), "peak_flops_per_s": peak, "bandwidth_bytes_per_s": bw,
           "intensity": flops / nbytes if nbytes else None, "ridge_intensity": None,
           "attained_flops_per_s": flops / seconds if seconds else None,
           "attained_bytes_per_s": nbytes / seconds if seconds else None,
           "bound": None, "theoretical_time_s": None, "efficiency": None}
    if not flops and not nbytes:
        out["bound"] = "none (moves nothing)"
        return out
    if peak and bw:
        b = roofline_bound(flops, nbytes, peak, bw)
        out.update(bound=b.bound, theoretical_time_s=b.theoretical_time_s, ridge_intensity=b.ridge_intensity)
    elif peak and flops:
        out.update(bound="compute (bandwidth unknown)", theoretical_time_s=flops / peak)
    else:
        out["bound"] = "memory (bandwidth unknown)" if not flops else "unknown"
    if out["theoretical_time_s"] and seconds:
        out["efficiency"] = out["theoretical_time_s"] / seconds
    return out


def quick_dram_bandwidth(mbytes: float = 200.0, repeats: int = 5) -> float:
    """A rough DRAM bandwidth, bytes/s: the best of a few numpy copies of `mbytes` MB
    (read + write counted). For a bench that has no device profile; never a probe's figure."""
    import numpy as np

    n = int(mbytes * 1e6 / 8)
    a = np.ones(n)
    b = np.empty_like(a)
    b[:] = 0.0
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best


# ============================================================================ the profile

COLUMNS = ["name", "op", "category", "scope", "output_shape", "time_s", "time_share", "flops", "bytes",
           "intensity", "params", "attained_flops_per_s", "bound", "theoretical_time_s", "efficiency",
           "cost_source", "flops_main", "flops_bias", "flops_norm", "flops_act", "flops_residual"]


@dataclass
class LayerProfile:
    """Per-layer times of one model in one framework, joined with cost and roofline.

    whole_s          median whole-model time with no profiler
    whole_profiled_s median whole-model time with the profiler on
    sum_layers_s     sum of the per-layer medians
    overhead         whole_profiled_s / whole_s - 1: what profiling itself cost
    """

    framework: str
    model: str
    threads: int
    batch: int
    layers: object  # pandas DataFrame, COLUMNS
    whole_s: float
    whole_profiled_s: float
    runs: int
    warmup: int
    ceilings: dict
    profiler: str
    opt_level: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def sum_layers_s(self) -> float:
        return float(self.layers["time_s"].sum())

    @property
    def overhead(self) -> float:
        return self.whole_profiled_s / self.whole_s - 1 if self.whole_s else math.nan

    def bottlenecks(self, k: int = 5):
        """The k slowest layers, with bound and efficiency: where the time goes and why."""
        cols = ["name", "op", "time_s", "time_share", "flops", "bytes", "intensity", "attained_flops_per_s",
                "bound", "efficiency"]
        return self.layers.sort_values("time_s", ascending=False).head(k)[cols].reset_index(drop=True)

    def by_op(self):
        """Time, FLOPs and bytes per op type: which kinds of layer the time goes to."""
        g = self.layers.groupby("op", dropna=False).agg(
            layers=("name", "count"), time_s=("time_s", "sum"), flops=("flops", "sum"), bytes=("bytes", "sum"))
        g["time_share"] = g["time_s"] / self.sum_layers_s if self.sum_layers_s else math.nan
        g["attained_flops_per_s"] = g["flops"] / g["time_s"]
        return g.sort_values("time_s", ascending=False)

    def summary(self) -> dict:
        return {"framework": self.framework, "model": self.model, "threads": self.threads, "batch": self.batch,
                "opt_level": self.opt_level, "layers": int(len(self.layers)), "whole_s": self.whole_s,
                "whole_profiled_s": self.whole_profiled_s, "sum_layers_s": self.sum_layers_s,
                "sum_over_whole": self.sum_layers_s / self.whole_s if self.whole_s else None,
                "overhead": self.overhead, "runs": self.runs, "warmup": self.warmup, "profiler": self.profiler,
                "ceilings": self.ceilings["label"], "notes": self.notes}


def _rows(named_times: list[tuple[str, str, float]], costs: dict, extra: dict, ceil: dict, cost_sources: dict):
    """DataFrame rows: per-layer time joined with cost and placed under the roof."""
    import pandas as pd

    total = sum(t for _, _, t in named_times) or math.nan
    rows = []
    for name, op, t in named_times:
        layer = costs.get(name)
        row = {"name": name, "op": op, "time_s": t, "time_share": t / total, "cost_source": cost_sources.get(name)}
        row.update(extra.get(name, {}))
        if layer is not None:
            c = layer.cost
            row.update(op=c.op, category=layer.category, scope=layer.scope or row.get("scope", ""),
                       output_shape=tuple(c.output_shape), flops=c.flops, bytes=c.bytes, intensity=c.intensity,
                       params=c.params, flops_main=c.flops_main, flops_bias=c.flops_bias, flops_norm=c.flops_norm,
                       flops_act=c.flops_act, flops_residual=c.flops_residual)
            p = place(c.flops, c.bytes, t, ceil)
            row.update(attained_flops_per_s=p["attained_flops_per_s"], bound=p["bound"],
                       theoretical_time_s=p["theoretical_time_s"], efficiency=p["efficiency"])
        else:
            row["bound"] = "no cost"
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def profile_torch(model, example, *, threads: int | None = None, runs: int = 10, warmup: int = 3,
                  name: str = "", ceil: dict | None = None) -> LayerProfile:
    """Per-layer times of a torch model on `example` (eager, inference mode)."""
    import torch

    from harness.model_cost import _Walk, model_cost

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        cost = model_cost(model, example=example, flop_counter=False, activations=False, source=name)
        costs = {layer.name: layer for layer in cost.layers}
        with torch.inference_mode():
            for _ in range(warmup):
                model(example)
            plain = []
            for _ in range(runs):
                t0 = time.perf_counter()
                model(example)
                plain.append(time.perf_counter() - t0)
            per_run, names, walled = [], None, []
            for i in range(warmup + runs):
                walk = _Walk(model, cost=False, timer=True)
                t0 = time.perf_counter()
                with walk:
                    model(example)
                wall = time.perf_counter() - t0
                if names is None:
                    names = walk.ops
                elif walk.ops != names:
                    raise RuntimeError("the model ran different ops on different runs; layers cannot be matched")
                if i >= warmup:
                    per_run.append(walk.times)
                    walled.append(wall)
    finally:
        torch.set_num_threads(before)
    medians = [statistics.median(run[j] for run in per_run) for j in range(len(names))]
    ceil = ceil or ceilings(threads or before)
    sources = {n: "harness.model_cost (torch walk)" for n in costs}
    frame = _rows([(n, op, t) for (n, op), t in zip(names, medians)], costs, {}, ceil, sources)
    prof = LayerProfile("torch", name or type(model).__name__, threads or before, int(example.shape[0]), frame,
                        statistics.median(plain), statistics.median(walled), runs, warmup, ceil,
                        "TorchFunctionMode + time.perf_counter per torch call")
    missing = sorted({op for n, op in names if n not in costs})
    if missing:
        prof.notes.append(f"ops without a cost formula: {', '.join(missing)} (listed, not counted as zero)")
    return prof


def _ort_options(threads: int, opt_level: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    return so


TRACE_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "int8": "int8", "uint8": "uint8",
                "int32": "int32", "int64": "int64", "bool": "bool"}


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
        name = e["name"][: -len("_kernel_time")]
        args = e.get("args") or {}
        node = nodes.setdefault(name, {"op": args.get("op_name", ""), "provider": args.get("provider", ""),
                                       "durations": [0.0] * len(kept),
                                       "input_shapes": args.get("input_type_shape", []),
                                       "output_shapes": args.get("output_type_shape", [])})
        node["durations"][index] += e["dur"] * 1e-6
    return nodes, [r["dur"] * 1e-6 for r in kept]


def _shape_list(entries) -> list[tuple[tuple, str]]:
    out = []
    for entry in entries or []:
        for type_name, dims in entry.items():
            out.append((tuple(dims), TRACE_DTYPES.get(type_name, type_name)))
    return out


def trace_cost(op: str, input_shapes, output_shapes, attrs: dict | None = None):
    """(category, OpCost) for a profiled ONNX Runtime node from the op type and the shapes its
    trace records (`input_type_shape` / `output_type_shape`), or None.

    Contractions need no attributes: conv MACs are N x OC x OH x OW x (IC/G) x KH x KW with
    IC/G from the weight's shape, a Gemm/MatMul's from A and Y (ONNX Runtime prepacks
    constant weights, so the trace may omit them). A fused activation is not in the trace
    and is not counted."""
    from harness import cost as cm
    from harness.model_cost import onnx_node_cost

    ins, outs = _shape_list(input_shapes), _shape_list(output_shapes)
    if not ins or not outs:
        return None
    (x, dtype), (y, _) = ins[0], outs[0]
    if dtype not in cm.DTYPE_BYTES:
        return None
    if op in ("Conv", "FusedConv", "NchwcConv") and len(ins) >= 2 and len(ins[1][0]) == 4 and len(x) == 4:
        w = ins[1][0]
        bias = len(ins) > 2 and len(ins[2][0]) == 1
        macs = y[0] * y[1] * y[2] * y[3] * w[1] * w[2] * w[3]
        cost = cm._contraction("conv2d", y, dtype, macs=macs, input_elems=math.prod(x),
                               weight_elems=math.prod(w), channels=w[0], bias=bias, batchnorm=False,
                               bn_folded=False, activation=None, residual=False)
        return "conv", cost
    if op in ("Gemm", "MatMul", "FusedMatMul", "FusedGemm"):
        k, n = x[-1], y[-1]
        others = [s for s, _ in ins[1:]]
        full = [s for s in others if len(s) >= 2]
        if full and op != "Gemm":
            b = full[0]
            if b[-2] != k:
                b = (*b[:-2], b[-1], b[-2])
            a = x
            if a[-1] != b[-2]:
                a = (*a[:-2], a[-1], a[-2])
            return "matmul", cm.matmul_cost(a, b, dtype=dtype)
        if op == "Gemm" and full:
            b = full[0]
            k = x[0] if (attrs or {}).get("transA") else x[1]
        rows = math.prod(y[:-1])
        bias = any(len(s) == 1 and s[0] == n for s in others)
        return "linear", cm.linear_cost((rows, k), n, bias=bias, dtype=dtype)
    names_in = [f"in{i}" for i in range(len(ins))]
    names_out = [f"out{i}" for i in range(len(outs))]
    shapes = {**{nm: s for nm, (s, _) in zip(names_in, ins)}, **{nm: s for nm, (s, _) in zip(names_out, outs)}}
    dtypes = {**{nm: d for nm, (_, d) in zip(names_in, ins)}, **{nm: d for nm, (_, d) in zip(names_out, outs)}}
    if op in ("ReorderInput", "ReorderOutput"):
        op = "Identity"  # NCHW <-> NCHWc layout change: read once, write once
    try:
        return onnx_node_cost(op, names_in, names_out, attrs or {}, shapes, dtypes, set())
    except cm.CostError:
        return None


FUSABLE_ACTIVATIONS = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "Tanh", "HardSwish"}


def _base_name(name: str) -> str:
    """The graph name a renamed node grew from: 'relu_3_nchwc' -> 'relu_3',
    'node_MatMul_11/MatMulAddFusion' -> 'node_MatMul_11'."""
    name = name.removesuffix("_nchwc").rstrip("/")
    head, _, last = name.rpartition("/")
    return head if head and last.endswith("Fusion") else name


def _fused_conv_cost(tensor: str, by_output: dict, graph_layers: list):
    """(category, OpCost) of the conv that ONNX Runtime fused with the activations and the
    residual add which end in `tensor`, from their graph costs; None if `tensor` is not
    written by such a chain. Bytes: the conv's, plus the residual input read once."""
    from harness.model_cost import _with

    by_node = {layer.name: layer for layer in graph_layers}
    node, act_flops, residual_bytes, residual_flops = by_output.get(tensor), 0, 0, 0
    for _ in range(8):  # conv -> add -> relu chains are 2-3 long
        if node is None or node.op_type == "Conv":
            break
        layer = by_node.get(node.name)
        if layer is None:
            return None
        if node.op_type in FUSABLE_ACTIVATIONS:
            act_flops += layer.cost.flops
            node = by_output.get(node.input[0])
        elif node.op_type in ("Add", "Sum") and len(node.input) == 2:
            producers = [by_output.get(i) for i in node.input]
            main = next((i for i, p in zip(node.input, producers)
                         if p is not None and (p.op_type == "Conv" or p.op_type in FUSABLE_ACTIVATIONS)), None)
            if main is None:
                return None
            residual_flops += layer.cost.flops
            residual_bytes += layer.cost.bytes_read // 2
            node = by_output.get(main)
        else:
            return None
    if node is None or node.op_type != "Conv" or node.name not in by_node:
        return None
    conv = by_node[node.name].cost
    return "conv", _with(conv, flops_act=conv.flops_act + act_flops,
                         flops_residual=conv.flops_residual + residual_flops,
                         bytes_read=conv.bytes_read + residual_bytes)


def profile_onnxruntime(path, shapes: dict | None = None, *, threads: int = 1, opt_level: str = "all",
                        runs: int = 10, warmup: int = 3, name: str = "", ceil: dict | None = None,
                        feed: dict | None = None) -> LayerProfile:
    """Per-node times of an ONNX model in ONNX Runtime (CPU) from its profiler."""
    import numpy as np
    import onnxruntime as ort

    from harness.model_cost import LayerCost, _attrs, load_onnx, onnx_model_cost, resolve_onnx_shapes

    graph = load_onnx(path)
    shapes = resolve_onnx_shapes(graph, shapes, str(path))
    cost = onnx_model_cost(graph, shapes)
    by_name = {n.name: n for n in graph.graph.node}
    by_output = {o: n for n in graph.graph.node for o in n.output}
    del graph
    costs = {layer.name: layer for layer in cost.layers}
    if feed is None:
        rng = np.random.default_rng(0)
        feed = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}

    plain_session = ort.InferenceSession(str(path), _ort_options(threads, opt_level),
                                         providers=["CPUExecutionProvider"])
    for _ in range(warmup):
        plain_session.run(None, feed)
    plain = []
    for _ in range(runs):
        t0 = time.perf_counter()
        plain_session.run(None, feed)
        plain.append(time.perf_counter() - t0)
    del plain_session

    with tempfile.TemporaryDirectory(prefix="harness-ort-profile-") as tmp:
        so = _ort_options(threads, opt_level)
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(warmup + runs):
            session.run(None, feed)
        trace = session.end_profiling()
        events = json.loads(Path(trace).read_text())
    nodes, whole = parse_ort_profile(events, warmup)

    named, sources, extra, layer_costs = [], {}, {}, dict(costs)
    for node_name, node in nodes.items():
        t = statistics.median(node["durations"])
        named.append((node_name, node["op"], t))
        extra[node_name] = {"scope": "", "output_shape": tuple(_shape_list(node["output_shapes"])[0][0])
                            if node["output_shapes"] else None}
        if node_name in costs:
            sources[node_name] = "graph node"
            continue
        # Renamed by an optimisation. An NCHWc node is named after the tensor it writes and
        # pads channels to the vector width in the trace's shapes, so it is costed from the
        # graph: the conv it grew from plus the activation/residual add fused into it, or the
        # graph node of the same op that wrote the tensor. Other fused nodes keep logical
        # shapes in the trace and are costed from them.
        base = _base_name(node_name)
        original = by_name.get(base) or by_output.get(base)
        found = None
        if node_name.endswith("_nchwc"):
            found = _fused_conv_cost(base, by_output, cost.layers) if node["op"] == "Conv" else None
            if found is None and original is not None and original.op_type == node["op"]:
                layer = costs.get(original.name)
                found = (layer.category, layer.cost) if layer is not None else None
            source = "graph (fused group)"
        if found is None:
            attrs = _attrs(original) if original is not None and original.op_type == node["op"] else {}
            try:
                found = trace_cost(node["op"], node["input_shapes"], node["output_shapes"], attrs)
            except CostError as exc:  # shapes the cost model rejects: listed as uncosted, with why
                found = None
                node.setdefault("cost_error", str(exc))
            source = "trace shapes"
        if found is not None:
            category, c = found
            layer_costs[node_name] = LayerCost(node_name, c.op, category, c, module=node["op"])
            sources[node_name] = source
    ceil = ceil or ceilings(threads)
    frame = _rows(named, layer_costs, extra, ceil, sources)
    prof = LayerProfile("onnxruntime", name or Path(path).stem, threads, int(next(iter(shapes.values()))[0]), frame,
                        statistics.median(plain), statistics.median(whole), runs, warmup, ceil,
                        "onnxruntime SessionOptions.enable_profiling (kernel time per node)", opt_level=opt_level)
    uncosted = frame[frame["flops"].isna()]
    if len(uncosted):
        prof.notes.append(f"{len(uncosted)} nodes without a cost ({', '.join(sorted(set(uncosted['op'])))}), "
                          f"{uncosted['time_s'].sum() / prof.sum_layers_s:.1%} of the layer time")
    prof.notes.append(f"the graph costs {cost.flops / 1e9:.4g} GFLOP as exported; the profiled nodes "
                      f"{frame['flops'].sum() / 1e9:.4g} GFLOP after ONNX Runtime's {opt_level} optimisations")
    return prof


# ============================================================================ records and text

def layer_records(profile: LayerProfile, case_prefix: str | None = None) -> list[dict]:
    """One record per layer, shaped as the measurement core's (kind layer.torch or
    layer.onnxruntime), for a run store: identity, cost, timing.median, metrics, roofline."""
    kind = "layer.torch" if profile.framework == "torch" else "layer.onnxruntime"
    prefix = case_prefix or f"{profile.model}.layers[{profile.framework},b={profile.batch},t={profile.threads}]"
    records = []
    for i, row in enumerate(profile.layers.to_dict("records")):
        t = float(row["time_s"])
        has_cost = row["flops"] == row["flops"] and row["flops"] is not None  # not NaN
        flops = int(row["flops"]) if has_cost else None
        nbytes = int(row["bytes"]) if has_cost else None
        record = {
            "case_id": f"{prefix}/{row['name']}", "kind": kind, "status": "ok",
            "params": {"model": profile.model, "layer": row["name"], "op": row["op"], "batch": profile.batch,
                       "framework": profile.framework, "opt_level": profile.opt_level, "dtype": "float32"},
            "threads": profile.threads,
            "cost": {"flops": flops, "bytes": nbytes, "intensity": (flops / nbytes) if has_cost and nbytes else None,
                     "bytes_accounting": "inputs + weights + output of the layer, each moved once",
                     "source": row["cost_source"],
                     **({k: int(row[k]) for k in ("flops_main", "flops_bias", "flops_norm", "flops_act",
                                                   "flops_residual", "params")} if has_cost else {})},
            "timing": {"median": t, "n": profile.runs, "warmup_runs": profile.warmup,
                       "method": profile.profiler},
            "metrics": {"flops_per_s": flops / t if has_cost and t else None,
                        "bytes_per_s": nbytes / t if has_cost and t else None},
            "info": {"layer_index": i, "category": row["category"], "scope": row["scope"],
                     "output_shape": list(row["output_shape"]) if isinstance(row["output_shape"], tuple) else None,
                     "time_share": row["time_share"], "whole_model_s": profile.whole_s,
                     "sum_layers_s": profile.sum_layers_s, "profiling_overhead": profile.overhead},
            "warnings": [],
        }
        if has_cost:
            record["roofline"] = {**place(flops, nbytes, t, profile.ceilings), "label": profile.ceilings["label"]}
        records.append(record)
    return records


def _t(s) -> str:
    if s is None or s != s:
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _g(v, scale=1e9, fmt=".3g") -> str:
    return "" if v is None or v != v else format(v / scale, fmt)


def format_profile(profile: LayerProfile, top: int = TOP) -> str:
    """The per-layer text: top layers by time, sum of layers vs whole model, bottlenecks."""
    from harness.cli import format_table

    s = profile.summary()
    head = (f"{profile.model} in {profile.framework}"
            + (f" (opt_level {profile.opt_level})" if profile.opt_level else "")
            + f", batch {profile.batch}, {profile.threads} thread(s): {len(profile.layers)} layers, "
            f"median of {profile.runs} runs after {profile.warmup} warm-up")
    rows = []
    for r in profile.layers.sort_values("time_s", ascending=False).head(top).to_dict("records"):
        rows.append([r["name"][:48], r["op"], _t(r["time_s"]), f"{r['time_share']:.1%}", _g(r["flops"], 1e6),
                     _g(r["bytes"], 1e6), "" if r["intensity"] != r["intensity"] else f"{r['intensity']:.3g}",
                     _g(r["attained_flops_per_s"]), r["bound"] or "",
                     "" if r["efficiency"] is None or r["efficiency"] != r["efficiency"] else f"{r['efficiency']:.1%}"])
    table = format_table(["layer", "op", "time", "share", "MFLOP", "MB", "FLOP/B", "GFLOP/s", "bound", "eff."], rows)
    ops = profile.by_op().head(8)
    op_rows = [[op, int(r["layers"]), _t(r["time_s"]), f"{r['time_share']:.1%}", _g(r["flops"], 1e6),
                _g(r["bytes"], 1e6), _g(r["attained_flops_per_s"])] for op, r in ops.iterrows()]
    lines = [head, f"roof: {profile.ceilings['label']}", "", table, "",
             format_table(["op", "layers", "time", "share", "MFLOP", "MB", "GFLOP/s"], op_rows), "",
             f"sum of layers {_t(s['sum_layers_s'])} vs whole model {_t(s['whole_s'])} "
             f"({s['sum_over_whole']:.0%}); with the profiler on the whole model took {_t(s['whole_profiled_s'])} "
             f"(profiling overhead {s['overhead']:+.0%})"]
    bn = profile.bottlenecks(3)
    lines.append("bottlenecks: " + "; ".join(
        f"{r['name']} ({r['op']}) {r['time_share']:.0%} of the time, {r['bound'] or 'no cost'}"
        + (f", {r['efficiency']:.0%} of its roofline" if r["efficiency"] == r["efficiency"] and r["efficiency"] is not None else "")
        for r in bn.to_dict("records")))
    lines += [f"note: {n}" for n in profile.notes]
    return "\n".join(lines)
