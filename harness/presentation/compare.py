"""`harness compare RUN_A RUN_B [...]`: the same cases across runs or devices, side by side,
with a verdict that allows for run-to-run variation.

Cases are matched by case id, else by kind + params + threads (a renamed suite case). The
first run is the baseline. For each matched case of each later run:

- ratio = median / baseline median (> 1 = slower), with a 95% bootstrap interval;
- the interval's units: where both runs pooled fresh worker processes (`processes: k`,
  `--processes K`, k >= 2) they are the per-process medians, so the variation between runs of
  a process (the clock the host set, memory layout, a neighbour) is inside the interval.
  Otherwise they are one process's samples, which are correlated (drift within a run, a
  neighbour's load) and say nothing of how a rerun would differ: such an interval is too
  narrow, and a change must also pass a stated minimum effect (MIN_EFFECT, 5% by default: on
  these shared machines the median of a 1 ms op moved by more between runs minutes apart);
- verdict:  slower   ratio > 1 + min effect and the interval's low end > 1
            faster   ratio < 1 - min effect and the interval's high end < 1
            same     the whole interval within 1 +- min effect
            unclear  anything else: a change the noise could explain, or noise too wide to
                     rule one out (pool processes to narrow it)
- the CI gate (`--fail-slower PCT`, as pytest-benchmark's --benchmark-compare-fail): a case is
  a regression when its interval's low end is above 1 + PCT/100, slower by more than PCT
  beyond the noise.

Why not a rank test on the samples: a Mann-Whitney U test treats the samples of one run as
independent draws; they are not, so with hundreds of samples it calls a 5% drift between two
loaded runs "faster, p = 2.6e-24", which measures the noise within a run, not the change.

Beside the ratios: the geometric mean of ratios per run (one figure for "how much slower
overall"), pivot tables in the manner of torch.utils.benchmark's Compare (a case per row, a
thread count or backend per column, the fastest marked), and the conditions of each run (CPU,
clock, load, steal, libraries, ceilings, git revision) with what differs marked.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis import snapshot as snapshots
from harness.analysis.fingerprint import device_slug
from harness.core.errors import UsageError
from harness.core.records import Manifest, Record, final
from harness.core.store import load_manifest, load_records, resolve_run
from harness.core.text import fmt_pct, fmt_si, fmt_time
from harness.presentation import plots
from harness.presentation.advice import topic_of
from harness.presentation.document import plot_blocks, render_html, render_markdown, table
from harness.presentation.roofline_plot import roofline_panels, roofline_plot

# Smallest change called slower or faster when the interval rests on one process's samples ...
MIN_EFFECT = 0.05
# ... and when it rests on pooled processes, whose interval already holds run-to-run variation.
POOLED_MIN_EFFECT = 0.01
RESAMPLES = 2000
CONFIDENCE = 0.95

COLUMNS = ["case_no", "case", "kind", "threads", "variant", "run", "run_index", "status", "median_s", "ci95_low_s",
           "ci95_high_s", "n", "units", "ratio", "ratio_low", "ratio_high", "min_effect", "verdict",
           "roof_efficiency", "roof_bound"]


@dataclass
class Ratio:
    ratio: float | None
    low: float | None
    high: float | None
    units: str  # "process medians" | "samples" | "none"
    min_effect: float
    verdict: str


def _finite(x) -> bool:
    """A real number (numpy's included, as pandas hands them back), not NaN or infinite."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def units_of(record: Record) -> tuple[list[float], str]:
    """What the interval resamples: the per-process medians of a pooled record, else its samples."""
    t = record.timing
    medians = [p.get("median") for p in (t.per_process or []) if _finite(p.get("median"))]
    if len(medians) >= 2:
        return medians, "process medians"
    return [x for x in (t.samples or []) if _finite(x)], "samples"


def ratio_interval(base: list[float], other: list[float], resamples: int = RESAMPLES,
                   seed: int = 0) -> tuple[float | None, float | None]:
    """The 95% bootstrap interval of median(other) / median(base), each side resampled alone."""
    a, b = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    if a.size < 2 or b.size < 2:
        return None, None
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, size=(resamples, b.size))], axis=1)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(mb / ma, [alpha, 1 - alpha])
    return float(low), float(high)


