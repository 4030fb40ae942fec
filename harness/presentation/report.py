"""`harness report RUN`: one stored run as a single-file HTML report and a Markdown twin.

report.html embeds its plots, so it can be mailed or archived alone; report.md links the
same plots as files under RUN/plots/. Both hold the same sections: the device, the
conditions and warnings, the ceilings the run was placed against (its frozen profile
snapshot) beside the nominal peaks, where the time goes, the plots (the roofline per thread
count, measured against roofline time, throttle heat map, thread scaling), every case, and
the failed and skipped cases with their reasons.

A report reads only the run folder: its records (each placed as it arrived), its manifest
and its snapshot (RUN/profile.json), so writing it again gives the same report but for the
line that says when it was written. Efficiency is roofline time / measured median: 100% is
on the roof. Units are decimal SI: 1 GB = 1e9 bytes, 1 GFLOP/s = 1e9 FLOP/s.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from harness.analysis import snapshot as snapshots
from harness.analysis.placement import place
from harness.analysis.snapshot import Snapshot
from harness.core.errors import UsageError
from harness.core.records import Manifest, Record, final
from harness.core.store import load_manifest, load_records, resolve_run
from harness.presentation import plots
from harness.presentation.advice import group_warnings, where
from harness.presentation.console import figure_of
from harness.presentation.document import h2, plot_blocks, render_html, render_markdown, table
from harness.presentation.prediction_text import prediction_blocks
from harness.presentation.report_content import conv_blocks, model_blocks, probe_blocks, throttle_blocks
from harness.presentation.roofline_plot import roofline_panels, roofline_plot
from harness.core.text import fmt_bytes_binary, fmt_pct, fmt_si, fmt_time, plural

TOP_OPS = 15
TERMS = ("Terms: FLOP/s = floating-point operations per second (a multiply-add counts 2 FLOPs); intensity = FLOPs "
         "per byte moved (every tensor once); ceiling = a measured peak (FLOP/s, or bandwidth per memory level) that "
         "ops are judged against; roofline time = max(FLOPs / peak, bytes / bandwidth); efficiency or '% of roof' = "
         "roofline time / measured median (100% = on the roof); CV = coefficient of variation of the samples; "
         "suspect = measured and kept, but past a documented limit of noise, load, steal or clock movement; ISA "
         "level = the widest vector instructions used (sse 128-bit, avx2 256-bit, avx512 512-bit). Units are "
         "decimal SI (1 GB = 1e9 bytes); KiB and MiB (1024-based) only for caches, labelled.")
# Kinds that are not ops: their time is a probe's set duration or the timer itself.
NOT_OPS = ("probe.throttle", "probe.frequency")


def placed(records: list[Record], snap: Snapshot) -> list[Record]:
    """Every record with its placement: its own (set as it arrived), else placed now against the
    run's snapshot by the same function (a record stored before placement existed)."""
    out = []
    for r in records:
        if r.roofline is None and r.measured:
            r = r.with_(roofline=place(r, snap))
        out.append(r)
    return out


# --------------------------------------------------------------------------- sections

