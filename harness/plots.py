"""Plots for reports and comparisons: the roofline, measured against theoretical time, the
throttle heat map, thread scaling and the ratio plot of a comparison.

Every function writes PATH.png and PATH.svg and returns the paths written; with nothing
to draw it writes nothing and returns [], so a report never fails for want of a plot.
Figures are built on matplotlib's object API with the Agg canvas, never pyplot: no
display is needed and no global state is left behind.

Axes are in decimal SI units (1 GFLOP/s = 1e9 FLOP/s, 1 GB/s = 1e9 bytes/s); intensity is
FLOPs per byte.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

# Bound markers: the shape says which side of the ridge a point is on.
BOUND_MARKERS = {"compute": "o", "memory": "^", "unknown": "s"}
BANDWIDTH_COLOURS = ["#08306b", "#2171b5", "#4292c6", "#6baed6", "#9ecae1"]
DTYPE_COLOURS = {"float32": "#222222", "float64": "#8c510a"}
# Kinds whose timing is not a speed (a clock probe's call lasts a set time): no scaling plot.
NOT_A_SPEED = ("probe.throttle", "probe.frequency")


def kind_family(kind) -> str:
    """The part of a kind before the first '.', or the kind itself: probe, conv, model, ..."""
    if not isinstance(kind, str) or not kind:
        return "other"
    return kind.split(".", 1)[0]


def _figure(width: float = 10.0, height: float = 6.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> list[Path]:
    base = Path(path)
    if base.suffix.lower() in (".png", ".svg"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in ("png", "svg"):
        out = base.with_name(base.name + "." + fmt)
        fig.savefig(out, format=fmt, dpi=110)
        written.append(out)
    return written


def _family_colours(families) -> dict:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return {fam: palette[i % len(palette)] for i, fam in enumerate(sorted(set(families)))}


def _plain_log_ticks(axis) -> None:
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
    """A DataFrame from a DataFrame, a list of records, or None."""
    import pandas as pd

    if data is None:
        return pd.DataFrame()
    if isinstance(data, pd.DataFrame):
        return data
    data = list(data)
    if not data:
        return pd.DataFrame()
    return pd.json_normalize(data, sep=".")


def _bound_key(bound) -> str:
    if isinstance(bound, str):
        if "unknown" in bound:  # e.g. "compute (bandwidth unknown)": only half a roof to judge by
            return "unknown"
        if bound.startswith("compute"):
            return "compute"
        if bound.startswith("memory"):
            return "memory"
    return "unknown"


# --------------------------------------------------------------------------- roofline


def roofline_points(records) -> "object":
    """The DataFrame roofline_plot wants, from records: intensity (FLOP/byte), flops_per_s,
    kind, bound, case_id; one row per ok record that counted both FLOPs and bytes."""
    import pandas as pd

    rows = []
    for r in records or []:
        cost, metrics, roof = r.get("cost") or {}, r.get("metrics") or {}, r.get("roofline") or {}
        intensity = roof.get("intensity") or cost.get("intensity")
        rate = roof.get("attained_flops_per_s") or metrics.get("flops_per_s")
        if r.get("status") != "ok" or not intensity or not rate:
            continue
        rows.append({"case_id": r.get("case_id"), "kind": r.get("kind"), "intensity": intensity,
                     "flops_per_s": rate, "bound": roof.get("bound")})
    return pd.DataFrame(rows, columns=["case_id", "kind", "intensity", "flops_per_s", "bound"])


def roofline_plot(roofline, points_df, path, title: str = "Roofline", fit: bool = True) -> list[Path]:
    """Log-log roofline: every ceiling of `roofline` drawn and labelled (bandwidth lines per
    memory level, compute lines per dtype and ISA level, theoretical peaks dashed), the
    measured points coloured by kind family and shaped by bound (o compute, ^ memory), the
    ridge point of the main roof marked, and the roof fitted to the points (fit_roofline)
    when there are at least 8 of them at 2 or more intensities.

    points_df columns: intensity (FLOP/byte), flops_per_s, kind, bound (optional), or the
    same fields in load_run's dotted names (cost.intensity, metrics.flops_per_s, roofline.bound).
    """
    from matplotlib.lines import Line2D

    df = _as_frame(points_df)
    x = _column(df, ["intensity", "roofline.intensity", "cost.intensity"])
    y = _column(df, ["flops_per_s", "attained_flops_per_s", "roofline.attained_flops_per_s",
                     "metrics.flops_per_s"])
    if x is not None and y is not None:
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    else:
        x = y = np.array([])
        keep = np.zeros(0, bool)
    kinds = _column(df, ["kind"])
    kinds = list(kinds) if kinds is not None else ["other"] * len(keep)
    bounds = _column(df, ["bound", "roofline.bound"])
    bounds = list(bounds) if bounds is not None else [None] * len(keep)
    px, py = x[keep], y[keep]
    pkind = [kind_family(k) for k, ok in zip(kinds, keep) if ok]
    pbound = [_bound_key(b) for b, ok in zip(bounds, keep) if ok]

    ceilings = list(getattr(roofline, "ceilings", None) or [])
    compute = [c for c in ceilings if c.kind == "compute" and c.value > 0]
    bandwidth = [c for c in ceilings if c.kind == "bandwidth" and c.value > 0]
    # Only the dtypes the points were measured in (float32 when they say none): ten ISA x
    # dtype lines over one dtype's points hide the points and tell nothing about them.
    dtypes = _column(df, ["dtype", "roofline.ceiling_dtype", "params.dtype"])
    wanted = {d for d, ok in zip(dtypes, keep) if ok and isinstance(d, str)} if dtypes is not None else set()
    wanted = wanted or {"float32"}
    if any(c.dtype in wanted for c in compute):
        compute = [c for c in compute if c.dtype in wanted or c.dtype is None]
    if not compute and not bandwidth and px.size == 0:
        return []

    measured_compute = [c for c in compute if not c.theoretical] or compute
    p_top = max((c.value for c in measured_compute), default=None)
    b_top = max((c.value for c in bandwidth), default=None)
    # The main roof: the best measured float32 peak (else any dtype) over the DRAM line
    # (else the slowest level listed): the ridge a whole-memory op meets.
    main_peak = max((c.value for c in measured_compute if c.dtype in ("float32", None)), default=p_top)
    dram = [c for c in bandwidth if c.name == "DRAM"] or bandwidth[-1:]
    main_bw = dram[0].value if dram else None
    ridge = main_peak / main_bw if main_peak and main_bw else None

    # Axis ranges: every point, every ridge, with room either side.
    xs = list(px)
    if ridge:
        xs.append(ridge)
    for c in bandwidth:
        for p in measured_compute:
            xs.append(p.value / c.value)
    if not xs:
        xs = [0.1, 100.0]
    xmin, xmax = min(xs) / 8, max(xs) * 8
    tops = [c.value for c in compute] + list(py)
    ymax = max(tops) * 3 if tops else 1e12
    lows = list(py) + [c.value * xmin for c in bandwidth] + [c.value for c in compute]
    ymin = max(min(lows) / 3, ymax / 1e7)

    fig = _figure(11, 6.5)
    ax = fig.add_axes([0.08, 0.1, 0.62, 0.82])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin / 1e9, ymax / 1e9)
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("attained performance (GFLOP/s, 1 GFLOP/s = 1e9 FLOP/s)")
    ax.set_title(title)

    labels = []  # (x, y in data units, text, colour, rotation, ha)
    for i, c in enumerate(bandwidth):
        colour = BANDWIDTH_COLOURS[i % len(BANDWIDTH_COLOURS)]
        end = min(p_top / c.value, xmax) if p_top else xmax
        grid = np.geomspace(xmin, end, 50)
        ax.plot(grid, grid * c.value / 1e9, color=colour, linewidth=1.6)
        threads = f", {c.threads} thr" if c.threads else ""
        labels.append((xmin * 1.6, xmin * 1.6 * c.value, f"{c.label}{threads}", colour, "slope", "left"))
    for c in sorted(compute, key=lambda c: c.value):
        start = c.value / b_top if b_top and not c.theoretical else xmin
        start = max(start, xmin)
        colour = DTYPE_COLOURS.get(c.dtype, "#555555")
        ax.plot([start, xmax], [c.value / 1e9] * 2, color=colour, linewidth=1.2 if c.theoretical else 1.6,
                linestyle="--" if c.theoretical else "-", alpha=0.75 if c.theoretical else 1.0)
        threads = f", {c.threads} thr" if c.threads else ""
        text = c.label.replace("theoretical", "datasheet") + threads
        labels.append((xmax / 1.15, c.value, text, colour, 0.0, "right"))

    if ridge:
        ax.plot([ridge], [main_peak / 1e9], marker="D", color="#d62728", markersize=7, zorder=5)
        ax.axvline(ridge, color="#d62728", linewidth=0.8, linestyle=":", zorder=1)
        # Written up the dotted line from the bottom, where no ceiling label lies.
        ax.annotate(f"ridge {ridge:.3g} FLOP/B", (ridge, ymin / 1e9), xytext=(3, 4),
                    textcoords="offset points", fontsize=8, color="#d62728", rotation=90,
                    ha="left", va="bottom")

    colours = _family_colours(pkind)
    for fam in sorted(set(pkind)):
        for bound, marker in BOUND_MARKERS.items():
            pick = [i for i, (f, b) in enumerate(zip(pkind, pbound)) if f == fam and b == bound]
            if pick:
                ax.scatter(px[pick], py[pick] / 1e9, c=[colours[fam]], marker=marker, s=42,
                           edgecolors="black", linewidths=0.5, zorder=4, alpha=0.9)

    fit_handle = None
    if fit and px.size >= 8 and np.unique(px).size >= 2:
        fit_handle = _draw_fit(ax, px, py, xmin, xmax, ridge)

    _place_labels(fig, ax, labels)

    kinds_legend = [Line2D([], [], linestyle="", marker="o", markerfacecolor=colours[f], markeredgecolor="black",
                           markersize=7, label=f) for f in sorted(colours)]
    if kinds_legend:
        first = fig.legend(handles=kinds_legend, loc="upper left", bbox_to_anchor=(0.715, 0.92), fontsize=8,
                           frameon=False, title="kind (colour)", title_fontsize=8, alignment="left")
        fig.add_artist(first)
    shapes = {"compute": "compute-bound", "memory": "memory-bound", "unknown": "bound unknown (no bandwidth)"}
    handles = [Line2D([], [], linestyle="", marker=m, color="#777777", markersize=7,
                      label=shapes[b]) for b, m in BOUND_MARKERS.items() if b in pbound]
    handles += [Line2D([], [], color="#555555", label="measured ceiling"),
                Line2D([], [], color="#555555", linestyle="--", label="datasheet peak")]
    if ridge:
        handles.append(Line2D([], [], linestyle="", marker="D", color="#d62728", label="ridge point"))
    if fit_handle is not None:
        handles.append(fit_handle)
    top = 0.92 - 0.035 * (len(kinds_legend) + 1.5) if kinds_legend else 0.92
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.715, top), fontsize=8,
               frameon=False, title="shape and lines", title_fontsize=8, alignment="left")
    return _save(fig, path)


def _draw_fit(ax, px, py, xmin, xmax, ridge):
    """Draws the roof fitted to the points, or nothing where a one-sided fit contradicts the
    ceilings: ops that do not reach the roof (unlike probe sweeps) on both sides of the
    ridge can look like one flat roof, and a line through them would mislead."""
    from matplotlib.lines import Line2D

    from harness.roofline import fit_roofline

    try:
        fit = fit_roofline(px, py, n_boot=0)
    except ValueError:
        return None
    if ridge and fit.model == "memory" and px.max() > ridge:
        return None
    if ridge and fit.model == "compute" and px.min() < ridge:
        return None
    grid = np.geomspace(xmin, xmax, 200)
    if fit.model == "both":
        roof = np.minimum(grid * fit.B, fit.P)
        text = f"fitted roof: {fit.B / 1e9:.3g} GB/s, {fit.P / 1e9:.3g} GFLOP/s"
    elif fit.model == "memory":
        grid = grid[grid <= px.max() * 2]
        roof = grid * fit.B
        text = f"fitted roof: {fit.B / 1e9:.3g} GB/s (peak not reached)"
    else:
        grid = grid[grid >= px.min() / 2]
        roof = np.full_like(grid, fit.P)
        text = f"fitted roof: {fit.P / 1e9:.3g} GFLOP/s (bandwidth not reached)"
    ax.plot(grid, roof / 1e9, color="#ff7f0e", linestyle=(0, (1, 1.5)), linewidth=2, zorder=3)
    return Line2D([], [], color="#ff7f0e", linestyle=(0, (1, 1.5)), linewidth=2, label=text)


def _place_labels(fig, ax, labels) -> None:
    """Writes each ceiling label just above its own line; where two would overlap, the later
    one slides along its line (leftwards for the peaks, whose labels sit at the right end;
    up the slope for the bandwidths) rather than off it, so every label stays on its line.
    Bandwidth labels are turned to the slope the line has on screen."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_screen, to_data = ax.transData, ax.transData.inverted()
    placed = []
    for x, y, text, colour, rotation, ha in sorted(labels, key=lambda lab: (lab[5], lab[1])):
        slope = rotation == "slope"
        if slope:
            x0, y0 = to_screen.transform((x, y / 1e9))
            x1, y1 = to_screen.transform((x * 10, y * 10 / 1e9))
            rotation = math.degrees(math.atan2(y1 - y0, x1 - x0))
        label = ax.annotate(text, (x, y / 1e9), xytext=(0, 2), textcoords="offset points", fontsize=7.5,
                            color=colour, rotation=rotation, ha=ha, va="bottom", rotation_mode="anchor",
                            annotation_clip=False,
                            bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.3})
        for _ in range(8):
            box = label.get_window_extent(renderer)
            clash = next((other for other in placed if box.overlaps(other)), None)
            if clash is None:
                break
            sx, sy = to_screen.transform(label.xy)
            if slope:  # along the line, to the right by the overlap
                step = clash.x1 - box.x0 + 6
                nx, _ = to_data.transform((sx + step, sy))
                label.xy = (nx, label.xy[1] * nx / label.xy[0])
            else:  # along the horizontal line, to the left of the label in the way
                step = box.x1 - clash.x0 + 6
                nx, _ = to_data.transform((sx - step, sy))
                label.xy = (nx, label.xy[1])
        placed.append(label.get_window_extent(renderer))