def judge(base: Record, other: Record, min_effect: float | None = None) -> Ratio:
    """The ratio other / base with its interval and verdict (module docstring)."""
    (ua, kind_a), (ub, kind_b) = units_of(base), units_of(other)
    pooled = kind_a == kind_b == "process medians"
    units = "process medians" if pooled else "samples"
    if not pooled:  # one side pooled, the other not: compare like with like
        ua, ub = [x for x in base.timing.samples or [] if _finite(x)], [x for x in other.timing.samples or []
                                                                          if _finite(x)]
    effect = min_effect if min_effect is not None else POOLED_MIN_EFFECT if pooled else MIN_EFFECT
    if not (base.timing.median and base.timing.median > 0 and _finite(other.timing.median)):
        return Ratio(None, None, None, "none", effect, "no samples")
    ratio = other.timing.median / base.timing.median
    low, high = ratio_interval(ua, ub)
    if low is None:
        units = "none"
        low = high = None
    if ratio > 1 + effect and (low is None or low > 1):
        word = "slower"
    elif ratio < 1 - effect and (high is None or high < 1):
        word = "faster"
    elif low is not None and 1 - effect <= low and high <= 1 + effect:
        word = "same"
    elif low is None and abs(ratio - 1) <= effect:
        word = "same"
    else:
        word = "unclear"
    return Ratio(ratio, low, high, units, effect, word)


def _signature(record: Record) -> tuple:
    return record.kind, json.dumps(record.params, sort_keys=True, default=str), record.threads


def variant_of(record: Record) -> str:
    """The backend or framework a case ran on, where it names one."""
    return str(record.params.get("backend") or record.params.get("framework") or "")


