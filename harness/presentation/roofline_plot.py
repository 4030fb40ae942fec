"""The roofline plot: one panel per thread count, each drawing exactly the ceilings its points
were placed against (the run's frozen snapshot at that thread count), so the plot, the
table and the record never disagree.

Read as Intel Advisor's roofline is read: each point is one op, sized by its share of the
time (of its model, for a layer; of the panel's cases otherwise), coloured by backend or
framework, shaped by thread count; the ops that take the most time are labelled, and in the
SVG every point carries a hover title (case, time, efficiency, bound), so "which op is far
from the roof" is answered by looking.

Axes in decimal SI (1 GFLOP/s = 1e9 FLOP/s); intensity in FLOPs per byte.

matplotlib is imported inside functions (deferred on purpose, as in plots.py).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.analysis.roofline_fit import fit_roofline
from harness.core.text import cut, fmt_pct, fmt_si, fmt_time
from harness.presentation.plots import (BANDWIDTH_COLOURS, DTYPE_COLOURS, add_svg_titles, family_colours, figure,
                                        kind_family, plain_log_ticks, save)

# Marker per thread count, in the order the thread counts appear (1, 2, 4, ...).
THREAD_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# The ops taking the most time in each panel get a label on the plot (every point has a hover title).
LABELLED_POINTS = 8
# Marker area (points^2) of an op with no share of the time, and of one taking all of it.
MIN_AREA, MAX_AREA = 22.0, 700.0


@dataclass
class Line:
    """One ceiling drawn on a panel: compute (FLOP/s, flat) or bandwidth (bytes/s, slanted)."""

    kind: str
    label: str
    value: float
    dtype: str | None = None
    dashed: bool = False  # a nominal (datasheet) figure, not a measurement


@dataclass
class Panel:
    """The roofline of one thread count: its ceilings and the points placed against them.

    points: case_id, kind, intensity (FLOP/byte), flops_per_s, bound, peak_flops_per_s and
    bandwidth_bytes_per_s (the roof the point's record was placed against)."""

    threads: int | None
    lines: list[Line]
    points: list[dict]
    device: str = "cpu"

    @property
    def title(self) -> str:
        if self.device != "cpu":
            return f"{self.device}"
        return f"{self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else "all"


FRAMEWORKS = ("onnxruntime", "torch")


def point_group(record) -> str:
    """What a point is coloured by: its backend or framework (a model's or layer's kind names
    its framework: layer.onnxruntime), else the family of its kind."""
    params = record.params or {}
    suffix = record.kind.rpartition(".")[2]
    framework = {"eager": "torch", "compile": "torch.compile"}.get(params.get("framework"), params.get("framework"))
    return str(params.get("backend") or framework or (suffix if suffix in FRAMEWORKS else kind_family(record.kind)))


def point_name(record) -> str:
    """A short name for a label: a layer's own name, else the case id."""
    if record.kind.startswith("layer."):
        return str((record.params or {}).get("layer") or record.case_id.rsplit("/", 1)[-1])
    return record.case_id


def _point(record) -> dict | None:
    p = record.roofline
    if p is None or not p.intensity or not p.attained_flops_per_s:
        return None
    seconds = record.timing.median if record.timing else None
    where = f" in {p.level}" if p.bound.startswith("memory") and p.level else ""
    title = (f"{record.case_id}\n{fmt_time(seconds)} per call, {fmt_si(p.attained_flops_per_s, 'FLOP/s')}, "
             f"intensity {p.intensity:.3g} FLOP/B\n{fmt_pct(p.efficiency)} of its roof, {p.bound}{where}")
    return {"case_id": record.case_id, "kind": record.kind, "intensity": p.intensity,
            "flops_per_s": p.attained_flops_per_s, "bound": p.bound, "peak_flops_per_s": p.peak_flops_per_s,
            "bandwidth_bytes_per_s": p.bandwidth_bytes_per_s, "level": p.level, "dtype": p.ceiling_dtype,
            "seconds": seconds, "efficiency": p.efficiency, "source": p.source, "threads": record.threads,
            "group": point_group(record), "name": point_name(record), "title": title,
            "time_share": (record.info or {}).get("time_share")}


def _short_names(points: list[dict]) -> None:
    """Labels that say what differs: the thread count goes (the panel says it), and where every
    case of the panel has the same name before its parameters, only the parameters stay."""
    for p in points:
        p["name"] = re.sub(r"(\[t=\d+\]|,t=\d+(?=\]))", "", p["name"])
    heads = {p["name"].split("[", 1)[0] for p in points if "[" in p["name"]}
    if len(heads) == 1 and all("[" in p["name"] for p in points):
        for p in points:
            p["name"] = p["name"].split("[", 1)[1].rstrip("]")


def _shares(points: list[dict]) -> None:
    """Each point's share of the time: a layer's share of its model (as profiled), any other
    op's share of the panel's other ops' total."""
    total = sum(p["seconds"] or 0 for p in points if p["time_share"] is None)
    for p in points:
        share = p["time_share"] if p["time_share"] is not None else (p["seconds"] or 0) / total if total else 0
        p["share"] = min(max(float(share), 0.0), 1.0)


def roofline_panels(records, snap) -> list[Panel]:
    """One panel per (device, thread count) among the placed records: the points, and exactly
    the ceilings of that thread count in the snapshot they were placed against (every memory
    level measured there, the compute ceiling of each dtype the points use, the BLAS figure
    beside it, and the nominal peak dashed where a point was placed against it)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        point = _point(r)
        if point is not None:
            device = r.params.get("device") or "cpu"
            groups.setdefault((device, r.threads if device == "cpu" else None), []).append(point)
    panels = []
    for (device, threads), points in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        lines: list[Line] = []
        levels = [lvl for lvl, _ in snap.memory_levels(threads, device)]
        for level in levels:
            bw = snap.bandwidth(level, threads, device)
            if bw is not None:
                lines.append(Line("bandwidth", f"{level} {fmt_si(bw.value, 'B/s')}", bw.value))
        for dtype in sorted({p["dtype"] for p in points if p["dtype"]}):
            peak = snap.compute(dtype, threads, device)
            if peak is not None:
                lines.append(Line("compute", f"{dtype} {peak.name} {fmt_si(peak.value, 'FLOP/s')}", peak.value, dtype))
            blas = snap.blas(dtype, threads) if device == "cpu" else None
            if blas is not None:
                lines.append(Line("compute", f"{dtype} BLAS GEMM {fmt_si(blas.value, 'FLOP/s')}", blas.value, dtype,
                                  dashed=True))
            nominal = snap.nominal_peak(dtype, threads)
            if nominal and any(p["source"] != "measured" and p["dtype"] == dtype for p in points):
                lines.append(Line("compute", f"{dtype} nominal {fmt_si(nominal, 'FLOP/s')} (datasheet)", nominal,
                                  dtype, dashed=True))
        _shares(points)
        _short_names(points)
        panels.append(Panel(threads, lines, points, device))
    return panels


def roofline_plot(panels: list[Panel], path, title: str = "Roofline", fit: bool = True) -> list[Path]:
    """Log-log rooflines, one panel per thread count: each panel's ceilings drawn and labelled
    (bandwidth lines per memory level, compute lines per dtype; dashed: BLAS GEMM and nominal
    peaks, which no point is placed against unless it says datasheet), its points sized by
    their share of the time, coloured by backend or framework and shaped by thread count, the
    top ones labelled, and the ridge of its main roof marked. The SVG gives every point a
    hover title."""
    from matplotlib.lines import Line2D

    panels = [p for p in panels if p.points or p.lines]
    if not panels:
        return []
    n = len(panels)
    fig = figure(11, 5.6 * n if n > 1 else 6.5)
    groups = sorted({pt["group"] for p in panels for pt in p.points})
    colours = family_colours(groups)
    threads = sorted({pt["threads"] for p in panels for pt in p.points if pt["threads"] is not None})
    markers = {t: THREAD_MARKERS[i % len(THREAD_MARKERS)] for i, t in enumerate(threads)}
    height = 0.82 / n
    fits, titles = [], {}
    for i, panel in enumerate(panels):
        bottom = 0.08 + (n - 1 - i) * (0.9 / n)
        ax = fig.add_axes([0.08, bottom, 0.62, height - 0.06 / n])
        handle = _draw_panel(fig, ax, panel, colours, markers, fit, f"{title}: {panel.title}", titles, f"p{i}")
        if handle is not None:
            handle.set_label(f"{panel.title}: {handle.get_label()}")
            fits.append(handle)
    handles = [Line2D([], [], linestyle="", marker="o", markerfacecolor=colours[g], markeredgecolor="black",
                      markersize=7, label=g) for g in groups]
    handles += [Line2D([], [], linestyle="", marker=markers[t], color="#777777", markersize=7,
                       label=f"{t} thread{'s' if t != 1 else ''}") for t in threads]
    handles += [Line2D([], [], linestyle="", marker="o", color="#bbbbbb", markeredgecolor="black",
                       markersize=math.sqrt(_area(share)), label=f"{fmt_pct(share)} of the time")
                for share in (0.05, 0.5)]
    handles += [Line2D([], [], color="#555555", label="measured ceiling"),
                Line2D([], [], color="#555555", linestyle="--", label="BLAS GEMM / nominal (datasheet)"),
                Line2D([], [], linestyle="", marker="D", color="#d62728", label="ridge point"), *fits]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.715, 0.95), fontsize=8, frameon=False,
               title="colour: backend or framework\nshape: threads; size: share of the time",
               title_fontsize=8, alignment="left", labelspacing=0.9)
    written = save(fig, path)
    for out in written:
        if out.suffix == ".svg":
            add_svg_titles(out, titles)
    return written


def _area(share: float) -> float:
    return MIN_AREA + (MAX_AREA - MIN_AREA) * share


def _draw_panel(fig, ax, panel: Panel, colours: dict, markers: dict, fit: bool, title: str, titles: dict,
                prefix: str):
    """Draws one panel; returns the legend handle of its fitted roof, if one was drawn. Each
    point's hover text goes into `titles` under the SVG id its marker is drawn with."""
    px = np.array([p["intensity"] for p in panel.points], dtype=float)
    py = np.array([p["flops_per_s"] for p in panel.points], dtype=float)
    compute = [l for l in panel.lines if l.kind == "compute"]
    bandwidth = [l for l in panel.lines if l.kind == "bandwidth"]
    solid = [l for l in compute if not l.dashed] or compute
    main_peak = max((l.value for l in solid), default=None)
    slowest = min((l.value for l in bandwidth), default=None)
    ridge = main_peak / slowest if main_peak and slowest else None
    xs = list(px) + ([ridge] if ridge else []) + [c.value / b.value for c in solid for b in bandwidth]
    xs = xs or [0.1, 100.0]
    xmin, xmax = min(xs) / 8, max(xs) * 8
    tops = [l.value for l in compute] + list(py)
    ymax = max(tops) * 3 if tops else 1e12
    lows = list(py) + [l.value * xmin for l in bandwidth] + [l.value for l in compute]
    ymin = max(min(lows) / 3, ymax / 1e7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin / 1e9, ymax / 1e9)
    plain_log_ticks(ax.xaxis)
    plain_log_ticks(ax.yaxis)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("GFLOP/s (1e9 FLOP/s)")
    ax.set_title(title, fontsize=10)
    labels = []
    for i, line in enumerate(sorted(bandwidth, key=lambda l: -l.value)):
        colour = BANDWIDTH_COLOURS[i % len(BANDWIDTH_COLOURS)]
        end = min(main_peak / line.value, xmax) if main_peak else xmax
        grid = np.geomspace(xmin, end, 50)
        ax.plot(grid, grid * line.value / 1e9, color=colour, linewidth=1.6)
        labels.append((xmin * 1.6, xmin * 1.6 * line.value, line.label, colour, "slope", "left"))
    fastest = max((l.value for l in bandwidth), default=None)
    for line in sorted(compute, key=lambda l: l.value):
        start = max(line.value / fastest if fastest and not line.dashed else xmin, xmin)
        colour = DTYPE_COLOURS.get(line.dtype, "#555555")
        ax.plot([start, xmax], [line.value / 1e9] * 2, color=colour, linewidth=1.2 if line.dashed else 1.6,
                linestyle="--" if line.dashed else "-", alpha=0.75 if line.dashed else 1.0)
        labels.append((xmax / 1.15, line.value, line.label, colour, 0.0, "right"))
    if ridge:
        ax.plot([ridge], [main_peak / 1e9], marker="D", color="#d62728", markersize=7, zorder=5)
        ax.axvline(ridge, color="#d62728", linewidth=0.8, linestyle=":", zorder=1)
        ax.annotate(f"ridge {ridge:.3g} FLOP/B", (ridge, ymin / 1e9), xytext=(3, 4), textcoords="offset points",
                    fontsize=8, color="#d62728", rotation=90, ha="left", va="bottom")
    # Largest first, so that a small point is drawn over a large one and stays visible.
    for k, point in sorted(enumerate(panel.points), key=lambda kp: -kp[1]["share"]):
        gid = f"roofline-{prefix}-{k}"
        dot = ax.scatter([point["intensity"]], [point["flops_per_s"] / 1e9], c=[colours[point["group"]]],
                         marker=markers.get(point["threads"], "o"), s=_area(point["share"]), edgecolors="black",
                         linewidths=0.5, zorder=4, alpha=0.85)
        dot.set_gid(gid)
        titles[gid] = point["title"]
    handle = None
    if fit and px.size >= 8 and np.unique(px).size >= 2:
        handle = _draw_fit(ax, px, py, xmin, xmax, ridge)
    placed = _place_labels(fig, ax, labels)
    _label_points(fig, ax, panel.points, placed)
    return handle


def _label_points(fig, ax, points: list[dict], taken: list) -> None:
    """Names the LABELLED_POINTS ops with the largest share of the time beside their points,
    each at the first of a few offsets where it overlaps no label already placed and stays
    inside the axes; an op with no free spot is left to its hover title."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    top = sorted((p for p in points if p["share"] > 0), key=lambda p: -p["share"])[:LABELLED_POINTS]
    for point in top:
        text = f"{cut(point['name'], 34)} ({fmt_pct(point['share'], 2)})"
        r = math.sqrt(_area(point["share"])) / 2 + 2  # clear of the marker, in points
        offsets = [(r, r / 2, "left", "bottom"), (r, -r / 2, "left", "top"), (-r, r / 2, "right", "bottom"),
                   (-r, -r / 2, "right", "top"), (0, r + 2, "center", "bottom"), (0, -r - 2, "center", "top"),
                   (r + 8, r + 10, "left", "bottom"), (-r - 8, -r - 10, "right", "top")]
        for dx, dy, ha, va in offsets:
            label = ax.annotate(text, (point["intensity"], point["flops_per_s"] / 1e9), xytext=(dx, dy),
                                textcoords="offset points", fontsize=7, ha=ha, va=va, color="#111111",
                                zorder=6, bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.2})
            box = label.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            label.remove()


def _draw_fit(ax, px, py, xmin, xmax, ridge):
    """Draws the roof fitted to the points, or nothing where a one-sided fit contradicts the
    ceilings: ops that do not reach the roof (unlike probe sweeps) on both sides of the
    ridge can look like one flat roof, and a line through them would mislead."""
    from matplotlib.lines import Line2D

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
        text = f"fitted roof: {fmt_si(fit.B, 'B/s')}, {fmt_si(fit.P, 'FLOP/s')}"
    elif fit.model == "memory":
        grid = grid[grid <= px.max() * 2]
        roof = grid * fit.B
        text = f"fitted roof: {fmt_si(fit.B, 'B/s')} (peak not reached)"
    else:
        grid = grid[grid >= px.min() / 2]
        roof = np.full_like(grid, fit.P)
        text = f"fitted roof: {fmt_si(fit.P, 'FLOP/s')} (bandwidth not reached)"
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
    return placed
