"""`harness report RUN`: one stored run as a single-file HTML report and a Markdown twin.

report.html embeds its plots as base64 PNG, so it can be mailed or archived alone;
report.md links the same plots as files under RUN/plots/. Both hold the same sections:
the device, the conditions and warnings, the measured ceilings beside the datasheet
peaks, where the time goes (top ops with bound and efficiency), the plots (roofline,
measured against roofline time, throttle heat map, thread scaling), every case, and the
failed and skipped cases with their reasons.

Efficiency is roofline (theoretical) time / measured median: 100% is on the roof. It is
quoted against the measured ceilings of the device profile; the datasheet figure
(theoretical peak, compute only) is shown beside it, labelled, never in its place.
Units are decimal SI: 1 GB = 1e9 bytes, 1 GFLOP/s = 1e9 FLOP/s; KiB/MiB only for caches.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path

from harness.errors import UsageError

TOP_OPS = 15
# Kinds that are not ops: their time is a probe's set duration or the timer itself.
NOT_OPS = ("probe.throttle", "probe.frequency")

# --------------------------------------------------------------------------- units


def fmt_time(seconds) -> str:
    if not _finite(seconds):
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_si(value, unit: str, digits: int = 3) -> str:
    """Decimal SI: 1.23e11 FLOP/s -> '123 GFLOP/s'."""
    if not _finite(value):
        return ""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"


def fmt_pct(fraction) -> str:
    if not _finite(fraction):
        return ""
    if abs(fraction) >= 10:  # 1544%, not 1.54e+03%
        return f"{100 * fraction:.0f}%"
    return f"{100 * fraction:.3g}%"


def fmt_bytes_binary(n) -> str:
    if not _finite(n):
        return ""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value):
    """A float from a number or a ceiling-like object with .value; None otherwise."""
    value = getattr(value, "value", value)
    return float(value) if _finite(value) else None


# --------------------------------------------------------------------------- documents
# A document is a list of blocks, rendered once as HTML and once as Markdown so the two
# files never disagree:
#   ("h2", text, anchor) ("p", text) ("note", text) ("list", [text]) ("pre", text)
#   ("table", headers or None, rows, numeric column indices, small column indices, note column)
#   where the note column (long text: warnings, reasons) becomes a full-width line under
#   its row in HTML, so that it does not squeeze the numbers into tall narrow cells
#   ("img", path to the PNG, alt text) ("details", summary, text)

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1400px; padding: 1.5em 2em 4em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; }
div.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f3f6; position: sticky; top: 0; }
tbody.striped tr:nth-child(even) td { background: #fafafa; }
td { white-space: nowrap; }
td.wrap, td.subrow { white-space: normal; }
td.small { white-space: pre-line; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.small { font-size: 0.85em; color: #666; max-width: 30em; }
td.subrow { font-size: 0.82em; color: #8a5a00; padding-top: 0; border-top: none; white-space: pre-line; }
tr.has-subrow td { border-bottom: none; }
td.key { font-weight: 600; white-space: nowrap; background: #f6f8fa; }
.note { color: #555; font-size: 0.9em; }
nav { background: #f6f8fa; padding: 0.5em 1em; border-radius: 4px; font-size: 0.9em; }
nav a { margin-right: 1em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.5em 0; }
pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
.status-ok { color: #1a7f37; } .status-failed { color: #cf222e; font-weight: bold; }
.status-skipped { color: #9a6700; }
"""


