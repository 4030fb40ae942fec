"""The sections a report holds for what its run measured, so that each command's report
answers that command's question:

- convolutions (`harness conv`, conv suites): each config's cost breakdown, one row per
  backend x thread count with the path the backend took, and measured against roofline time;
- models (`harness model`, the models suite): the four size metrics, latency and throughput
  per framework x threads x batch, and per profiled model its layers (bound, efficiency,
  share of the time), time per op type, bottlenecks and the layers without a cost;
- probes (`harness probe`): what this run measured with the health of each measurement, the
  history the ceiling in force was chosen from, and the working-set sweep with its plateaus;
- throttling (`harness throttle`): the table and its heat map.

Each function returns [] for a run without such records. Units are decimal SI.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.analysis import profile as profiles
from harness.analysis.layers import layer_tables
from harness.analysis.snapshot import Snapshot
from harness.analysis.throttle import throttle_cells, throttle_table
from harness.core.records import Record
from harness.core.text import fmt_bytes_binary, fmt_pct, fmt_si, fmt_time, plural
from harness.presentation import plots
from harness.presentation.conv_text import (RESULT_HEADERS, RESULT_NUMERIC, conv_breakdown, conv_title, record_shape,
                                            result_row)
from harness.presentation.document import h2, plot_blocks, table
from harness.presentation.model_text import (LAYER_HEADERS, LAYER_NUMERIC, OP_HEADERS, OP_NUMERIC, TIMING_HEADERS,
                                             TIMING_NUMERIC, layer_heading, layer_rows, layer_summary_lines,
                                             op_rows, params_breakdown, timing_rows)
from harness.presentation.tables import throttle_rows

# Configs shown one by one (breakdown, table, bars); a run with more gets one table of all.
DETAILED_CONVS = 6
TOP_LAYERS = 15


# --------------------------------------------------------------------------- convolutions

def conv_blocks(records: list[Record], folder: Path) -> list:
    convs = [r for r in records if r.kind.startswith("conv") and record_shape(r)]
    if not convs:
        return []
    configs: dict[tuple, list[Record]] = {}
    for r in convs:
        key = (json.dumps(record_shape(r), sort_keys=True), r.params.get("dtype", "float32"))
        configs.setdefault(key, []).append(r)
    blocks = [h2("Convolutions"),
              ("p", f"{plural(len(configs), 'conv config')} on {plural(len({r.params.get('backend') for r in convs}), 'backend')}. "
                    "For each: the cost model's figures (a multiply-add is 2 FLOPs; bytes count every tensor "
                    "moved once), then one row per backend and thread count: median time per call, its "
                    "coefficient of variation (CV; 'noisy' above 10%), attained FLOP/s and bytes/s, the roofline "
                    "time (max(FLOPs / peak, bytes / bandwidth) against this run's ceilings), the share of the "
                    "roof reached, page faults per call, and the path the backend took (torch's conv algorithm, "
                    "ONNX Runtime's kernels).")]
    order = {"torch": 0, "onnxruntime": 1}

    def ordered(recs):
        return sorted(recs, key=lambda r: (r.threads, order.get(r.params.get("backend"), 9)))

    bars = []
    if len(configs) <= DETAILED_CONVS:
        for (shape_json, dtype), recs in configs.items():
            shape = json.loads(shape_json)
            blocks.append(("h3", conv_title(shape, dtype)))
            blocks.append(table(None, conv_breakdown(shape, dtype)))
            blocks.append(table(RESULT_HEADERS, [result_row(r) for r in ordered(recs)], numeric=RESULT_NUMERIC,
                                small={10}))
            bars.append((conv_title(shape, dtype), [_bar(r) for r in recs if r.measured]))
    else:
        rows = []
        for (shape_json, dtype), recs in configs.items():
            title = conv_title(json.loads(shape_json), dtype).removeprefix("conv ")
            rows += [[title] + result_row(r) for r in ordered(recs)]
        blocks.append(table(["conv"] + RESULT_HEADERS, rows, numeric={i + 1 for i in RESULT_NUMERIC}, small={0, 11}))
    written = plots.conv_times_plot(bars, folder / "conv-times")
    if written:
        blocks.append(("p", "Measured median against roofline time, per backend and thread count: the bar is the "
                            "measured time, the black tick the roofline's; the percentage is roofline time / "
                            "measured (100% = on the roof)."))
        blocks += plot_blocks(written, "conv: measured against roofline time per backend and thread count")
    return blocks


def _bar(r: Record) -> dict:
    p = r.roofline
    return {"backend": r.params.get("backend", r.kind), "threads": r.threads, "measured_s": r.median,
            "theory_s": p.theoretical_time_s if p else None}


# --------------------------------------------------------------------------- models

def model_blocks(records: list[Record], top: int = TOP_LAYERS) -> list:
    blocks = _size_metrics(records)
    timed = timing_rows(records)
    if timed:
        if not blocks:
            blocks.append(h2("Models"))
        blocks += [("h3", "Latency and throughput"),
                   ("p", "Per framework, thread count and batch: median latency per forward pass, its CV ('noisy' "
                         "above 10%), throughput (batch / latency, images per second), attained FLOP/s, the one-off "
                         "cost of compiling or creating the session and of the first run (apart from the steady "
                         "state), and the share of the roofline reached."),
                   table(TIMING_HEADERS, timed, numeric=TIMING_NUMERIC, small={11})]
    for t in layer_tables(records):
        if not blocks:
            blocks.append(h2("Models"))
        blocks += [("h3", f"Layers: {layer_heading(t)}"),
                   ("p", f"The {min(top, len(t.layers))} layers taking the most time, each placed on the roofline "
                         "like any op (bound, memory level, share of its roof); 'original nodes' names the nodes of "
                         "the source graph a fused kernel came from."),
                   table(LAYER_HEADERS, layer_rows(t, top), numeric=LAYER_NUMERIC, small={1}),
                   ("p", "Time per op type:"),
                   table(OP_HEADERS, op_rows(t), numeric=OP_NUMERIC),
                   ("list", layer_summary_lines(t))]
    return blocks


def _size_metrics(records: list[Record]) -> list:
    """The four size metrics of each model case, as `harness model` prints them."""
    models = [r for r in records if r.measured and (r.info or {}).get("four_metrics")]
    if not models:
        return []
    foot = next((r.info["footprint"] for r in records if r.kind == "model.footprint" and r.measured
                 and (r.info or {}).get("footprint")), None)
    rows, seen = [], set()
    for r in models:
        m = r.info["four_metrics"]
        key = json.dumps(m, sort_keys=True, default=str)
        if key in seen:  # the same model at other threads: the same metrics
            continue
        seen.add(key)
        rows.append([r.info.get("model") or r.params.get("model") or r.case_id, fmt_si(m.get("flops"), "FLOP"),
                     f"{m.get('params', 0):,}", params_breakdown(m["params_by_op"]) if m.get("params_by_op") else "",
                     fmt_si(m.get("memory_access_bytes"), "B"), f"{m.get('intensity', 0):.3g}",
                     fmt_si(m.get("activation_peak_bytes"), "B")])
    blocks = [h2("Models"), ("h3", "The four size metrics"),
              ("p", "Per forward pass: FLOPs (a multiply-add is 2), parameters (an ONNX file's weights wherever "
                    "they live, by the op type that reads them), memory access (every op's inputs, weights and "
                    "output moved once), intensity in FLOP/byte, and the activation high-water mark."),
              table(["model", "FLOPs", "parameters", "parameters by op type", "memory access", "intensity",
                     "activation high-water"], rows, numeric={1, 2, 4, 5, 6})]
    if foot:
        blocks.append(("p", f"Memory footprint ({foot.get('runtime')}, 1 thread, fresh process): "
                            f"{fmt_si(foot.get('footprint_bytes'), 'B')} peak while running above the runtime's "
                            f"{fmt_si(foot.get('rss_runtime_bytes'), 'B')}; weights "
                            f"{fmt_si(foot.get('weights_bytes'), 'B')}."))
    return blocks


# --------------------------------------------------------------------------- probes

def probe_blocks(records: list[Record], snap: Snapshot, run_id: str, folder: Path) -> list:
    probes = [r for r in records if r.kind in profiles.PROBE_KINDS and r.measured]
    if not probes:
        return []
    blocks = [h2("Probes")]
    measured = [m for m in snap.history if m.get("run_id") == run_id]
    if measured:
        blocks += [("h3", "What this run measured"),
                   ("p", "Each ceiling this run measured: the best repetition (the standard rule for peaks: "
                         "STREAM, ERT and likwid-bench report maxima), the median beside it, and its health: a "
                         "suspect measurement is kept but never becomes a ceiling."),
                   table(["ceiling", "threads", "best", "median", "best / median", "clock", "health"],
                         [_measurement_row(m) for m in sorted(measured, key=_measurement_order)],
                         numeric={1, 2, 3, 4, 5}, small={6})]
    if snap.history:
        blocks += [("h3", "History of the ceilings in force"),
                   ("p", f"The recent measurements of each ceiling on this device, oldest first; * marks the one in "
                         f"force ({snap.rule}). A ceiling that moves between runs is the machine moving: compare "
                         "runs made in the same minutes."),
                   table(["ceiling", "threads", "run", "best", "health", "in force"],
                         _history_rows(snap), numeric={1, 3}, small={2, 4})]
    _, plateaus, points = profiles.measurements_from(records, run_id, cache_capacity=_capacity(snap))
    written = plots.sweep_plot(points, plateaus, _capacity(snap), folder / "sweep")
    if written:
        blocks += [("h3", "Working-set sweep"),
                   ("p", "Bandwidth (best repetition) against the working set, per operation and thread count; the "
                         "flat stretches are the plateaus found (named by the cache they fit in), the dotted lines "
                         "the cache capacities the threads hold."),
                   *plot_blocks(written, "bandwidth against working-set size")]
        rows = [[p["op"], p["threads"], p["level"], fmt_bytes_binary(p["first_bytes"]), fmt_bytes_binary(p["last_bytes"]),
                 p["points"], fmt_si(p["median_gbs"] * 1e9, "B/s")] for p in plateaus]
        blocks.append(table(["op", "threads", "level", "from", "to", "points", "bandwidth"], rows,
                            numeric={1, 5, 6}))
    return blocks


def _measurement_order(m: dict) -> tuple:
    return (m.get("kind") or "", m.get("name") or "", str(m.get("dtype")), m.get("threads") or 0)


def _label(m: dict) -> str:
    what = f"{m['dtype']} {m['name']}" if m.get("dtype") else m.get("name", "")
    return f"{m.get('kind')}: {what}" + ("" if m.get("device", "cpu") == "cpu" else f" ({m['device']})")


def _value(m: dict, key: str = "value") -> str:
    unit = {"compute": "FLOP/s", "bandwidth": "B/s", "stream": "B/s"}.get(m.get("kind"))
    value = m.get(key)
    if unit:
        return fmt_si(value, unit)
    return f"{value:.3g} GHz" if isinstance(value, (int, float)) else ""


def _measurement_row(m: dict) -> list:
    spread = m["value"] / m["median"] if m.get("median") else None
    return [_label(m), m.get("threads") or "", _value(m), _value(m, "median"),
            f"{spread:.3f}" if spread else "", f"{m['clock_ghz']:.3g} GHz" if m.get("clock_ghz") else "",
            "; ".join(m.get("health") or []) or "healthy"]


def _history_rows(snap: Snapshot) -> list:
    in_force = {(c.kind, c.name, c.dtype, c.threads, c.device): (c.run_id, c.value) for c in snap.ceilings}
    rows = []
    for m in sorted(snap.history, key=lambda m: (_measurement_order(m), m.get("measured_at") or 0)):
        key = (m.get("kind"), m.get("name"), m.get("dtype"), m.get("threads"), m.get("device", "cpu"))
        chosen = in_force.get(key) == (m.get("run_id"), m.get("value"))
        rows.append([_label(m), m.get("threads") or "", m.get("run_id") or "", _value(m),
                     "; ".join(m.get("health") or []) or "healthy", "*" if chosen else ""])
    return rows


def _capacity(snap: Snapshot) -> dict:
    return {int(k): v for k, v in snap.cache_capacity.items()}


# --------------------------------------------------------------------------- throttling

def throttle_blocks(records: list[Record], folder: Path) -> list:
    frame = throttle_table(records)
    if frame.empty:
        return []
    headers, rows = throttle_rows(frame, throttle_cells(records))
    blocks = [h2("Throttling"),
              ("p", "The clock under load, shaped like the table the first source document (an OpenPPL talk on "
                    "inference speed) shows for the Intel Core i9-10980XE: rows are busy cores, columns the "
                    "instruction-set level each busy core runs (Normal = plain integer adds). Each cell is the "
                    "median core clock from a dependent add chain read on each busy core right after a burst at "
                    "the level; (%) is the change from the 1-core figure of the column; [low-high] the range "
                    "over the busy cores; ± the half-width of the 95% confidence interval of the median over "
                    "every clock sample of the cell."),
              table(headers, rows, numeric=set(range(len(headers))))]
    blocks += [b for b in plot_blocks(plots.throttle_heatmap(frame, folder / "throttle"), "throttle heat map")]
    return blocks
