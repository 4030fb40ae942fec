"""Plots for reports and comparisons: the roofline, measured against theoretical time, the
throttle heat map, thread scaling and the ratio plot of a comparison.

Every function writes PATH.png and PATH.svg and returns the paths written; with nothing
to draw it writes nothing and returns [], so a report never fails for want of a plot.
Figures are built on matplotlib's object API with the Agg canvas, never pyplot: no
display is needed and no global state is left behind.

Axes are in decimal SI units (1 GFLOP/s = 1e9 FLOP/s, 1 GB/s = 1e9 bytes/s); intensity is
FLOPs per byte.

matplotlib is imported inside functions (deferred on purpose: commands that draw nothing start faster).
"""
from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.text import fmt_bytes_binary, fmt_time

BANDWIDTH_COLOURS = ["#08306b", "#2171b5", "#4292c6", "#6baed6", "#9ecae1"]
DTYPE_COLOURS = {"float32": "#222222", "float64": "#8c510a"}
# Kinds whose timing is not a speed (a clock probe's call lasts a set time): no scaling plot.
NOT_A_SPEED = ("probe.throttle", "probe.frequency")


def kind_family(kind) -> str:
    """The part of a kind before the first '.', or the kind itself: probe, conv, model, ..."""
    if not isinstance(kind, str) or not kind:
        return "other"
    return kind.split(".", 1)[0]


