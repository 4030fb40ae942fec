"""What `harness model` prints: the four size metrics, latency and throughput per framework,
and the per-layer tables."""
from __future__ import annotations

from harness.analysis.layers import LayerTable
from harness.core.records import Record, final
from harness.cost.model import UNKNOWN_GROUPS, ModelCost
from harness.presentation.console import noisy_cv, roof_cell
from harness.core.text import cut, finite, fmt_pct, fmt_si, fmt_time, format_table

FRAMEWORK_ORDER = ("eager", "compile", "onnxruntime")


def _si(value, unit: str) -> str:
    return fmt_si(value, unit, digits=4) or "n/a"


def format_metrics(cost: ModelCost, footprint: dict | None, title: str, footprint_note: str = "") -> str:
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
    if cost.params_by_op:  # an ONNX graph: weights of any dtype, by the op type that reads them
        lines.append(f"  parameters        {cost.params:,} ({_si(cost.params, '')}; by op type: "
                     f"{params_breakdown(cost.params_by_op)})")
    else:
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
        how = "torch eager" if cost.torch_flop_counter is not None else "in graph order, from shape inference"
        foot.append(f"activation high-water {_si(cost.activation_peak_bytes, 'B')} (live tensors, {how})")
    lines.append("  memory footprint  " + ("; ".join(foot) if foot else footprint_note or "not measured"))
    for group in UNKNOWN_GROUPS:
        ops = [u for u in cost.unknown if u.get("group", "no formula") == group]
        if ops:  # their share of the time, where measured, is in the per-layer table's footer
            lines.append(f"  not counted, {group}: " + ", ".join(f"{u['op']} x{u['count']}" for u in ops))
    if not cost.unknown:
        lines.append("  every op has a cost formula")
    for note in cost.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def params_breakdown(by_op: dict, top: int = 4) -> str:
    """'Conv 11.2 M, Gemm 513 k, other 9.6 k': the largest op types first, the rest as other."""
    ranked = sorted(by_op.items(), key=lambda kv: -kv[1])
    parts = [f"{op} {fmt_si(n, '')}" for op, n in ranked[:top]]
    rest = sum(n for _, n in ranked[top:])
    if rest:
        parts.append(f"other {fmt_si(rest, '')}")
    return ", ".join(parts) or "none"


def framework_of(record: Record) -> str:
    if record.kind.endswith("onnxruntime"):
        return "onnxruntime"
    return record.params.get("framework", "eager")


TIMING_HEADERS = ["framework", "threads", "batch", "status", "latency", "CV", "images/s", "FLOP/s", "one-off setup",
                  "first run", "of roofline", "note"]
TIMING_NUMERIC = {1, 2, 4, 5, 6, 7}


def timing_rows(records: list[Record]) -> list[list]:
    """Latency and throughput per framework, threads and batch; one-off costs apart."""
    rows = []
    order = {fw: i for i, fw in enumerate(FRAMEWORK_ORDER)}
    timed = [r for r in final(records) if r.kind.startswith("model.") and r.kind != "model.footprint"]
    for r in sorted(timed, key=lambda r: (order.get(framework_of(r), 9), r.threads, r.params.get("batch", 0))):
        batch = r.info.get("batch", r.params.get("batch")) if "batch" in r.info or r.kind != "model.onnxruntime" \
            else "-"  # a model without a batch dimension: latency only
        if not r.measured:
            rows.append([framework_of(r), r.threads, batch, r.status, "", "", "", "", "", "", "", cut(r.reason, 90)])
            continue
        t, m, info = r.timing, r.metrics, r.info
        setup = info.get("compile_s") or info.get("session_create_s")
        setup_label = ("compile " if "compile_s" in info else "session ") + fmt_time(setup) if setup else ""
        rows.append([framework_of(r), r.threads, batch, r.status, fmt_time(t.median), noisy_cv(r),
                     f"{m['throughput_per_s']:.4g}" if finite(m.get("throughput_per_s")) else "-",
                     fmt_si(m.get("flops_per_s"), "FLOP/s"), setup_label,
                     fmt_time(t.first_call_s), roof_cell(r), f"{len(r.warnings)} warnings" if r.warnings else ""])
    return rows


def format_timings(records: list[Record]) -> str:
    return format_table(TIMING_HEADERS, timing_rows(records), align_right=TIMING_NUMERIC)