# --------------------------------------------------------------------------- measured vs theoretical


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
    fig = _figure(10, 6.5)
    ax = fig.add_axes([0.1, 0.1, 0.62, 0.82])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    grid = np.geomspace(lo, hi, 50)
    bands = [(1.0, 0.5, "#c7e9c0"), (0.5, 0.1, "#fff3b0"), (0.1, 0.01, "#fdd0a2"), (0.01, 1e-9, "#fcbba1")]
    for top, bottom, colour in bands:
        ax.fill_between(grid, grid / top, np.minimum(grid / bottom, hi * 10), color=colour, linewidth=0, zorder=0)
    ax.fill_between(grid, lo / 10, grid, color="#e0e0e0", linewidth=0, zorder=0)
    ax.plot(grid, grid, color="black", linewidth=1.2, zorder=2)
    for eff in (0.5, 0.1, 0.01):
        ax.plot(grid, grid / eff, color="#777777", linewidth=0.7, linestyle="--", zorder=2)
    ax.grid(True, which="major", color="#ffffff", linewidth=0.6, zorder=1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _time_tick(v)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _time_tick(v)))
    ax.set_xlabel("roofline (theoretical) time per call")
    ax.set_ylabel("measured median time per call")
    ax.set_title(title)

    colours = _family_colours(fams)
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
    return _save(fig, path)