def _device_section(manifest: Manifest) -> list:
    fp = manifest.fingerprint or {}
    cpu = fp.get("cpu") or {}
    if not fp:
        return [h2("Device"), ("p", "The manifest holds no fingerprint.")]
    rows = [["CPU", f"{cpu.get('model')} ({cpu.get('vendor')}, family {cpu.get('family')} model "
                    f"{cpu.get('model_number')}, microarchitecture {cpu.get('uarch') or 'unknown'})"],
            ["Cores", f"{cpu.get('physical_cores')} physical, {cpu.get('logical_cpus')} logical; "
                      f"the run could use CPUs {cpu.get('available_cpus')}"],
            ["ISA levels", ", ".join(cpu.get("usable_levels") or []) + " (usable for FMA work); flags: "
             + "; ".join(f"{lvl}: {' '.join(f)}" for lvl, f in (cpu.get("isa_levels") or {}).items())]]
    caches = [f"L{c.get('level')} {(c.get('type') or '').lower()} {fmt_bytes_binary(c.get('size_bytes'))}"
              f" (CPUs {c.get('shared_cpu_list')})" for c in cpu.get("caches") or []]
    rows.append(["Caches (per cpu0)", ", ".join(caches) or "not reported"])
    mem = fp.get("memory") or {}
    if mem:
        limit = mem.get("cgroup_limit_bytes")
        rows.append(["Memory", f"{fmt_si(mem.get('total_bytes'), 'B')} total, "
                               f"{fmt_si(mem.get('available_bytes'), 'B')} available at the start"
                     + (f", cgroup limit {fmt_si(limit, 'B')}" if limit else "")])
    osinfo = fp.get("os") or {}
    if osinfo:
        rows.append(["OS", f"{osinfo.get('distribution') or osinfo.get('system')}, kernel {osinfo.get('release')}"])
    vm = fp.get("vm") or {}
    rows.append(["VM", f"yes: {vm.get('note')}" if vm.get("hypervisor") else "no hypervisor flag"])
    if fp.get("gpus"):
        rows.append(["GPUs", ", ".join(f"{g.get('name')} ({fmt_si(g.get('memory_bytes'), 'B')})" for g in fp["gpus"])])
    versions = fp.get("versions") or {}
    if versions:
        rows.append(["Libraries", ", ".join(f"{k} {v}" for k, v in versions.items() if v)])
    blas = fp.get("blas") or []
    if blas:
        rows.append(["BLAS", "; ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
                                       f"{b.get('num_threads')} threads)" for b in blas)])
    return [h2("Device"), table(None, rows)]


def _conditions_section(manifest: Manifest, records: list[Record]) -> list:
    blocks = [h2("Conditions and warnings")]
    state = (manifest.fingerprint or {}).get("machine_state") or {}
    if state:
        facts = [f"governors: {state.get('governors') or 'not exposed'}",
                 f"turbo: {state.get('turbo') if state.get('turbo') is not None else 'not exposed'}",
                 f"isolated CPUs: {state.get('isolated_cpus') or 'none'}",
                 f"CPUs with SMT siblings: {state.get('cpus_with_smt_siblings') or 'none'}",
                 f"transparent huge pages: {state.get('transparent_hugepages')}"]
        blocks.append(("p", "Machine state at the start: " + "; ".join(facts) + "."))
    steal = [r.faults.steal_fraction for r in records if r.faults is not None]
    load = [r.conditions.others_percent for r in records if r.conditions is not None]
    facts = []
    if steal:
        facts.append(f"hypervisor steal: at most {100 * max(steal):.1f}% of a timed region")
    if load:
        facts.append(f"load from other processes on the pinned CPUs: at most {max(load):.0f}%")
    if facts:
        blocks.append(("p", "During the run: " + "; ".join(facts) + "."))
    suspect = [r for r in records if r.status == "suspect"]
    if suspect:
        blocks.append(("p", f"{plural(len(suspect), 'suspect case')}: measured and kept, but past a documented "
                            "limit (the fix for each reason is in the table below):"))
        blocks.append(("list", [f"{r.case_id}: {'; '.join(r.suspect_reasons)}" for r in suspect]))
    groups = group_warnings(records, manifest.warnings)
    if not groups:
        blocks.append(("p", f"No case carries a warning ({len(records)} cases)."))
        return blocks
    with_warnings = sum(1 for r in records if r.warnings or r.suspect_reasons)
    blocks.append(("p", f"Warnings and suspect reasons on {with_warnings} of {len(records)} cases and on the "
                        "machine, by topic: what each means, the cases it touched, an example, and the fix."))
    rows = [[g.topic.name, g.topic.meaning if g.topic.name != "other" else "", where(g, 6), g.examples[0],
             g.topic.action] for g in groups]
    blocks.append(table(["topic", "what it means", "where", "example", "fix"], rows, small={2, 3}))
    return blocks