def run_labels(paths: list[Path]) -> list[str]:
    """Short unique names for runs: the folder name, with the device folder where two clash."""
    names = [p.name for p in paths]
    labels = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    return [f"{label} ({i + 1})" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def _match(per_run: list[list[Record]]) -> list[dict]:
    """Cases lined up across runs: each {case, kind, threads, variant, records: {run index: record}}."""
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
                case = {"case": record.case_id, "kind": record.kind, "threads": record.threads,
                        "variant": variant_of(record), "records": {}}
                cases.append(case)
                by_id.setdefault(record.case_id, case)
                by_signature.setdefault(_signature(record), case)
            taken.add(id(case))
            case["records"][index] = record
    return cases


def compare_runs(paths, min_effect: float | None = None) -> pd.DataFrame:
    """One row per (case, run) for every case the baseline shares with at least one later run.

    df.attrs: runs (labels), paths, unmatched ({run label: [case ids found in that run alone]}),
    manifests ({label: Manifest}), records ({label: [Record]})."""
    paths = [resolve_run(p) for p in paths]
    if len(paths) < 2:
        raise UsageError("compare needs at least two runs")
    labels = run_labels(paths)
    per_run, manifests = [], {}
    for label, path in zip(labels, paths):
        records = [r for r in final(load_records(path)) if not r.kind.startswith("layer.") or r.timing]
        if not records:
            raise UsageError(f"{path}: the run holds no records")
        per_run.append(records)
        manifests[label] = load_manifest(path)
    cases = _match(per_run)
    shared = [c for c in cases if 0 in c["records"] and len(c["records"]) > 1]
    if not shared:
        raise UsageError(f"{labels[0]} shares no case with {', '.join(labels[1:])} (cases are matched by case id, "
                         "else by kind, params and threads): nothing to compare")
    rows = []
    for case_no, case in enumerate(shared):
        base = case["records"][0]
        for index, label in enumerate(labels):
            record = case["records"].get(index)
            row = {"case_no": case_no, "case": case["case"], "kind": case["kind"], "threads": case["threads"],
                   "variant": case["variant"], "run": label, "run_index": index, "status": "missing",
                   "verdict": "missing"}
            if record is not None:
                row.update(status=record.status, verdict=record.status)
                if record.measured:
                    t = record.timing
                    row.update(median_s=t.median, ci95_low_s=t.ci95_low, ci95_high_s=t.ci95_high, n=t.n)
                    if record.roofline is not None and _finite(record.roofline.efficiency):
                        row.update(roof_efficiency=record.roofline.efficiency, roof_bound=record.roofline.bound)
                    if index == 0:
                        row.update(ratio=1.0, verdict="baseline")
                    elif base.measured:
                        r = judge(base, record, min_effect)
                        row.update(ratio=r.ratio, ratio_low=r.low, ratio_high=r.high, units=r.units,
                                   min_effect=r.min_effect, verdict=r.verdict)
                    else:
                        row.update(verdict="no baseline")
            rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs.update(runs=labels, paths=[str(p) for p in paths], manifests=manifests,
                    records={label: recs for label, recs in zip(labels, per_run)},
                    unmatched={labels[i]: [c["case"] for c in cases if set(c["records"]) == {i}]
                               for i in range(len(labels))})
    return df


# --------------------------------------------------------------------------- summaries

def geometric_means(df: pd.DataFrame) -> dict[str, tuple[float, int]]:
    """{later run: (geometric mean of its ratios, cases)} over the cases measured in both runs."""
    out = {}
    for label in df.attrs["runs"][1:]:
        ratios = df[(df["run"] == label) & df["ratio"].notna()]["ratio"].astype(float)
        ratios = ratios[ratios > 0]
        if len(ratios):
            out[label] = (float(np.exp(np.log(ratios).mean())), len(ratios))
    return out


def regressions(df: pd.DataFrame, pct: float) -> pd.DataFrame:
    """The cases slower by more than `pct` percent beyond the noise: the interval's low end
    above 1 + pct/100 (where a case has no interval, its ratio)."""
    later = df[(df["run_index"] > 0) & df["ratio"].notna()]
    low = later["ratio_low"].where(later["ratio_low"].notna(), later["ratio"]).astype(float)
    return later[low > 1 + pct / 100]


def ratio_cell(row) -> str:
    if not _finite(row.get("ratio")):
        return ""
    text = f"{row['ratio']:.3f}"
    if _finite(row.get("ratio_low")):
        text += f" [{row['ratio_low']:.3f}, {row['ratio_high']:.3f}]"
    return text


def comparison_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """One line per case: each run's median, then per later run the ratio with its interval and the verdict."""
    labels = df.attrs["runs"]
    headers = ["case", "threads"] + [f"median {label}" for label in labels]
    for label in labels[1:]:
        headers += [f"ratio {label} [95% interval]", "verdict"]
    lines = []
    for _, group in df.groupby("case_no", sort=True):
        by_run = {row["run_index"]: row for _, row in group.iterrows()}
        first = group.iloc[0]
        line = [first["case"], "" if not _finite(first["threads"]) else int(first["threads"])]
        for index in range(len(labels)):
            row = by_run.get(index)
            line.append(fmt_time(row["median_s"]) if row is not None and row["status"] in ("ok", "suspect")
                        else (row["status"] if row is not None else "missing"))
        for index in range(1, len(labels)):
            row = by_run.get(index)
            line += [ratio_cell(row) if row is not None else "", row["verdict"] if row is not None else "missing"]
        lines.append(line)
    return headers, lines


def roof_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]] | None:
    """% of roof side by side: one line per matched case, each run's roofline efficiency and
    bound (each placed against its own run's ceilings: the same op on two devices, each
    against its own roof). None where no run placed any case."""
    if df["roof_efficiency"].notna().sum() == 0:
        return None
    labels = df.attrs["runs"]
    lines = []
    for _, group in df.groupby("case_no", sort=True):
        if group["roof_efficiency"].notna().sum() == 0:
            continue
        by_run = {row["run_index"]: row for _, row in group.iterrows()}
        first = group.iloc[0]
        line = [first["case"], "" if not _finite(first["threads"]) else int(first["threads"])]
        for index in range(len(labels)):
            row = by_run.get(index)
            if row is None or not _finite(row["roof_efficiency"]):
                line.append("")
                continue
            bound = row["roof_bound"] if isinstance(row["roof_bound"], str) else ""
            line.append(f"{fmt_pct(row['roof_efficiency'])} {bound}".strip())
        lines.append(line)
    return ["case", "threads", *[f"% of roof {label}" for label in labels]], lines


