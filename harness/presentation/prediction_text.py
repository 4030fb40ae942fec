"""How predictions are written, in `harness predict`'s output and in the report of a
prediction run (RUN/predictions.json): the predicted latency with its interval beside what
was measured and beside the uncalibrated baseline (the sum of the kernels' roofline times),
the error distribution, the kernel classes and the predicted bottlenecks.

error = predicted / measured - 1; the interval is +-2 standard deviations of the prediction.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.core.text import cut, fmt_pct, fmt_time
from harness.presentation import plots
from harness.presentation.document import h2, plot_blocks, table

PREDICTIONS = "predictions.json"
MODEL_HEADERS = ["model", "framework", "batch", "threads", "predicted", "interval (±2 sd)", "measured", "error",
                 "baseline (sum of roofs)", "baseline error", "kernels", "warnings"]
MODEL_NUMERIC = {2, 3, 4, 6, 7, 8, 9, 10}


def model_rows(rows: list[dict]) -> list[list]:
    out = []
    for r in rows:
        out.append([r["model"], r["framework"], r["batch"] if r["batch"] is not None else "-", r["threads"],
                    fmt_time(r["predicted_s"]), f"{fmt_time(r['low_s'])} - {fmt_time(r['high_s'])}",
                    fmt_time(r.get("measured_s")), f"{100 * r['error']:+.1f}%" if "error" in r else "",
                    fmt_time(r["baseline_s"]), f"{100 * r['baseline_error']:+.1f}%" if "baseline_error" in r else "",
                    r["kernels"], len(r["warnings"]) or ""])
    return out


def class_rows(row: dict) -> list[list]:
    """Per kernel class of one prediction: predicted time and share, measured where checked."""
    total = row["sum_kernels_s"] or 1.0
    out = []
    for klass, c in row["by_class"].items():
        measured = c.get("measured_s")
        out.append([klass, c["kernels"], fmt_time(c["predicted_s"]), fmt_pct(c["predicted_s"] / total, 2),
                    fmt_time(measured), f"{100 * (c['predicted_s'] / measured - 1):+.1f}%" if measured else ""])
    return out


CLASS_HEADERS = ["kernel class", "kernels", "predicted", "share", "measured", "error"]


def bottleneck_rows(row: dict) -> list[list]:
    return [[cut(b["name"], 48), b["class"], fmt_time(b["predicted_s"]), fmt_time(b["roof_s"]),
             f"{b['predicted_s'] / b['roof_s']:.2g}x" if b["roof_s"] else ""] for b in row["bottlenecks"]]


BOTTLENECK_HEADERS = ["kernel", "class", "predicted", "roofline time", "predicted / roof"]


def error_summary(rows: list[dict], key: str = "error") -> list[str]:
    """Per thread count and overall: mean |error|, the share within +-5% and +-10%, the worst."""
    lines = []
    groups = {"all": [r for r in rows if key in r]}
    for t in sorted({r["threads"] for r in rows}):
        groups[f"{t} thread{'s' if t != 1 else ''}"] = [r for r in rows if key in r and r["threads"] == t]
    for name, group in groups.items():
        if not group:
            continue
        e = np.abs([r[key] for r in group])
        lines.append(f"{name}: mean |error| {fmt_pct(float(e.mean()), 2)}, within ±5% {fmt_pct(float((e <= 0.05).mean()), 2)}"
                     f", within ±10% {fmt_pct(float((e <= 0.10).mean()), 2)}, worst {fmt_pct(float(e.max()), 2)} "
                     f"({len(group)} predictions)")
    return lines


def load_predictions(run_path: Path) -> dict | None:
    path = Path(run_path) / PREDICTIONS
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("rows"), list) else None


def prediction_blocks(run_path: Path, folder: Path) -> list:
    """The report's section for a prediction run: empty for any other run."""
    data = load_predictions(run_path)
    if not data or not data["rows"]:
        return []
    rows = data["rows"]
    blocks = [h2("Predicted latency"),
              ("p", "Each model's latency predicted from the calibration (harness calibrate): every kernel the "
                    "framework runs, its roofline time against this device's ceilings corrected by what "
                    "calibration measured, summed as calibration found whole models add up. The interval is ±2 "
                    "standard deviations; 'baseline' is the uncalibrated sum of the kernels' roofline times; "
                    "error = predicted / measured - 1."),
              table(MODEL_HEADERS, model_rows(rows), numeric=MODEL_NUMERIC)]
    summary = error_summary(rows)
    if summary:
        blocks += [("p", "Prediction error:"), ("list", summary),
                   ("p", "The uncalibrated baseline's error:"), ("list", error_summary(rows, "baseline_error"))]
    written = plots.prediction_plot(rows, folder / "predicted-vs-measured")
    if written:
        blocks += plot_blocks(written, "predicted against measured latency")
    for r in rows[:12]:
        blocks += [("h3", f"{r['model']}, batch {r['batch']}, {r['threads']} thread{'s' if r['threads'] != 1 else ''}"),
                   table(CLASS_HEADERS, class_rows(r), numeric={1, 2, 3, 4, 5}),
                   ("p", "Predicted bottlenecks:"), table(BOTTLENECK_HEADERS, bottleneck_rows(r), numeric={2, 3, 4})]
        if r["warnings"]:
            blocks += [("p", "Kernels outside the calibrated range:"), ("list", r["warnings"][:10])]
    return blocks
