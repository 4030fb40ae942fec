"""`harness compare RUN_A RUN_B [...]`: the same cases across runs or devices, side by side.

Cases are matched by case id; where ids differ (a renamed suite case, another suite) by
kind + params + threads. The first run is the baseline. For each later run a case gets
the ratio of its median to the baseline's (> 1 = slower) and a verdict from a two-sided
Mann-Whitney U test on the kept samples of the two runs:

  p < alpha and |ratio - 1| >= min_effect   -> "faster" or "slower"
  p < alpha but within min_effect          -> "same (< 1%)": a real but negligible change
  p >= alpha                               -> "no significant difference"

Why Mann-Whitney: timing samples are skewed (a floor and a tail of interruptions) and
carry outliers we keep, so a rank test that assumes no distribution fits better than a
t-test. It treats the samples as independent; drift within a run (thermal, a neighbour's
load) breaks that, so read a borderline p with the run's warnings in view. The effect
threshold exists because with hundreds of samples a 0.2% shift is "significant" and
means nothing to anyone.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.errors import UsageError
from harness.core.records import Record, final
from harness.core.store import load_records, resolve_run
from harness.presentation import plots
from harness.presentation.document import plot_blocks, render_html, render_markdown, table
from harness.core.text import fmt_time

ALPHA = 0.05
MIN_EFFECT = 0.01  # ratios within 1% of 1 are "same" however small the p-value

COLUMNS = ["case_no", "case", "kind", "threads", "run", "run_index", "status", "median_s", "ci95_low_s", "ci95_high_s",
           "n", "ratio", "p_value", "verdict"]


def _signature(record: Record) -> tuple:
    return record.kind, json.dumps(record.params, sort_keys=True, default=str), record.threads


def run_labels(paths: list[Path]) -> list[str]:
    """Short unique names for runs: the folder name, with the device folder where two clash."""
    names = [p.name for p in paths]
    labels = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    # the same run given twice still needs two columns
    return [f"{label} ({i + 1})" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def verdict(baseline: list[float], other: list[float], alpha: float = ALPHA,
            min_effect: float = MIN_EFFECT) -> tuple[float | None, float | None, str]:
    """(ratio of medians other / baseline, Mann-Whitney p-value, verdict) for two sample sets."""
    a = np.asarray([x for x in baseline if _finite(x)], dtype=float)
    b = np.asarray([x for x in other if _finite(x)], dtype=float)
    if a.size == 0 or b.size == 0:
        return None, None, "no samples"
    ratio = float(np.median(b) / np.median(a)) if np.median(a) > 0 else None
    from scipy.stats import mannwhitneyu  # deferred: scipy.stats costs ~0.8 s at every command's start

    p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    if not math.isfinite(p):  # every sample equal in both runs
        p = 1.0
    if p >= alpha or ratio is None:
        return ratio, p, "no significant difference"
    if abs(ratio - 1) < min_effect:
        return ratio, p, f"same (< {100 * min_effect:g}%)"
    return ratio, p, "slower" if ratio > 1 else "faster"


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def compare_runs(paths, alpha: float = ALPHA, min_effect: float = MIN_EFFECT):
    """Lines up matching cases across runs; one row per (case, run), in the first run's order.

    Columns: case_no (0, 1, ... one per matched case), case (the first run's id where it has
    the case), kind, threads, run (label),
    run_index (0 = baseline), status ("missing" where the run lacks the case), median_s,
    ci95_low_s, ci95_high_s, n, ratio (median / baseline median), p_value (Mann-Whitney U,
    two-sided, on the samples), verdict ("baseline", "faster", "slower", "same (< 1%)",
    "no significant difference", "no samples", "missing", or the case's failed/skipped status).
    df.attrs["runs"] holds the run labels, df.attrs["paths"] the run folders.
    """
    paths = [resolve_run(p) for p in paths]
    if len(paths) < 2:
        raise UsageError("compare needs at least two runs")
    labels = run_labels(paths)
    per_run = []
    for path in paths:
        records = [r for r in final(load_records(path)) if not r.kind.startswith("layer.") or r.timing]
        if not records:
            raise UsageError(f"{path}: the run holds no records")
        per_run.append(records)

    # Rows are cases; each holds the record every run has for it. A case id match wins;
    # then the same kind, params and threads under another id.
    cases: list[dict] = []
    by_id: dict = {}
    by_signature: dict = {}
    for index, records in enumerate(per_run):
        taken = set()
        for record in records:
            case = by_id.get(record.case_id)
            if case is None or id(case) in taken:
                case = by_signature.get(_signature(record))
            if case is None or id(case) in taken:
                case = {"case": record.case_id, "kind": record.kind, "threads": record.threads, "records": {}}
                cases.append(case)
                by_id.setdefault(record.case_id, case)
                by_signature.setdefault(_signature(record), case)
            taken.add(id(case))
            case["records"][index] = record

    rows = []
    for case_no, case in enumerate(cases):
        base = case["records"].get(0)
        base_ok = base is not None and base.measured
        for index, label in enumerate(labels):
            record = case["records"].get(index)
            row = {"case_no": case_no, "case": case["case"], "kind": case["kind"], "threads": case["threads"], "run": label,
                   "run_index": index, "status": "missing", "median_s": None, "ci95_low_s": None,
                   "ci95_high_s": None, "n": None, "ratio": None, "p_value": None, "verdict": "missing"}
            if record is not None:
                timing = record.timing
                row.update(status=record.status, verdict=record.status)
                if record.measured:
                    row.update(median_s=timing.median, ci95_low_s=timing.ci95_low, ci95_high_s=timing.ci95_high,
                               n=timing.n)
                    if index == 0:
                        row.update(ratio=1.0, verdict="baseline")
                    elif base_ok:
                        ratio, p, word = verdict(base.timing.samples, timing.samples, alpha, min_effect)
                        if ratio is None and base.timing.median > 0:
                            ratio = timing.median / base.timing.median
                        row.update(ratio=ratio, p_value=p, verdict=word)
                    else:
                        row.update(verdict="no baseline")
            rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["runs"] = labels
    df.attrs["paths"] = [str(p) for p in paths]
    return df


def comparison_rows(df) -> tuple[list[str], list[list[str]]]:
    """The comparison as one line per case: each run's median, then ratio, p and verdict per later run."""
    labels = df.attrs.get("runs") or list(dict.fromkeys(df["run"]))
    headers = ["case", "threads"] + [f"median {label}" for label in labels]
    for label in labels[1:]:
        headers += [f"ratio {label}", "p", "verdict"]
    lines = []
    for _, group in df.groupby("case_no", sort=True):
        by_run = {row["run_index"]: row for _, row in group.iterrows()}
        first = group.iloc[0]
        case = first["case"]
        line = [case, "" if first["threads"] is None or _nan(first["threads"]) else int(first["threads"])]
        for index in range(len(labels)):
            row = by_run.get(index)
            if row is None or row["status"] not in ("ok", "suspect"):
                line.append(row["status"] if row is not None else "missing")
            else:
                line.append(fmt_time(row["median_s"]))
        for index in range(1, len(labels)):
            row = by_run.get(index)
            ratio = row["ratio"] if row is not None else None
            p = row["p_value"] if row is not None else None
            line += [f"{ratio:.3f}" if _finite(ratio) else "", f"{p:.2g}" if _finite(p) else "",
                     row["verdict"] if row is not None else "missing"]
        lines.append(line)
    return headers, lines


def _nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def write_comparison(df, out: Path) -> list[Path]:
    """comparison.md, comparison.html (plot embedded), comparison.csv and the plot, in `out`."""

    out.mkdir(parents=True, exist_ok=True)
    headers, lines = comparison_rows(df)
    labels = df.attrs.get("runs") or []
    paths = df.attrs.get("paths") or []
    counts = df[df["run_index"] > 0]["verdict"].value_counts()
    blocks = [("h2", "Runs", "runs"),
              table(["", "run", "folder"], [[("baseline" if i == 0 else f"run {i + 1}"), label,
                                              paths[i] if i < len(paths) else ""]
                                             for i, label in enumerate(labels)]),
              ("p", "Verdicts: " + (", ".join(f"{n} {v}" for v, n in counts.items()) or "none") + "."),
              ("note", f"ratio = median / baseline median (> 1 = slower). p = two-sided Mann-Whitney U on the "
                       f"kept samples; 'faster'/'slower' need p < {ALPHA} and a change of at least "
                       f"{100 * MIN_EFFECT:g}%. Times are per call, decimal SI."),
              ("h2", "Cases", "cases"),
              table(headers, lines, numeric={i for i, h in enumerate(headers)
                                              if h.startswith(("median", "ratio", "p", "threads"))})]
    written = plots.comparison_plot(df, out / "comparison")
    if written:
        blocks += [("h2", "Ratio per case", "ratio-per-case"), *plot_blocks(written, "ratio per case")]
    title = "Comparison: " + " vs ".join(labels)
    subtitle = f"{len(lines)} cases across {len(labels)} runs; baseline {labels[0] if labels else '?'}"
    html_path, md_path, csv_path = out / "comparison.html", out / "comparison.md", out / "comparison.csv"
    html_path.write_text(render_html(title, subtitle, blocks), encoding="utf-8")
    md_path.write_text(render_markdown(title, subtitle, blocks, out), encoding="utf-8")
    df.to_csv(csv_path, index=False)
    return [html_path, md_path, csv_path, *written]