def _stem(case_id: str) -> str:
    """The case id without its thread count and backend or framework: a pivot table's row."""
    stem = re.sub(r"(?<=[\[,])(t|backend|framework)=[^,\]]*,?", "", case_id)
    return stem.replace(",]", "]").replace("[]", "")


def run_letter(index: int) -> str:
    """A, B, C, ... for the runs in the order given (a pivot table's column names stay short)."""
    return chr(ord("A") + index) if index < 26 else f"R{index + 1}"


def pivot_tables(df: pd.DataFrame) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per kind family, over every measured case of every run (matched or not): (title,
    headers, rows), a case per row and a (run, backend, threads) per column, the fastest of
    each row marked '*'. Only families where some row has two or more cells."""
    runs = df.attrs["runs"]
    families: dict[str, dict[str, dict[tuple, float]]] = {}
    for index, label in enumerate(runs):
        for r in df.attrs["records"][label]:
            if r.measured:
                column = (index, variant_of(r), r.threads or 0)
                families.setdefault(plots.kind_family(r.kind), {}).setdefault(_stem(r.case_id), {})[column] = \
                    r.timing.median
    out = []
    for family, cells in sorted(families.items()):
        if not any(len(by_col) >= 2 for by_col in cells.values()):
            continue
        columns = sorted({c for by_col in cells.values() for c in by_col})
        headers = ["case"] + [" ".join(filter(None, [run_letter(i) if len(runs) > 1 else "", v, f"t={t}"]))
                              for i, v, t in columns]
        rows = []
        for stem, by_col in cells.items():
            fastest = min(by_col.values())
            rows.append([stem] + [(fmt_time(by_col[c]) + (" *" if by_col[c] == fastest and len(by_col) > 1 else ""))
                                  if c in by_col else "" for c in columns])
        out.append((family, headers, rows))
    return out


def _clock(records: list[Record]) -> float | None:
    values = [r.conditions.clock_ghz_after for r in records if r.conditions and _finite(r.conditions.clock_ghz_after)]
    return float(np.median(values)) if values else None


def _device(fp: dict) -> str | None:
    try:
        return device_slug(fp)
    except (KeyError, TypeError):
        return None


def _cpu_count(fp: dict) -> int | None:
    cpus = (fp.get("cpu") or {}).get("available_cpus")
    return len(cpus) if isinstance(cpus, list) else cpus if isinstance(cpus, int) else None


def conditions_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """What each run ran under, a row per fact, '≠' where the runs differ."""
    labels = df.attrs["runs"]
    facts: dict[str, list[str]] = {}

    def put(name, values):
        facts[name] = [str(v) if v not in (None, "") else "-" for v in values]

    manifests: list[Manifest] = [df.attrs["manifests"][label] for label in labels]
    records = [df.attrs["records"][label] for label in labels]
    fps = [m.fingerprint or {} for m in manifests]
    put("CPU", [(fp.get("cpu") or {}).get("model") for fp in fps])
    put("device", [_device(fp) for fp in fps])
    put("CPUs used", [(fp.get("cpu") or {}).get("available_cpus") for fp in fps])
    put("git revision", [m.git_revision for m in manifests])
    put("suite", [(m.suite or {}).get("name") for m in manifests])
    put("clock under load (median)", [f"{c:.3g} GHz" if c else None for c in map(_clock, records)])
    put("load from others (max)", [f"{max((r.conditions.others_percent for r in rs if r.conditions), default=0):.0f}%"
                                   for rs in records])
    put("hypervisor steal (max)", [fmt_pct(max((r.faults.steal_fraction for r in rs if r.faults), default=0))
                                   or "0%" for rs in records])
    put("suspect cases", [sum(r.status == "suspect" for r in rs) for rs in records])
    for lib in ("torch", "onnxruntime", "numpy", "numba"):
        put(lib, [(fp.get("versions") or {}).get(lib) for fp in fps])
    put("BLAS", ["; ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')})"
                           for b in fp.get("blas") or []) for fp in fps])
    put("machine warnings", [", ".join(topic_of(w).name for w in m.warnings) or "none" for m in manifests])
    snaps = [snapshots.load(Path(p), m.fingerprint or {}) for p, m in zip(df.attrs["paths"], manifests)]
    put("fp32 compute ceiling, 1 thread", [fmt_si(c.value, "FLOP/s") if (c := s.compute("float32", 1)) else None
                                           for s in snaps])
    put("DRAM bandwidth, 1 thread", [fmt_si(c.value, "B/s") if (c := s.bandwidth("DRAM", 1)) else None
                                     for s in snaps])
    cpus = [_cpu_count(fp) for fp in fps]
    put("fp32 compute ceiling, every CPU", [f"{fmt_si(c.value, 'FLOP/s')} (t={n})" if n and (c := s.compute(
        "float32", n)) else None for s, n in zip(snaps, cpus)])
    put("DRAM bandwidth, every CPU", [f"{fmt_si(c.value, 'B/s')} (t={n})" if n and (c := s.bandwidth("DRAM", n))
                                      else None for s, n in zip(snaps, cpus)])
    headers = ["", *labels, "differs"]
    return headers, [[name, *values, "≠" if len(set(values)) > 1 else ""] for name, values in facts.items()]


def basis_note(df: pd.DataFrame) -> str:
    """How the verdicts were reached, in words, for the output."""
    later = df[(df["run_index"] > 0) & df["units"].notna()]
    pooled = int((later["units"] == "process medians").sum())
    single = int((later["units"] == "samples").sum())
    effects = sorted({float(x) for x in later["min_effect"].dropna()})
    parts = []
    if pooled:
        parts.append(f"{pooled} ratio(s) rest on pooled worker processes: their 95% intervals resample the "
                     "per-process medians, so run-to-run variation is inside them")
    if single:
        parts.append(f"{single} rest on one process per run: their intervals resample samples that are "
                     "correlated within a run, so they are too narrow and a change must also pass the minimum "
                     "effect (pool processes with --processes 3 for intervals that hold run-to-run variation)")
    return ("Verdicts: slower / faster need the ratio beyond the minimum effect "
            f"({', '.join(fmt_pct(e) for e in effects) or '-'}) and the interval clear of 1; same: the whole "
            "interval within the minimum effect; unclear: anything else. " + "; ".join(parts) + ".")


# --------------------------------------------------------------------------- output

def roofline_blocks(df: pd.DataFrame, out: Path) -> list:
    """Each run's roofline, as its report draws it (its own ceilings, its ops), one after the other."""
    blocks = []
    for index, (label, path) in enumerate(zip(df.attrs["runs"], df.attrs["paths"])):
        manifest = df.attrs["manifests"][label]
        records = [r for r in df.attrs["records"][label] if r.roofline is not None]
        if not records:
            continue
        panels = roofline_panels(records, snapshots.load(Path(path), manifest.fingerprint or {}))
        written = roofline_plot(panels, out / f"roofline-{run_letter(index)}", title=f"Roofline: {label}")
        if written:
            if not blocks:
                blocks.append(("h2", "Roofline per run", "roofline"))
            blocks += [("h3", f"{run_letter(index)} = {label}"), *plot_blocks(written, f"roofline of {label}")]
    return blocks