def _time_tick(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale * 0.999:
            return f"{seconds / scale:g} {unit}"
    return f"{seconds / 1e-9:g} ns"


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
    fig = _figure(max(6.0, 1.6 * cols + 2.5), max(3.0, 0.6 * rows + 2.0))
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
    return _save(fig, path)


# --------------------------------------------------------------------------- thread scaling


def _scaling_groups(df) -> dict:
    """(label) -> sorted [(threads, rate)] for records that differ only in threads."""
    import pandas as pd

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
        import pandas as pd

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
    fig = _figure(10, 6)
    ax = fig.add_axes([0.08, 0.1, 0.6, 0.82])
    all_threads = sorted({t for g in groups.values() for t in g["points"]})
    colours = _family_colours([g["kind"] for g in groups.values()])
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
    return _save(fig, path)


# --------------------------------------------------------------------------- comparison


VERDICT_COLOURS = {"slower": "#d62728", "faster": "#2ca02c", "same": "#7f7f7f",
                   "no significant difference": "#7f7f7f"}


def comparison_plot(df, path, title: str = "Median time against the first run") -> list[Path]:
    """Ratio of each case's median to the first run's (log axis; > 1 = slower), one row per
    case, one marker shape per later run, coloured by the verdict of the Mann-Whitney test.

    df: compare_runs' DataFrame (columns case, run, run_index, ratio, verdict)."""
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
    fig = _figure(10, height)
    # Margins in inches, so that the axis label and title fit however many cases there are.
    ax = fig.add_axes([0.3, 0.75 / height, 0.42, 1 - 1.2 / height])
    ax.set_xscale("log")
    position = {c: i for i, c in enumerate(reversed(cases))}
    for k, run in enumerate(runs):
        sub = later[later["run"] == run]
        for _, row in sub.iterrows():
            verdict = str(row["verdict"])
            colour = VERDICT_COLOURS.get(verdict.split(" ")[0] if verdict.startswith("same") else verdict, "#1f77b4")
            y = position[row["case"]]
            ax.plot([row["ratio"]], [y], marker=markers[k % len(markers)],
                    color=colour, markeredgecolor="black", markeredgewidth=0.5, linestyle="", markersize=7)
            if len(runs) == 1:
                ax.annotate(f"×{row['ratio']:.3g}", (row["ratio"], y), xytext=(7, 0), textcoords="offset points",
                            va="center", fontsize=7.5, color="#333333")
    ratios = later["ratio"].astype(float)
    span = max(1.05, float(max(ratios.max(), 1 / ratios.min())) * 1.4)  # room for the ratio text
    ax.set_xlim(1 / span, span)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.axvspan(0.99, 1.01, color="#eeeeee", zorder=0)
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
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("median time / first run's median (> 1 = slower)")
    ax.set_title(title)
    ax.grid(True, axis="x", color="#dddddd", linewidth=0.6)
    handles = [Line2D([], [], linestyle="", marker="o", color=c, markeredgecolor="black", label=v)
               for v, c in (("slower", VERDICT_COLOURS["slower"]), ("faster", VERDICT_COLOURS["faster"]),
                            ("same / no significant difference", "#7f7f7f"))]
    if len(runs) > 1:
        handles += [Line2D([], [], linestyle="", marker=markers[k % len(markers)], color="#555555", label=run)
                    for k, run in enumerate(runs)]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.74, 1 - 0.45 / height), fontsize=8,
               frameon=False)
    return _save(fig, path)