def source_cell(r: dict) -> str:
    """The original graph's nodes a layer came from, where that is not the layer itself."""
    nodes = list(r.get("source_nodes") or [])
    if r.get("source_nodes") is None or nodes == [r["name"]]:
        return ""
    if not nodes:
        return "(inserted)"
    return ", ".join(nodes) if len(nodes) <= 2 else f"{nodes[0]} +{len(nodes) - 1} more"


def format_uncosted(table: LayerTable) -> str:
    """'layers without a cost: no formula: LRN x2 (17% of the time); shape not inferred: ...'."""
    groups = table.uncosted_groups()
    if not groups:
        return "every layer has a cost"
    return "layers without a cost (not counted): " + "; ".join(
        f"{g['group']}: " + ", ".join(f"{op} x{n}" for op, n in g["ops"].items())
        + f" ({fmt_pct(g['time_share'], 2)} of the layer time)" for g in groups)


LAYER_HEADERS = ["layer", "original nodes", "op", "time", "share", "CV", "FLOPs", "bytes", "FLOP/B", "attained",
                 "bound", "level", "of roof"]
LAYER_NUMERIC = {3, 4, 5, 6, 7, 8, 9, 12}
OP_HEADERS = ["op", "layers", "time", "share", "FLOPs", "bytes", "attained"]
OP_NUMERIC = {1, 2, 3, 4, 5, 6}


def layer_heading(table: LayerTable) -> str:
    case = table.case
    return (f"{table.model} in {table.framework}"
            + (f" (opt_level {case.params['opt_level']})" if case.params.get("opt_level") else "")
            + f", batch {case.params.get('batch', 1)}, {case.threads} thread{'s' if case.threads != 1 else ''}: "
            f"{len(table.layers)} layers, median of {table.runs} profiled runs")


def layer_rows(table: LayerTable, top: int = 10) -> list[list]:
    """The `top` layers by time, with the original nodes each came from."""
    rows = []
    for r in table.layers.sort_values("time_s", ascending=False).head(top).to_dict("records"):
        rows.append([cut(r["name"], 48), cut(source_cell(r), 40), r["op"], fmt_time(r["time_s"]),
                     fmt_pct(r["time_share"], 2), fmt_pct(r["cv"], 2), fmt_si(r["flops"], "FLOP"),
                     fmt_si(r["bytes"], "B"),
                     "" if r["intensity"] != r["intensity"] or r["intensity"] is None else f"{r['intensity']:.3g}",
                     fmt_si(r["attained_flops_per_s"], "FLOP/s"), r["bound"] or "", r["level"] or "",
                     fmt_pct(r["efficiency"], 2)])
    return rows


def op_rows(table: LayerTable, top: int = 8) -> list[list]:
    """Time, FLOPs and bytes per op type."""
    return [[op, int(r["layers"]), fmt_time(r["time_s"]), fmt_pct(r["time_share"], 2), fmt_si(r["flops"], "FLOP"),
             fmt_si(r["bytes"], "B"), fmt_si(r["attained_flops_per_s"], "FLOP/s")]
            for op, r in table.by_op().head(top).iterrows()]


def layer_summary_lines(table: LayerTable) -> list[str]:
    """The sum of layers against the whole model, the bottlenecks, the uncosted layers, the notes."""
    whole, total = table.whole_s, table.sum_layers_s
    lines = [f"sum of layers {fmt_time(total)} vs whole model {fmt_time(whole)} ({fmt_pct(total / whole, 2)}); "
             f"with the profiler on the whole model took {fmt_time(table.whole_profiled_s)} "
             f"(profiling overhead {table.overhead:+.0%})"]
    lines.append("bottlenecks: " + "; ".join(
        f"{r['name']} ({r['op']}) {fmt_pct(r['time_share'], 2)} of the time, {r['bound'] or 'no cost'}"
        + (f", {fmt_pct(r['efficiency'], 2)} of its roof" if r["efficiency"] == r["efficiency"] and r["efficiency"]
           is not None else "")
        for r in table.bottlenecks(3).to_dict("records")))
    lines.append(format_uncosted(table))
    return lines + [f"note: {n}" for n in table.notes]


def format_layer_table(table: LayerTable, top: int = 10) -> str:
    """The per-layer text: top layers by time (with the original nodes each came from), time
    per op type, sum of layers against the whole model, bottlenecks, the uncosted layers'
    share of the time."""
    lines = [layer_heading(table), "", format_table(LAYER_HEADERS, layer_rows(table, top), align_right=LAYER_NUMERIC),
             "", format_table(OP_HEADERS, op_rows(table), align_right=OP_NUMERIC), ""]
    return "\n".join(lines + layer_summary_lines(table))