def _ceilings_section(snap: Snapshot) -> list:
    blocks = [h2("Ceilings this run was placed against")]
    blocks.append(("note", f"The profile snapshot frozen into this run (profile.json), taken from "
                           f"{snap.profile_path or 'no device profile'}; {snap.rule}."))
    rows = []
    for c in sorted((c for c in snap.ceilings if c.kind == "compute"),
                    key=lambda c: (c.device, str(c.dtype), c.name, c.threads or 0)):
        nominal = snap.nominal_peak(c.dtype, c.threads) if c.device == "cpu" else None
        rows.append([c.device, c.dtype, c.name, c.threads or "", fmt_si(c.value, "FLOP/s"),
                     fmt_si(c.median, "FLOP/s"), fmt_si(nominal, "FLOP/s"), fmt_pct(c.value / nominal) if nominal else "",
                     c.source, c.run_id or ""])
    if rows:
        blocks.append(("p", "Compute ceilings: the best repetition, the median beside it, and the nominal peak "
                            "for the same cores (cores x GHz from the OS x FLOP/cycle from the "
                            "microarchitecture table; what the datasheet arithmetic gives)."))
        blocks.append(table(["device", "dtype", "level", "threads", "best", "median", "nominal", "best / nominal",
                             "source", "run"], rows, numeric={3, 4, 5, 6, 7}, small={8, 9}))
    else:
        blocks.append(("p", "No compute ceiling was measured: ops are placed against the nominal peak, labelled "
                            "'datasheet'. `harness probe --quick` measures them."))
    order = {"L1": 0, "L2": 1, "L3": 2, "DRAM": 3}
    rows = [[c.device, c.name, c.threads or "", fmt_si(c.value, "B/s"), fmt_si(c.median, "B/s"), c.source,
             c.run_id or ""]
            for c in sorted((c for c in snap.ceilings if c.kind == "bandwidth"),
                            key=lambda c: (c.device, c.threads or 0, order.get(c.name, 9), c.name))]
    if rows:
        blocks.append(("p", "Bandwidth ceilings per memory level (1 GB/s = 1e9 bytes/s); a memory-bound op is "
                            "placed against the level its working set fits in, DRAM beside it."))
        blocks.append(table(["device", "level", "threads", "best", "median", "source", "run"], rows,
                            numeric={2, 3, 4}, small={5, 6}))
    else:
        blocks.append(("p", "No bandwidth ceiling was measured: memory-bound ops have no memory roof."))
    if snap.clock_ghz:
        blocks.append(("note", f"Core clock under load: {snap.clock_ghz:.3g} GHz (dependent add chain)."))
    for dtype, n in snap.nominal.items():
        if n.get("flops_per_s"):
            blocks.append(("note", f"Nominal peak {dtype}, all {n.get('cores')} cores: {fmt_si(n['flops_per_s'], 'FLOP/s')} "
                                   f"= {n.get('cores')} x {n.get('ghz'):.3g} GHz ({n.get('ghz_source')}) x "
                                   f"{n.get('flops_per_cycle_per_core'):g} FLOP/cycle ({n.get('isa')})."))
    return blocks


def _ops(records: list[Record]) -> list[Record]:
    return [r for r in records if r.measured and r.kind not in NOT_OPS and not r.kind.startswith("diagnostic.")]