def write_comparison(df: pd.DataFrame, out: Path, fail_slower: float | None = None) -> list[Path]:
    """comparison.html (plots inline), comparison.md, comparison.csv and the plot, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    labels, paths = df.attrs["runs"], df.attrs["paths"]
    headers, lines = comparison_rows(df)
    counts = df[df["run_index"] > 0]["verdict"].value_counts()
    blocks = [("h2", "Runs", "runs"),
              table(["", "run", "folder"], [["baseline" if i == 0 else f"run {i + 1}", label, paths[i]]
                                             for i, label in enumerate(labels)]),
              ("p", "Outcome: " + (", ".join(f"{n} {v}" for v, n in counts.items()) or "none") + "."),
              ("p", basis_note(df))]
    means = geometric_means(df)
    if means:
        blocks.append(("p", "Geometric mean of the ratios: " + "; ".join(
            f"{label} {g:.3f} over {n} cases ({'slower' if g > 1 else 'faster'} by {fmt_pct(abs(g - 1))})"
            for label, (g, n) in means.items()) + "."))
    if fail_slower is not None:
        bad = regressions(df, fail_slower)
        blocks.append(("p", f"Gate --fail-slower {fail_slower:g}%: " + (
            f"{len(bad)} case(s) slower beyond the noise: {', '.join(bad['case'])}" if len(bad) else "passed") + "."))
    blocks += [("h2", "Cases", "cases"),
               table(headers, lines, numeric={i for i, h in enumerate(headers) if h.startswith(("median", "ratio",
                                                                                                  "threads"))})]
    unmatched = {k: v for k, v in df.attrs["unmatched"].items() if v}
    if unmatched:
        blocks.append(("p", "Cases in one run only (not compared): " + "; ".join(
            f"{label}: {len(cases)} ({', '.join(cases[:8])}{' ...' if len(cases) > 8 else ''})"
            for label, cases in unmatched.items()) + "."))
    pivots = pivot_tables(df)
    if pivots:
        blocks.append(("h2", "Side by side", "side-by-side"))
        blocks.append(("p", "Median per case (rows) and run, backend and thread count (columns); * marks the "
                            "fastest of each row. Runs: " + ", ".join(f"{run_letter(i)} = {label}"
                                                                     for i, label in enumerate(labels)) + "."))
        for family, pivot_headers, rows in pivots:
            blocks += [("h3", family), table(pivot_headers, rows, numeric=set(range(1, len(pivot_headers))))]
    roof = roof_rows(df)
    if roof:
        blocks += [("h2", "% of roof", "roof"),
                   ("p", "Each case's roofline efficiency (roofline time / measured median) in each run, placed "
                         "against that run's own ceilings (its frozen profile snapshot), with the bound."),
                   table(roof[0], roof[1], numeric=set(range(1, len(roof[0]))))]
    cond_headers, cond_rows = conditions_rows(df)
    blocks += [("h2", "Conditions", "conditions"),
               ("p", "What each run ran under; ≠ marks what differs (a ratio between runs whose clock, load or "
                     "libraries differ measures those too)."),
               table(cond_headers, cond_rows, small=set(range(1, len(cond_headers) - 1)))]
    written = plots.comparison_plot(df, out / "comparison")
    if written:
        blocks += [("h2", "Ratio per case", "ratio-per-case"), *plot_blocks(written, "ratio per case")]
    blocks += roofline_blocks(df, out)
    blocks.append(("note", "ratio = median / baseline median (> 1 = slower), with its 95% bootstrap interval. "
                           "Times are per call, decimal SI."))
    title = "Comparison: " + " vs ".join(labels)
    subtitle = f"{len(lines)} matched cases across {len(labels)} runs; baseline {labels[0]}"
    html_path, md_path, csv_path = out / "comparison.html", out / "comparison.md", out / "comparison.csv"
    html_path.write_text(render_html(title, subtitle, blocks), encoding="utf-8")
    md_path.write_text(render_markdown(title, subtitle, blocks, out), encoding="utf-8")
    df.to_csv(csv_path, index=False)
    return [html_path, md_path, csv_path, *written]