def figure(width: float = 10.0, height: float = 6.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save(fig, path) -> list[Path]:
    base = Path(path)
    if base.suffix.lower() in (".png", ".svg"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    from matplotlib import rc_context

    # SVG text as text (no glyph definitions whose ids would clash between plots inlined in one
    # page) and ids from a fixed salt with no date: writing a report twice gives the same file.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "roofline-harness"}):
        for fmt in ("png", "svg"):
            out = base.with_name(base.name + "." + fmt)
            fig.savefig(out, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
            written.append(out)
    return written


def add_svg_titles(path, titles: dict) -> None:
    """Gives each SVG group whose id is a key of `titles` a <title> child: a browser shows it
    when the pointer rests on the element (matplotlib writes an artist's gid as its group id)."""
    svg = Path(path).read_text(encoding="utf-8")
    for gid, title in titles.items():
        svg = svg.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{html.escape(title)}</title>', 1)
    Path(path).write_text(svg, encoding="utf-8")


def family_colours(families) -> dict:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return {fam: palette[i % len(palette)] for i, fam in enumerate(sorted(set(families)))}


def plain_log_ticks(axis) -> None:
    """Log axis ticks written as plain numbers (0.1, 1, 10) rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _column(df, names):
    """The first of `names` that df has (flat or load_run's dotted names), else None."""
    for name in names:
        if name in df.columns:
            return df[name]
    return None


def _as_frame(data):
    """A DataFrame from a DataFrame, a list of records (typed or JSON), or None."""
    if data is None:
        return pd.DataFrame()
    if isinstance(data, pd.DataFrame):
        return data
    data = [r.to_json() if hasattr(r, "to_json") else r for r in data]
    if not data:
        return pd.DataFrame()
    return pd.json_normalize(data, sep=".")


# --------------------------------------------------------------------------- measured vs theoretical


def time_against_time_axes(fig, rect, lo: float, hi: float):
    """Square log-log axes from lo to hi seconds on both sides, and a grid of x values to draw
    lines and bands over (the measured-against-theoretical and predicted-against-measured plots)."""
    ax = fig.add_axes(rect)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    return ax, np.geomspace(lo, hi, 50)


def measured_vs_theoretical_plot(df, path, title: str = "Measured against roofline time") -> list[Path]:
    """Each op's measured median against its roofline (theoretical) time, log-log, with the
    y = x line (on the roof: efficiency 100%) and bands at 50%, 10% and 1% efficiency.

    df columns: theoretical_time_s, measured_time_s (or median), kind; load_run's dotted
    names (roofline.theoretical_time_s, timing.median) work too.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    df = _as_frame(df)
    t_theory = _column(df, ["theoretical_time_s", "roofline.theoretical_time_s"])
    t_meas = _column(df, ["measured_time_s", "median", "timing.median"])
    if t_theory is None or t_meas is None:
        return []
    x = np.asarray(t_theory, dtype=float)
    y = np.asarray(t_meas, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if not keep.any():
        return []
    kinds = _column(df, ["kind"])
    fams = [kind_family(k) for k in (list(kinds) if kinds is not None else [None] * len(keep))]
    x, y = x[keep], y[keep]
    fams = [f for f, ok in zip(fams, keep) if ok]

    lo = min(x.min(), y.min()) / 3
    hi = max(x.max(), y.max()) * 3
    hi = max(hi, lo * 1000)  # at least three decades so the bands show
    fig = figure(10, 6.5)
    ax, grid = time_against_time_axes(fig, [0.1, 0.1, 0.62, 0.82], lo, hi)
    bands = [(1.0, 0.5, "#c7e9c0"), (0.5, 0.1, "#fff3b0"), (0.1, 0.01, "#fdd0a2"), (0.01, 1e-9, "#fcbba1")]
    for top, bottom, colour in bands:
        ax.fill_between(grid, grid / top, np.minimum(grid / bottom, hi * 10), color=colour, linewidth=0, zorder=0)
    ax.fill_between(grid, lo / 10, grid, color="#e0e0e0", linewidth=0, zorder=0)
    ax.plot(grid, grid, color="black", linewidth=1.2, zorder=2)
    for eff in (0.5, 0.1, 0.01):
        ax.plot(grid, grid / eff, color="#777777", linewidth=0.7, linestyle="--", zorder=2)
    ax.grid(True, which="major", color="#ffffff", linewidth=0.6, zorder=1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_time(v)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_time(v)))
    ax.set_xlabel("roofline (theoretical) time per call")
    ax.set_ylabel("measured median time per call")
    ax.set_title(title)

    colours = family_colours(fams)
    for fam in sorted(colours):
        pick = [i for i, f in enumerate(fams) if f == fam]
        ax.scatter(x[pick], y[pick], c=[colours[fam]], s=42, edgecolors="black", linewidths=0.5, zorder=4)

    from matplotlib.patches import Patch

    handles = [Line2D([], [], linestyle="", marker="o", markerfacecolor=colours[f], markeredgecolor="black",
                      markersize=7, label=f) for f in sorted(colours)]
    handles += [Line2D([], [], color="black", label="y = x: on the roof (100%)"),
                Patch(color="#c7e9c0", label="efficiency 50-100%"),
                Patch(color="#fff3b0", label="efficiency 10-50%"),
                Patch(color="#fdd0a2", label="efficiency 1-10%"),
                Patch(color="#fcbba1", label="efficiency < 1%"),
                Patch(color="#e0e0e0", label="faster than the roof:\nceiling too low (e.g. data in cache)")]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.74, 0.92), fontsize=8, frameon=False,
               title="efficiency = roofline time / measured", title_fontsize=8)
    return save(fig, path)


# --------------------------------------------------------------------------- conv: measured against roofline time


def conv_times_plot(configs: list, path, title: str = "Measured median against roofline time") -> list[Path]:
    """One panel per conv config, one bar per backend x thread count: the measured median as
    the bar, the roofline (theoretical) time as a black tick across it, the efficiency above.

    configs: [(panel title, [{backend, threads, measured_s, theory_s}])]; bars without a
    roofline time get no tick."""
    from matplotlib.lines import Line2D

    configs = [(t, bars) for t, bars in configs if any(finite_positive(b["measured_s"]) for b in bars)]
    if not configs:
        return []
    backends = sorted({b["backend"] for _, bars in configs for b in bars})
    colours = family_colours(backends)
    n = len(configs)
    fig = figure(10, 2.8 * n + 1.2)
    for i, (panel_title, bars) in enumerate(configs):
        ax = fig.add_axes([0.1, 1 - (i + 1) * (0.92 / n), 0.62, 0.92 / n - 0.09])
        bars = sorted(bars, key=lambda b: (b["threads"], b["backend"]))
        xs = np.arange(len(bars))
        heights = [b["measured_s"] if finite_positive(b["measured_s"]) else 0 for b in bars]
        ax.bar(xs, heights, color=[colours[b["backend"]] for b in bars], edgecolor="black", linewidth=0.5)
        for x, b in zip(xs, bars):
            if finite_positive(b["theory_s"]):
                ax.plot([x - 0.42, x + 0.42], [b["theory_s"]] * 2, color="black", linewidth=2.2)
            if finite_positive(b["theory_s"]) and finite_positive(b["measured_s"]):
                ax.annotate(f"{100 * b['theory_s'] / b['measured_s']:.0f}%", (x, max(b["measured_s"], b["theory_s"])),
                            xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{b['backend']}\n{b['threads']} thread{'s' if b['threads'] != 1 else ''}" for b in bars],
                           fontsize=8)
        top = max(max(heights), max((b["theory_s"] for b in bars if finite_positive(b["theory_s"])), default=0))
        ax.set_ylim(0, top * 1.25)
        ax.yaxis.set_major_formatter(_time_formatter())
        ax.set_ylabel("time per call")
        ax.set_title(panel_title, fontsize=9)
        ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
    handles = [Line2D([], [], linestyle="", marker="s", markersize=9, markerfacecolor=colours[b],
                      markeredgecolor="black", label=f"{b}: measured median") for b in backends]
    handles.append(Line2D([], [], color="black", linewidth=2.2, label="roofline time"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.74, 0.97), fontsize=8, frameon=False,
               title=f"{title}\n(% = roofline time / measured)", title_fontsize=8)
    return save(fig, path)


def finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _time_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: fmt_time(v) if v > 0 else "0")


# --------------------------------------------------------------------------- working-set sweep


def sweep_plot(points: list[dict], plateaus: list[dict], capacity: dict, path,
               title: str = "Bandwidth by working-set size") -> list[Path]:
    """Best-of bandwidth against working-set size (log-log), one line per (op, threads), the
    plateaus found drawn as flat segments with their level, and the cache capacity each
    thread count holds as dotted vertical lines (capacity: threads -> {level: bytes})."""
    from matplotlib.ticker import FuncFormatter

    curves: dict[tuple, list[dict]] = {}
    for p in points:
        curves.setdefault((p["op"], p["threads"]), []).append(p)
    if not curves:
        return []
    fig = figure(10, 6)
    ax = fig.add_axes([0.1, 0.1, 0.6, 0.82])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    colours = family_colours([f"{op}, {t} thread{'s' if t != 1 else ''}" for op, t in curves])
    for (op, threads), pts in sorted(curves.items()):
        label = f"{op}, {threads} thread{'s' if threads != 1 else ''}"
        pts = sorted(pts, key=lambda p: p["bytes"])
        xs, ys = [p["bytes"] for p in pts], [p["bytes_per_s"] / 1e9 for p in pts]
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.2, color=colours[label], label=label)
        suspect = [(x, y) for p, x, y in zip(pts, xs, ys) if p.get("suspect")]
        if suspect:
            ax.scatter(*zip(*suspect), marker="x", color="#d62728", s=30, zorder=5)
        for plateau in (p for p in plateaus if p["op"] == op and p["threads"] == threads):
            level_y = plateau["median_gbs"]
            ax.plot([plateau["first_bytes"], plateau["last_bytes"]], [level_y] * 2, color=colours[label],
                    linewidth=4, alpha=0.35, solid_capstyle="butt")
            ax.annotate(plateau["level"], (plateau["first_bytes"], level_y), xytext=(0, 5),
                        textcoords="offset points", fontsize=8, color=colours[label])
    seen = set()
    for threads, levels in sorted((capacity or {}).items()):
        for level, size in (levels or {}).items():
            if size in seen or not size:
                continue
            seen.add(size)
            ax.axvline(size, color="#999999", linestyle=":", linewidth=0.8)
            ax.annotate(f"{level} {fmt_bytes_binary(size)} ({threads}t)", (size, 1), xytext=(2, -4),
                        xycoords=("data", "axes fraction"), textcoords="offset points", rotation=90, fontsize=7,
                        va="top", color="#777777")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_bytes_binary(v)))
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("working set (KiB, MiB: binary units)")
    ax.set_ylabel("bandwidth, GB/s (1e9 bytes/s)")
    ax.set_title(title)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    fig.legend(loc="upper left", bbox_to_anchor=(0.72, 0.92), fontsize=8, frameon=False,
               title="best repetition per size;\nx = a suspect measurement", title_fontsize=8)
    return save(fig, path)


# --------------------------------------------------------------------------- predicted against measured


def prediction_plot(rows: list[dict], path, title: str = "Predicted against measured latency") -> list[Path]:
    """Predicted against measured latency per model (log-log), the y = x line and the +-10%
    band, coloured by thread count, shaped by batch; the uncalibrated baseline (sum of the
    kernels' roofline times) as hollow markers, to show what calibration buys.

    rows: predictions.json's rows (predicted_s, measured_s, baseline_s, threads, batch, model)."""
    from matplotlib.lines import Line2D

    rows = [r for r in rows if finite_positive(r.get("measured_s")) and finite_positive(r.get("predicted_s"))]
    if not rows:
        return []
    values = [v for r in rows for v in (r["measured_s"], r["predicted_s"], r.get("baseline_s") or r["measured_s"])]
    lo, hi = min(values) / 2, max(values) * 2
    fig = figure(10, 7)
    ax, grid = time_against_time_axes(fig, [0.1, 0.1, 0.6, 0.82], lo, hi)
    ax.fill_between(grid, grid * 0.9, grid * 1.1, color="#c7e9c0", linewidth=0, zorder=0)
    ax.plot(grid, grid, color="black", linewidth=1)
    threads = sorted({r["threads"] for r in rows})
    colours = family_colours([str(t) for t in threads])
    markers = {b: m for b, m in zip(sorted({str(r["batch"]) for r in rows}), ("o", "s", "^", "D", "v"))}
    for r in rows:
        colour, marker = colours[str(r["threads"])], markers[str(r["batch"])]
        ax.scatter([r["measured_s"]], [r["predicted_s"]], c=[colour], marker=marker, s=45, edgecolors="black",
                   linewidths=0.5, zorder=4)
        if finite_positive(r.get("baseline_s")):
            ax.scatter([r["measured_s"]], [r["baseline_s"]], facecolors="none", edgecolors=[colour], marker=marker,
                       s=45, linewidths=1.0, zorder=3)
    for r in sorted(rows, key=lambda r: -abs(r.get("error", 0)))[:6]:
        ax.annotate(f"{r['model']} b{r['batch']} t{r['threads']}", (r["measured_s"], r["predicted_s"]),
                    xytext=(5, -3), textcoords="offset points", fontsize=7)
    ax.xaxis.set_major_formatter(_time_formatter())
    ax.yaxis.set_major_formatter(_time_formatter())
    ax.set_xlabel("measured latency")
    ax.set_ylabel("predicted latency")
    ax.set_title(title)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    handles = [Line2D([], [], linestyle="", marker="o", markerfacecolor=colours[str(t)], markeredgecolor="black",
                      label=f"{t} thread{'s' if t != 1 else ''}") for t in threads]
    handles += [Line2D([], [], linestyle="", marker=m, color="#777777", label=f"batch {b}") for b, m in markers.items()]
    handles += [Line2D([], [], color="black", label="y = x"),
                Line2D([], [], color="#c7e9c0", linewidth=8, label="±10%"),
                Line2D([], [], linestyle="", marker="o", markerfacecolor="none", markeredgecolor="#555555",
                       label="uncalibrated: sum of roofline times")]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.72, 0.92), fontsize=8, frameon=False)
    return save(fig, path)


# --------------------------------------------------------------------------- throttle


def throttle_heatmap(table, path, title: str = "Core clock by busy cores and ISA level") -> list[Path]:
    """The throttle table (index busy cores, columns ISA level, cells MHz) as a heat map,
    each cell annotated with its MHz and its change from the 1-core figure of its column."""
    if table is None or getattr(table, "empty", True):
        return []
    values = np.asarray(table.values, dtype=float)
    if not np.isfinite(values).any():
        return []
    rows, cols = values.shape
    fig = figure(max(6.0, 1.6 * cols + 2.5), max(3.0, 0.6 * rows + 2.0))
    ax = fig.add_axes([0.12, 0.18, 0.72, 0.7])
    # The colour scale spans at least 15% below the fastest cell, so that a 2% dip does
    # not look like the 30% drops the scale exists to show.
    vmax = float(np.nanmax(values))
    vmin = min(float(np.nanmin(values)), 0.85 * vmax)
    image = ax.imshow(values, cmap="RdYlGn", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(cols))
    ax.set_xticklabels(["Normal (none)" if c == "none" else str(c).upper() for c in table.columns])
    ax.set_yticks(range(rows))
    ax.set_yticklabels([str(i) for i in table.index])
    ax.set_xlabel("ISA level of the load")
    ax.set_ylabel("busy cores")
    ax.set_title(title)
    first = values[0]
    for i in range(rows):
        for j in range(cols):
            v = values[i, j]
            if not np.isfinite(v):
                continue
            text = f"{v:.0f} MHz"
            if i > 0 and np.isfinite(first[j]) and first[j] > 0:
                text += f"\n({100 * (v - first[j]) / first[j]:+.1f}%)"
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="black")
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
    bar.set_label("MHz")
    return save(fig, path)


# --------------------------------------------------------------------------- thread scaling


def _scaling_groups(df) -> dict:
    """(label) -> sorted [(threads, rate)] for records that differ only in threads."""
    groups: dict[tuple, dict] = {}
    param_cols = [c for c in df.columns if c.startswith("params.")]
    for _, row in df.iterrows():
        if row.get("status", "ok") != "ok" or row.get("kind") in NOT_A_SPEED:
            continue
        if "metrics.ghz" in row and pd.notna(row.get("metrics.ghz")):
            continue
        threads = row.get("threads")
        if threads is None or pd.isna(threads):
            continue
        rate = None
        for name in ("metrics.flops_per_s", "metrics.bytes_per_s"):
            value = row.get(name)
            if value is not None and pd.notna(value) and value > 0:
                rate = float(value)
                break
        median = row.get("timing.median")
        if rate is None and median is not None and pd.notna(median) and median > 0:
            rate = 1.0 / float(median)  # calls per second: a speed for fixed work per call
        if rate is None:
            continue
        params = {c[len("params."):]: row[c] for c in param_cols if _present(row[c])}
        key = (row.get("kind"), json.dumps(params, sort_keys=True, default=str))
        label = re.sub(r",?\bt=\d+\b", "", str(row.get("case_id", key[0]))).replace("[]", "").replace("[,", "[")
        entry = groups.setdefault(key, {"label": label, "kind": row.get("kind"), "points": {}})
        entry["points"].setdefault(int(threads), rate)
    return {k: v for k, v in groups.items() if len(v["points"]) >= 2}


def _present(value) -> bool:
    if isinstance(value, (list, dict)):
        return True
    try:
        return not pd.isna(value)
    except (TypeError, ValueError):
        return True


def thread_scaling_plot(df, path, title: str = "Thread scaling") -> list[Path]:
    """Speed-up against threads for each case family that was run at several thread counts
    (records that differ only in threads), over its run with the fewest threads, with the
    ideal (linear) line. Speed is FLOP/s, else bytes/s, else calls per second."""
    from matplotlib.lines import Line2D

    frame = _as_frame(df)
    if frame.empty or "threads" not in frame.columns:
        return []
    groups = _scaling_groups(frame)
    if not groups:
        return []
    fig = figure(10, 6)
    ax = fig.add_axes([0.08, 0.1, 0.6, 0.82])
    all_threads = sorted({t for g in groups.values() for t in g["points"]})
    colours = family_colours([g["kind"] for g in groups.values()])
    many = len(groups) > 12
    top = 1.0
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    for i, g in enumerate(sorted(groups.values(), key=lambda g: g["label"])):
        threads = sorted(g["points"])
        base_t = threads[0]
        speedup = [g["points"][t] / g["points"][base_t] for t in threads]
        top = max(top, max(speedup))
        colour = colours[g["kind"]] if many else palette[i % len(palette)]
        ax.plot(threads, speedup, marker="o", color=colour, linewidth=1.0 if many else 1.6,
                label=None if many else g["label"], alpha=0.7 if many else 1.0)
    base = all_threads[0]
    ideal = [t / base for t in all_threads]
    ax.plot(all_threads, ideal, color="black", linestyle="--", linewidth=1.0, label="ideal (linear)")
    ax.set_xticks(all_threads)
    ax.set_xlabel("threads")
    ax.set_ylabel("speed-up over the fewest threads run")
    ax.set_ylim(0, max(top, max(ideal)) * 1.15)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_title(title)
    if many:
        handles = [Line2D([], [], color=c, marker="o", label=k) for k, c in sorted(colours.items())]
        handles.append(Line2D([], [], color="black", linestyle="--", label="ideal (linear)"))
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.7, 0.92), fontsize=8, frameon=False)
    else:
        fig.legend(loc="upper left", bbox_to_anchor=(0.7, 0.92), fontsize=8, frameon=False)
    return save(fig, path)