def render_html(title: str, subtitle: str, blocks: list) -> str:
    esc = html.escape
    toc = [f'<a href="#{b[2]}">{esc(b[1])}</a>' for b in blocks if b[0] == "h2"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>{CSS}</style></head><body>",
           f"<h1>{esc(title)}</h1>", f'<p class="note">{esc(subtitle)}</p>']
    if toc:
        out.append("<nav>" + " ".join(toc) + "</nav>")
    for block in blocks:
        kind = block[0]
        if kind == "h2":
            out.append(f'<h2 id="{block[2]}">{esc(block[1])}</h2>')
        elif kind == "p":
            out.append(f"<p>{esc(block[1])}</p>")
        elif kind == "note":
            out.append(f'<p class="note">{esc(block[1])}</p>')
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{esc(str(i))}</li>" for i in block[1]) + "</ul>")
        elif kind == "pre":
            out.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "details":
            out.append(f"<details><summary>{esc(block[1])}</summary><pre>{esc(block[2])}</pre></details>")
        elif kind == "table":
            _, headers, rows, numeric, small, note = block
            out.append('<div class="scroll"><table>')
            if headers:
                out.append("<thead><tr>" + "".join(f"<th>{esc(str(h))}</th>" for i, h in enumerate(headers)
                                                    if i != note) + "</tr></thead>")
            # Zebra stripes only without note lines: a note line under a row would break them.
            out.append("<tbody>" if note is not None else '<tbody class="striped">')
            for row in rows:
                cells = []
                for i, cell in enumerate(row):
                    if i == note:
                        continue
                    css = "num" if i in numeric else "small" if i in small else ""
                    if headers is None and i == 0:
                        css = "key"
                    if headers and headers[i] == "status":
                        css = f"status-{cell}"
                    text = esc(str(cell))
                    if len(text) > 40 and css != "small":  # short cells stay on one line, long ones wrap
                        css = (css + " wrap").strip()
                    cells.append(f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>")
                text = str(row[note]) if note is not None and note < len(row) else ""
                if text:
                    out.append('<tr class="has-subrow">' + "".join(cells) + "</tr>")
                    out.append(f'<tr><td class="subrow" colspan="{len(cells)}">{esc(text)}</td></tr>')
                else:
                    out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table></div>")
        elif kind == "img":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
            out.append(f'<img alt="{esc(block[2])}" src="data:image/png;base64,{data}">')
    out.append("</body></html>")
    return "\n".join(out)


def render_markdown(title: str, subtitle: str, blocks: list, base: Path) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = [f"# {title}", "", subtitle, ""]
    for block in blocks:
        kind = block[0]
        if kind == "h2":
            out += [f"## {block[1]}", ""]
        elif kind in ("p", "note"):
            out += [block[1] if kind == "p" else f"*{block[1]}*", ""]
        elif kind == "list":
            out += [f"- {i}" for i in block[1]] + [""]
        elif kind == "pre":
            out += ["```", block[1], "```", ""]
        elif kind == "details":
            out += [f"<details><summary>{html.escape(block[1])}</summary>", "", "```", block[2], "```",
                    "", "</details>", ""]
        elif kind == "table":
            _, headers, rows, numeric, _small, _note = block
            width = len(headers) if headers else len(rows[0]) if rows else 0
            out.append("| " + " | ".join(cell(h) for h in (headers or [""] * width)) + " |")
            out.append("|" + "|".join("---:" if i in numeric else "---" for i in range(width)) + "|")
            out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
            out.append("")
        elif kind == "img":
            rel = Path(block[1]).relative_to(base) if Path(block[1]).is_relative_to(base) else Path(block[1])
            out += [f"![{block[2]}]({rel.as_posix()})", ""]
    return "\n".join(out) + "\n"


def _table(headers, rows, numeric=(), small=(), note=None):
    """headers None: a key/value table, keys in the first column."""
    return ("table", list(headers) if headers else None, [list(r) for r in rows], set(numeric), set(small), note)


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _h2(text: str):
    return ("h2", text, _anchor(text))


# --------------------------------------------------------------------------- inputs


def load_run_profile(run_path: Path) -> tuple[dict | None, Path | None]:
    """The run folder's copy of the device profile, else results/<device>/profile.json."""
    for path in (run_path / "profile.json", run_path.parent / "profile.json"):
        if path.exists():
            try:
                return json.loads(path.read_text()), path
            except (OSError, json.JSONDecodeError):
                continue
    return None, None


class Placement:
    """Each record's place on the roofline: the record's own `roofline` field when the run
    placed it against measured ceilings; otherwise placed here by the same code
    (harness/placement.py) against this run's profile, which may have been measured by
    this very run after the record was written."""

    def __init__(self, profile: dict | None, fingerprint: dict):
        from harness.placement import Placer

        self.placer = Placer(profile, fingerprint or {})

    def __call__(self, record: dict) -> dict | None:
        own = record.get("roofline")
        if isinstance(own, dict) and (own.get("source") == "measured" or self.placer.profile is None):
            return own
        return self.placer(dict(record)).get("roofline")


def figure_of(record: dict) -> str:
    """The number a reader wants for a record: its own metric, else FLOP/s, else bytes/s."""
    m = record.get("metrics") or {}
    cost = record.get("cost") or {}
    if _finite(m.get("ghz")):
        return f"{m['ghz']:.3f} GHz"
    intensity = cost.get("intensity")
    if _finite(m.get("flops_per_s")) and cost.get("flops") and (
            not _finite(m.get("bytes_per_s")) or (_finite(intensity) and intensity >= 1)):
        return fmt_si(m["flops_per_s"], "FLOP/s")
    if _finite(m.get("bytes_per_s")):
        return fmt_si(m["bytes_per_s"], "B/s")
    return ""


def _warning_pattern(text: str) -> str:
    """A warning with its numbers blanked, so that the same warning on many cases counts once."""
    text = re.sub(r"\{[^}]*\}", "{…}", str(text))
    return re.sub(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", "#", text)


# --------------------------------------------------------------------------- sections


def _device_section(manifest: dict) -> list:
    fp = manifest.get("fingerprint") or {}
    cpu = fp.get("cpu") or {}
    if not fp:
        return [_h2("Device"), ("p", "The manifest holds no fingerprint.")]
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
        rows.append(["GPUs", ", ".join(f"{g.get('name')} ({fmt_si(g.get('memory_bytes'), 'B')})"
                                       for g in fp["gpus"])])
    versions = fp.get("versions") or {}
    if versions:
        rows.append(["Libraries", ", ".join(f"{k} {v}" for k, v in versions.items() if v)])
    blas = fp.get("blas") or []
    if blas:
        rows.append(["BLAS", "; ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
                                       f"{b.get('num_threads')} threads)" for b in blas)])
    for dtype, p in (fp.get("theoretical_peak") or {}).items():
        if p.get("flops_per_s"):
            rows.append([f"Datasheet peak {dtype}",
                         f"{fmt_si(p['flops_per_s'], 'FLOP/s')} = {p.get('cores')} cores x {p.get('ghz')} GHz x "
                         f"{p.get('flops_per_cycle_per_core'):g} FLOP/cycle ({p.get('isa')}; GHz from "
                         f"{p.get('ghz_source')})"])
    return [_h2("Device"), _table(None, rows)]


def _conditions_section(manifest: dict, records: list[dict]) -> list:
    blocks = [_h2("Conditions and warnings")]
    state = (manifest.get("fingerprint") or {}).get("machine_state") or {}
    if state:
        facts = [f"governors: {state.get('governors') or 'not exposed'}",
                 f"turbo: {state.get('turbo') if state.get('turbo') is not None else 'not exposed'}",
                 f"isolated CPUs: {state.get('isolated_cpus') or 'none'}",
                 f"CPUs with SMT siblings: {state.get('cpus_with_smt_siblings') or 'none'}",
                 f"transparent huge pages: {state.get('transparent_hugepages')}"]
        blocks.append(("p", "Machine state at the start: " + "; ".join(facts) + "."))
    run_warnings = manifest.get("warnings") or []
    if run_warnings:
        blocks.append(("p", f"{len(run_warnings)} warning(s) about the machine:"))
        blocks.append(("list", run_warnings))
    steal = [(r.get("faults") or {}).get("steal_fraction") for r in records]
    steal = [s for s in steal if _finite(s)]
    load = []
    for r in records:
        for key in ("load_before", "load_after"):
            value = ((r.get("conditions") or {}).get(key) or {}).get("others_percent")
            if _finite(value):
                load.append(value)
    facts = []
    if steal:
        facts.append(f"hypervisor steal: at most {100 * max(steal):.1f}% of a timed region")
    if load:
        facts.append(f"load from other processes on the pinned CPUs: at most {max(load):.0f}%")
    if facts:
        blocks.append(("p", "During the run: " + "; ".join(facts) + "."))

    per_pattern: dict[str, list[str]] = {}
    examples: dict[str, str] = {}
    total = 0
    for r in records:
        for w in r.get("warnings") or []:
            total += 1
            pattern = _warning_pattern(w)
            per_pattern.setdefault(pattern, []).append(r.get("case_id", "?"))
            examples.setdefault(pattern, str(w))
    with_warnings = sum(1 for r in records if r.get("warnings"))
    if not total:
        blocks.append(("p", f"No case carries a warning ({len(records)} cases)."))
        return blocks
    blocks.append(("p", f"{total} warning(s) on {with_warnings} of {len(records)} cases, grouped "
                        "(numbers blanked as #; one example each):"))
    rows = []
    for pattern, cases in sorted(per_pattern.items(), key=lambda kv: -len(kv[1])):
        unique = list(dict.fromkeys(cases))
        shown = ", ".join(unique[:6]) + (f" and {len(unique) - 6} more" if len(unique) > 6 else "")
        rows.append([len(cases), pattern, examples[pattern], shown])
    blocks.append(_table(["count", "warning", "example", "cases"], rows, numeric={0}, small={2, 3}))
    return blocks


def _theoretical_at(fp: dict, dtype: str, isa: str, threads) -> float | None:
    """Datasheet FLOP/s for `threads` cores at ISA level `isa`: threads x GHz x FLOP/cycle
    from the fingerprint's table; 'blas' (GEMM) and unknown levels use the best level."""
    peak = ((fp or {}).get("theoretical_peak") or {}).get(dtype)
    if not peak or not peak.get("ghz"):
        return None
    cores = peak.get("cores") or 1
    n = min(int(threads), cores) if _finite(threads) else cores
    try:
        from harness.fingerprint import LEVEL_BITS, flops_per_cycle

        level = isa if isa in LEVEL_BITS else peak.get("isa")
        fpc = flops_per_cycle((fp.get("cpu") or {}).get("uarch") or "", level, dtype)
    except Exception:  # the table moved or changed: fall back to the all-core figure
        fpc = peak.get("flops_per_cycle_per_core")
    if not fpc:
        return None
    return n * peak["ghz"] * 1e9 * fpc


def _ceilings_section(profile: dict | None, profile_path: Path | None, manifest: dict) -> list:
    fp = manifest.get("fingerprint") or {}
    blocks = [_h2("Ceilings: measured against datasheet")]
    if not profile:
        blocks.append(("p", "No device profile was found (looked for profile.json in the run folder and "
                            "in its device folder), so ops are placed against the datasheet peak only, "
                            "which is labelled as such. Run the probe suite on this device to measure "
                            "ceilings."))
        rows = [[dtype, p.get("isa"), p.get("cores"), fmt_si(p.get("flops_per_s"), "FLOP/s")]
                for dtype, p in (fp.get("theoretical_peak") or {}).items()]
        if rows:
            blocks.append(_table(["dtype", "ISA", "cores", "datasheet peak"], rows, numeric={2, 3}))
        return blocks
    blocks.append(("note", f"Device profile: {profile_path}; runs that contributed: "
                           f"{', '.join(profile.get('runs') or []) or 'not listed'}."))
    ghz_measured = profile.get("frequency_ghz")
    rows = []
    for e in sorted(profile.get("compute") or [], key=lambda e: (str(e.get("dtype")), str(e.get("isa")),
                                                                  e.get("threads") or 0)):
        value = _num(e.get("flops_per_s"))
        if value is None:
            continue
        sheet = _theoretical_at(fp, e.get("dtype"), e.get("isa"), e.get("threads"))
        at_clock = None
        sheet_ghz = ((fp.get("theoretical_peak") or {}).get(e.get("dtype")) or {}).get("ghz")
        if sheet and ghz_measured and sheet_ghz:
            at_clock = sheet * ghz_measured / sheet_ghz
        rows.append([e.get("dtype"), e.get("isa"), e.get("threads"), fmt_si(value, "FLOP/s"),
                     fmt_si(sheet, "FLOP/s"), fmt_pct(value / sheet) if sheet else "",
                     fmt_si(at_clock, "FLOP/s"), fmt_pct(value / at_clock) if at_clock else "",
                     e.get("source", "")])
    if rows:
        blocks.append(("p", "Compute ceilings (measured), each beside the datasheet peak for the same "
                            "dtype, ISA level and number of cores (cores x nominal GHz x FLOP/cycle; 'blas' "
                            "is compared with the best level)"
                            + (f", and beside that peak at the clock measured under load "
                               f"({ghz_measured:.3f} GHz)" if ghz_measured else "") + "."))
        blocks.append(_table(["dtype", "ISA", "threads", "measured", "datasheet", "measured / datasheet",
                              "datasheet at measured clock", "measured / that", "source"],
                             rows, numeric={2, 3, 4, 5, 6, 7}, small={8}))
    else:
        blocks.append(("p", "The profile holds no compute ceiling."))
    order = {"L1": 0, "L2": 1, "L3": 2, "DRAM": 3}
    rows = [[e.get("level"), e.get("threads"), fmt_si(_num(e.get("bytes_per_s")), "B/s"), e.get("source", "")]
            for e in sorted(profile.get("bandwidth") or [],
                            key=lambda e: (order.get(e.get("level"), 9), str(e.get("level")), e.get("threads") or 0))
            if _num(e.get("bytes_per_s"))]
    if rows:
        blocks.append(("p", "Bandwidth ceilings (measured; 1 GB/s = 1e9 bytes/s). The datasheet gives "
                            "no bandwidth figure here."))
        blocks.append(_table(["level", "threads", "bandwidth", "source"], rows, numeric={1, 2}, small={3}))
    else:
        blocks.append(("p", "The profile holds no bandwidth ceiling: memory-bound ops cannot be placed."))
    for dtype, t in (profile.get("theoretical") or {}).items():
        if isinstance(t, dict) and _finite(t.get("flops_per_s")):
            blocks.append(("note", f"Datasheet peak {dtype}, all cores: {fmt_si(t['flops_per_s'], 'FLOP/s')} "
                                   f"({t.get('source', '')})."))
    if ghz_measured:
        blocks.append(("note", f"Core clock under load: {ghz_measured:.3f} GHz "
                               f"({profile.get('frequency_source', 'probe.frequency')})."))
    return blocks


def _top_ops_section(records: list[dict], place: Placement, top: int) -> list:
    ops = [r for r in records if r.get("status") == "ok" and _finite((r.get("timing") or {}).get("median"))
           and r.get("kind") not in NOT_OPS and not str(r.get("kind", "")).startswith("diagnostic.")]
    blocks = [_h2("Where the time goes")]
    if not ops:
        blocks.append(("p", "No timed op in this run."))
        return blocks
    ops.sort(key=lambda r: -r["timing"]["median"])
    rows = []
    for r in ops[:top]:
        m, cost = r.get("metrics") or {}, r.get("cost") or {}
        p = place(r) or {}
        sheet = p.get("datasheet") or {}
        rows.append([r.get("case_id"), r.get("kind"), r.get("threads"), fmt_time(r["timing"]["median"]),
                     fmt_si(m.get("flops_per_s"), "FLOP/s"), fmt_si(m.get("bytes_per_s"), "B/s"),
                     f"{cost['intensity']:.3g}" if _finite(cost.get("intensity")) else "",
                     p.get("bound", ""), fmt_time(p.get("theoretical_time_s")), fmt_pct(p.get("efficiency")),
                     {"measured": "measured", "theoretical": "datasheet"}.get(p.get("source"), p.get("source", "")),
                     fmt_pct(sheet.get("efficiency"))])
    blocks.append(("p", f"The {min(top, len(ops))} slowest of {len(ops)} timed ops, by median time per call. "
                        "Efficiency = roofline time / measured median (100% = on the roof), against the "
                        "ceilings named in 'ceilings' (bandwidth of DRAM: every tensor moved once from memory); "
                        "above 100% the op beat that ceiling, most often because its data stayed in a cache. "
                        "The datasheet efficiency (compute only, theoretical peak) is beside it for reference. "
                        "Intensity in FLOP/byte."))
    blocks.append(_table(["case", "kind", "threads", "median", "FLOP/s", "bytes/s", "intensity", "bound",
                          "roofline time", "efficiency", "ceilings", "datasheet efficiency"],
                         rows, numeric={2, 3, 4, 5, 6, 8, 9, 11}))
    return blocks


def _summary_section(records: list[dict], place: Placement) -> list:
    rows = []
    for r in records:
        t = r.get("timing") or {}
        status = r.get("status", "?")
        p = (place(r) or {}) if status == "ok" else {}
        warnings = r.get("warnings") or []
        if status == "ok" and _finite(t.get("median")):
            ci = f"[{fmt_time(t.get('ci95_low'))}, {fmt_time(t.get('ci95_high'))}]"
            rows.append([r.get("case_id"), r.get("kind"), status, fmt_time(t["median"]), ci,
                         fmt_pct(t.get("cv")), t.get("n", ""), figure_of(r), p.get("bound", ""),
                         fmt_pct(p.get("efficiency")), len(warnings), "\n".join(map(str, warnings))])
        else:
            reason = (r.get("error") or "").strip().splitlines()
            rows.append([r.get("case_id"), r.get("kind"), status, "", "", "", "", "", "", "", len(warnings),
                         "\n".join(([reason[0][:160]] if reason else []) + list(map(str, warnings)))])
    return [_h2("All cases"),
            ("note", "Median and bootstrap 95% confidence interval of the median, per call; CV = coefficient "
                     "of variation of the samples; n = samples kept; figure = the case's own metric, else "
                     "FLOP/s (intensity >= 1), else bytes/s. A case's warnings, or a failed case's reason, "
                     "are written under its row."),
            _table(["case", "kind", "status", "median", "95% CI", "CV", "n", "figure", "bound", "efficiency",
                    "warnings", "warning text / reason"], rows, numeric={3, 4, 5, 6, 7, 9, 10}, note=11)]


def _failed_section(records: list[dict]) -> list:
    bad = [r for r in records if r.get("status") in ("failed", "skipped")]
    blocks = [_h2("Failed and skipped cases")]
    if not bad:
        blocks.append(("p", "None: every case ran."))
        return blocks
    rows = [[r.get("case_id"), r.get("kind"), r.get("status"), (r.get("error") or "no reason recorded").strip()]
            for r in bad]
    blocks.append(_table(["case", "kind", "status", "reason"], rows, small={3}))
    for r in bad:
        if r.get("traceback"):
            blocks.append(("details", f"traceback of {r.get('case_id')}", r["traceback"]))
    return blocks


def _throttle_blocks(records: list[dict], plots: Path) -> list:
    from harness import plots as P
    from harness.throttle import throttle_table

    try:
        table = throttle_table(records)
    except (KeyError, TypeError, ValueError):
        return []
    if table.empty:
        return []
    blocks = [_h2("Throttling")]
    rows = []
    first = table.iloc[0]
    for cores, row in table.iterrows():
        cells = [cores]
        for col in table.columns:
            mhz = row[col]
            change = "" if cores == table.index[0] or not first[col] else f" ({100 * (mhz - first[col]) / first[col]:+.1f}%)"
            cells.append(f"{mhz:.0f} MHz{change}" if _finite(float(mhz)) else "")
        rows.append(cells)
    headers = ["busy cores"] + [("Normal (none)" if c == "none" else str(c).upper()) for c in table.columns]
    blocks.append(("p", "Median core clock from a dependent add chain on each busy core right after a burst "
                        "at the ISA level; (%) is the change from the 1-core figure of the column."))
    blocks.append(_table(headers, rows, numeric=set(range(len(headers)))))
    written = P.throttle_heatmap(table, plots / "throttle")
    blocks += [("img", p, "throttle heat map") for p in written if p.suffix == ".png"]
    return blocks


# --------------------------------------------------------------------------- the report


def build_report(run_path: Path, top: int = TOP_OPS) -> tuple[str, str, list]:
    """(title, subtitle, blocks) for one run; plots are written to run_path/plots."""
    from harness import plots as P
    from harness.roofline import Ceiling, Roofline
    from harness.store import load_manifest, load_records

    manifest = load_manifest(run_path)
    records = load_records(run_path)
    if not records:
        raise UsageError(f"{run_path}: the run holds no records (empty records.jsonl)")
    profile, profile_path = load_run_profile(run_path)
    fp = manifest.get("fingerprint") or {}
    place = Placement(profile, fp)
    plots = run_path / "plots"

    suite = manifest.get("suite") or {}
    counts = Counter(r.get("status") for r in records)
    started = manifest.get("started_at")
    finished = manifest.get("finished_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if _finite(started) else "unknown time"
    took = f", {finished - started:.0f} s" if _finite(started) and _finite(finished) else ""
    title = f"Run {manifest.get('run_id') or run_path.name}"
    subtitle = (f"suite {suite.get('name', '?')}; started {when}{took}; status {manifest.get('status', 'unknown')}; "
                f"{counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped; "
                f"git {manifest.get('git_revision') or 'unknown'}")

    blocks = []
    overview = [["run folder", str(run_path)],
                ["suite", f"{suite.get('name', '?')}: {' '.join(str(suite.get('description') or '').split())}"],
                ["command line", " ".join(map(str, manifest.get("command_line") or []))]]
    blocks += [_h2("Run"), _table(None, overview)]
    blocks += _device_section(manifest)
    blocks += _conditions_section(manifest, records)
    blocks += _ceilings_section(profile, profile_path, manifest)
    blocks += _top_ops_section(records, place, top)

    # The roofline: the profile's best ceilings over every thread count, or the datasheet peaks.
    if profile:
        roof = Roofline.from_profile(profile, label="device profile")
    else:
        roof = Roofline([Ceiling("compute", f"theoretical {p.get('isa')}", float(p["flops_per_s"]), dtype=d,
                                 theoretical=True) for d, p in (fp.get("theoretical_peak") or {}).items()
                         if _finite(p.get("flops_per_s"))])
    placed = []
    for r in records:
        p = place(r)
        if p:
            placed.append({**r, "roofline": p})
    points = P.roofline_points(placed)
    written = []
    if len(points) or profile:  # datasheet lines alone, with no point under them, say nothing
        written = P.roofline_plot(roof, points, plots / "roofline",
                                  title="Roofline: measured ops under the device's ceilings")
    if written:
        blocks.append(("p", "Each point is one op at its intensity and attained FLOP/s, coloured by kind and "
                            "shaped by bound; solid lines are measured ceilings (the best over thread counts), "
                            "dashed lines datasheet peaks; the dotted orange line, where drawn, is the roof "
                            "fitted to these points."))
        blocks += [("img", p, "roofline plot") for p in written if p.suffix == ".png"]
    rows = [{"theoretical_time_s": r["roofline"].get("theoretical_time_s"),
             "measured_time_s": (r.get("timing") or {}).get("median"), "kind": r.get("kind")} for r in placed]
    written = P.measured_vs_theoretical_plot(rows, plots / "measured-vs-theoretical")
    if written:
        blocks.append(("p", "Measured median against roofline time per op: points on the black line run at "
                            "the roof; each band below it is a step down in efficiency. Points under the line "
                            "beat the ceiling they were placed against (e.g. data that stayed in cache while "
                            "the roof assumed DRAM)."))
        blocks += [("img", p, "measured against theoretical time") for p in written if p.suffix == ".png"]

    blocks += _throttle_blocks(records, plots)

    written = P.thread_scaling_plot(records, plots / "thread-scaling")
    if written:
        blocks.append(_h2("Thread scaling"))
        blocks.append(("p", "Speed-up of each case run at several thread counts over its run with the fewest "
                            "threads (FLOP/s, else bytes/s, else calls per second); the dashed line is linear "
                            "scaling."))
        blocks += [("img", p, "thread scaling") for p in written if p.suffix == ".png"]

    blocks += _summary_section(records, place)
    blocks += _failed_section(records)
    blocks.append(("note", "Units: decimal SI (1 GB = 1e9 bytes, 1 GFLOP/s = 1e9 FLOP/s; KiB/MiB only for "
                           "caches); times are seconds per call; a multiply-add counts 2 FLOPs. Written by "
                           f"harness report at {time.strftime('%Y-%m-%d %H:%M:%S')}."))
    return title, subtitle, blocks


def write_report(run_path, top: int = TOP_OPS) -> tuple[Path, Path]:
    """Writes RUN/report.html (self-contained) and RUN/report.md (plots in RUN/plots/);
    returns their paths. Raises UsageError for a path that is not a run or holds no records."""
    from harness.store import resolve_run

    run_path = resolve_run(run_path)
    title, subtitle, blocks = build_report(run_path, top)
    html_path, md_path = run_path / "report.html", run_path / "report.md"
    html_path.write_text(render_html(title, subtitle, blocks), encoding="utf-8")
    md_path.write_text(render_markdown(title, subtitle, blocks, run_path), encoding="utf-8")
    return html_path, md_path


def resolve_run_arg(arg: str, results: str | Path = "results") -> Path:
    """A run folder from the command line: a path, or 'latest' for the newest under results/."""
    from harness.store import find_runs, resolve_run

    if arg == "latest":
        runs = find_runs(results)
        if not runs:
            raise UsageError(f"latest: no runs under {results}/")
        return runs[-1]
    return resolve_run(arg)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run folder (results/<device>/<run>) or 'latest'")
    parser.add_argument("--results", default="results", help="where 'latest' looks (default: results)")
    parser.add_argument("--top", type=int, default=TOP_OPS, help=f"ops listed by time (default {TOP_OPS})")


def run(args) -> int:
    if args.top < 1:
        raise UsageError(f"--top {args.top}: must be at least 1")
    html_path, md_path = write_report(resolve_run_arg(args.run, args.results), top=args.top)
    print(f"report: {html_path}")
    print(f"markdown: {md_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`harness report ...` run as `python -m harness.report ...`."""
    from harness.cli import main as harness_main

    return harness_main(["report", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