def _top_ops_section(records: list[Record], top: int) -> list:
    ops = [r for r in _ops(records) if r.roofline is not None]
    blocks = [h2("Where the time goes")]
    if not ops:
        blocks.append(("p", "No op of this run was placed on the roofline."))
        return blocks
    ops.sort(key=lambda r: (r.roofline.efficiency if r.roofline.efficiency is not None else 9))
    rows = []
    for r in ops[:top]:
        p = r.roofline
        rows.append([r.case_id, r.kind, r.threads, fmt_time(r.median), fmt_si(p.attained_flops_per_s, "FLOP/s"),
                     fmt_si(p.attained_bytes_per_s, "B/s"), f"{p.intensity:.3g}", p.bound, p.level or "",
                     fmt_time(p.theoretical_time_s), fmt_pct(p.efficiency), fmt_pct(p.dram_efficiency),
                     p.source, p.explanation or ""])
    blocks.append(("p", f"The {min(top, len(ops))} ops furthest from their roof, of {len(ops)} placed. Efficiency = "
                        "roofline time / measured median (100% = on the roof), against the compute ceiling of the "
                        "record's dtype and threads and the bandwidth of the memory level its working set fits in; "
                        "'DRAM eff.' is the same against DRAM. Intensity in FLOP/byte."))
    blocks.append(table(["case", "kind", "threads", "median", "FLOP/s", "bytes/s", "intensity", "bound", "level",
                         "roofline time", "efficiency", "DRAM eff.", "ceilings", "note"],
                        rows, numeric={2, 3, 4, 5, 6, 9, 10, 11}, note=13))
    return blocks


def _summary_section(records: list[Record]) -> list:
    rows = []
    for r in records:
        p = r.roofline
        if r.measured:
            t = r.timing
            rows.append([r.case_id, r.kind, r.status, fmt_time(t.median),
                         f"[{fmt_time(t.ci95_low)}, {fmt_time(t.ci95_high)}]", fmt_pct(t.cv), t.n, figure_of(r),
                         p.bound if p else "", fmt_pct(p.efficiency) if p else "", len(r.warnings),
                         "\n".join(r.suspect_reasons + r.warnings)])
        else:
            rows.append([r.case_id, r.kind, r.status, "", "", "", "", "", "", "", len(r.warnings),
                         "\n".join(([r.reason[:160]] if r.reason else []) + r.warnings)])
    return [h2("All cases"),
            ("note", "Median and bootstrap 95% confidence interval of the median, per call; CV = coefficient "
                     "of variation of the samples; n = samples kept; figure = the case's own metric, else "
                     "FLOP/s (intensity >= 1), else bytes/s. A case's warnings, or a failed case's reason, "
                     "are written under its row."),
            table(["case", "kind", "status", "median", "95% CI", "CV", "n", "figure", "bound", "efficiency",
                   "warnings", "warning text / reason"], rows, numeric={3, 4, 5, 6, 7, 9, 10}, note=11)]


def _failed_section(records: list[Record]) -> list:
    bad = [r for r in records if r.status in ("failed", "skipped")]
    blocks = [h2("Failed and skipped cases")]
    if not bad:
        blocks.append(("p", "None: every case ran."))
        return blocks
    blocks.append(table(["case", "kind", "status", "reason"],
                        [[r.case_id, r.kind, r.status, (r.error or "no reason recorded").strip()] for r in bad],
                        small={3}))
    for r in bad:
        if r.traceback:
            blocks.append(("details", f"traceback of {r.case_id}", r.traceback))
    return blocks


def _plot_blocks(records: list[Record], snap: Snapshot, folder: Path) -> list:
    blocks = []
    panels = roofline_panels(records, snap)
    written = roofline_plot(panels, folder / "roofline", title="Roofline")
    if written:
        blocks += [h2("Roofline"),
                   ("p", "One panel per thread count; each draws exactly the ceilings its points were placed "
                         "against (this run's snapshot at that thread count): solid lines are measured ceilings, "
                         "dashed lines the BLAS GEMM figure and, where a point was placed against it, the nominal "
                         "peak. Each point is an op, sized by its share of the time, coloured by backend or "
                         "framework and shaped by thread count; the ops taking the most time are named, and "
                         "hovering a point shows its case, time, efficiency and bound.")]
        blocks += plot_blocks(written, "roofline plot (hover a point for its case, time, efficiency and bound)")
    rows = [{"theoretical_time_s": r.roofline.theoretical_time_s, "measured_time_s": r.median, "kind": r.kind}
            for r in records if r.roofline is not None]
    written = plots.measured_vs_theoretical_plot(rows, folder / "measured-vs-theoretical")
    if written:
        blocks.append(("p", "Measured median against roofline time per op: points on the black line run at the "
                            "roof; each band below it is a step down in efficiency."))
        blocks += plot_blocks(written, "measured against theoretical time")
    written = plots.thread_scaling_plot([r for r in records if r.measured], folder / "thread-scaling")
    if written:
        blocks += [h2("Thread scaling"),
                   ("p", "Speed-up of each case run at several thread counts over its run with the fewest threads "
                         "(FLOP/s, else bytes/s, else calls per second); the dashed line is linear scaling.")]
        blocks += plot_blocks(written, "thread scaling")
    return blocks