# --------------------------------------------------------------------------- comparison


VERDICT_COLOURS = {"slower": "#d62728", "faster": "#2ca02c", "same": "#7f7f7f", "unclear": "#e69f00"}


def comparison_plot(df, path, title: str = "Median time against the first run") -> list[Path]:
    """Ratio of each case's median to the first run's (log axis; > 1 = slower) with its 95%
    interval as a bar, one row per case, one marker shape per later run, coloured by verdict.

    df: compare_runs' DataFrame (columns case, run, run_index, ratio, ratio_low, ratio_high, verdict)."""
    from matplotlib.lines import Line2D

    frame = _as_frame(df)
    if frame.empty or "ratio" not in frame.columns:
        return []
    later = frame[(frame["run_index"] > 0) & frame["ratio"].notna() & (frame["ratio"] > 0)]
    if later.empty:
        return []
    cases = list(dict.fromkeys(later["case"]))
    runs = list(dict.fromkeys(later["run"]))
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    height = max(3.0, 0.32 * len(cases) + 1.6)
    fig = figure(10, height)
    # Margins in inches, so that the axis label and title fit however many cases there are.
    ax = fig.add_axes([0.3, 0.75 / height, 0.42, 1 - 1.2 / height])
    ax.set_xscale("log")
    position = {c: i for i, c in enumerate(reversed(cases))}
    lows, highs = [], []
    for k, run in enumerate(runs):
        sub = later[later["run"] == run]
        offset = (k - (len(runs) - 1) / 2) * 0.18
        for _, row in sub.iterrows():
            colour = VERDICT_COLOURS.get(str(row["verdict"]), "#1f77b4")
            y = position[row["case"]] + offset
            low, high = row.get("ratio_low"), row.get("ratio_high")
            if isinstance(low, float) and low == low and low > 0:
                ax.plot([low, high], [y, y], color=colour, linewidth=2.2, alpha=0.6, solid_capstyle="butt")
                lows.append(low)
                highs.append(high)
            ax.plot([row["ratio"]], [y], marker=markers[k % len(markers)],
                    color=colour, markeredgecolor="black", markeredgewidth=0.5, linestyle="", markersize=7)
            if len(runs) == 1:
                ax.annotate(f"×{row['ratio']:.3g}", (max(row["ratio"], high if high == high and high else 0), y),
                            xytext=(7, 0), textcoords="offset points", va="center", fontsize=7.5, color="#333333")
    ratios = list(later["ratio"].astype(float)) + lows + highs
    span = max(1.05, float(max(max(ratios), 1 / min(ratios))) * 1.4)  # room for the ratio text
    ax.set_xlim(1 / span, span)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(cases)))
    ax.set_yticklabels(list(reversed(cases)), fontsize=8)
    ax.set_ylim(-0.7, len(cases) - 0.3)
    # Round ratios, best first, each kept only where it does not crowd one already kept.
    ticks: list[float] = []
    min_gap = 2 * math.log10(span) / 7
    for t in (1.0, 2, 0.5, 10, 0.1, 5, 0.2, 1.25, 0.8, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98):
        if 1 / span <= t <= span and all(abs(math.log10(t / k)) >= min_gap for k in ticks):
            ticks.append(t)
    ax.set_xticks(sorted(ticks))
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel("median time / first run's median (> 1 = slower); bar: 95% interval")
    ax.set_title(title)
    ax.grid(True, axis="x", color="#dddddd", linewidth=0.6)
    handles = [Line2D([], [], linestyle="", marker="o", color=c, markeredgecolor="black", label=v)
               for v, c in VERDICT_COLOURS.items()]
    if len(runs) > 1:
        handles += [Line2D([], [], linestyle="", marker=markers[k % len(markers)], color="#555555", label=run)
                    for k, run in enumerate(runs)]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.74, 1 - 0.45 / height), fontsize=8,
               frameon=False)
    return save(fig, path)