# --------------------------------------------------------------------------- the report

def build_report(run_path: Path, top: int = TOP_OPS) -> tuple[str, str, list]:
    """(title, subtitle, blocks) for one run; plots are written to run_path/plots."""
    manifest = load_manifest(run_path)
    stored = load_records(run_path)
    if not stored:
        raise UsageError(f"{run_path}: the run holds no records (empty records.jsonl)")
    snap = snapshots.load(run_path, manifest.fingerprint)
    records = placed(final(stored), snap)
    suite = manifest.suite or {}
    counts = Counter(r.status for r in records if not r.kind.startswith("layer."))
    started, finished = manifest.started_at, manifest.finished_at
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "unknown time"
    took = f", {finished - started:.0f} s" if started and finished else ""
    title = f"Run {manifest.run_id or run_path.name}"
    subtitle = (f"suite {suite.get('name', '?')}; started {when}{took}; status {manifest.status}; "
                + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "suspect", "failed", "skipped"))
                + f"; git {manifest.git_revision or 'unknown'}")
    overview = [["run folder", str(run_path)],
                ["suite", f"{suite.get('name', '?')}: {' '.join(str(suite.get('description') or '').split())}"],
                ["command line", " ".join(map(str, manifest.command_line))]]
    blocks = [h2("Run"), table(None, overview), ("note", TERMS)]
    blocks += _device_section(manifest)
    blocks += _conditions_section(manifest, records)
    folder = run_path / "plots"
    blocks += conv_blocks(records, folder)
    blocks += model_blocks(records)
    blocks += probe_blocks(records, snap, manifest.run_id or run_path.name, folder)
    blocks += throttle_blocks(records, folder)
    blocks += prediction_blocks(run_path, folder)
    ops = [r for r in records if r.roofline is not None]
    if ops or any(r.kind.startswith("probe.") and r.kind not in NOT_OPS for r in records):
        blocks += _ceilings_section(snap)
    if ops:
        blocks += _top_ops_section(records, top)
    blocks += _plot_blocks(records, snap, folder)
    blocks += _summary_section([r for r in records if not r.kind.startswith("layer.")])
    blocks += _failed_section(records)
    blocks.append(("note", "Units: decimal SI (1 GB = 1e9 bytes, 1 GFLOP/s = 1e9 FLOP/s; KiB/MiB only for "
                           "caches); times are seconds per call; a multiply-add counts 2 FLOPs. Written by "
                           f"harness report at {time.strftime('%Y-%m-%d %H:%M:%S')}."))
    return title, subtitle, blocks


def write_report(run_path, top: int = TOP_OPS) -> tuple[Path, Path]:
    """Writes RUN/report.html (self-contained) and RUN/report.md (plots in RUN/plots/);
    returns their paths. Raises UsageError for a path that is not a run or holds no records."""
    run_path = resolve_run(run_path)
    title, subtitle, blocks = build_report(run_path, top)
    html_path, md_path = run_path / "report.html", run_path / "report.md"
    try:
        html_path.write_text(render_html(title, subtitle, blocks), encoding="utf-8")
        md_path.write_text(render_markdown(title, subtitle, blocks, run_path), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{run_path}: cannot write the report there ({exc.strerror or exc})") from None
    return html_path, md_path
