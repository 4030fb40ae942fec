"""Console tables of the device: the ceilings in force and their history, the measurements a
probe run made (with their health), and the throttle table."""
from __future__ import annotations

import time

from harness.analysis.profile import MEMORY_LEVELS, Ceiling, CeilingMeasurement, DeviceProfile
from harness.analysis.snapshot import Snapshot
from harness.core.text import fmt_pct, fmt_si, format_table

_LEVEL_ORDER = {name: i for i, name in enumerate(MEMORY_LEVELS)}


def _fmt(m, value) -> str:
    if value is None:
        return ""
    if m.kind == "clock":
        return f"{value:.3g} GHz"
    return fmt_si(value, "FLOP/s" if m.kind == "compute" else "B/s")


def _order(m) -> tuple:
    return (m.device, {"clock": 0, "compute": 1, "bandwidth": 2, "stream": 3}.get(m.kind, 9), str(m.dtype),
            _LEVEL_ORDER.get(m.name, 9), m.name, m.threads or 0)


def format_snapshot(snap: Snapshot) -> str:
    """The ceilings in force (best, median, nominal beside compute), as a run will place against them."""
    lines = []
    rows = []
    for c in sorted((c for c in snap.ceilings if c.kind == "compute"), key=_order):
        nominal = snap.nominal_peak(c.dtype, c.threads) if c.device == "cpu" else None
        rows.append([c.device, c.dtype, c.name, c.threads or "", _fmt(c, c.value), _fmt(c, c.median),
                     fmt_si(nominal, "FLOP/s"), fmt_pct(c.value / nominal, 2) if nominal else ""])
    if rows:
        lines.append("Compute ceilings in force: the best repetition, its median, and the nominal peak for the same "
                     "cores (cores x GHz from the OS x FLOP/cycle from the microarchitecture table)")
        lines.append(format_table(["device", "dtype", "level", "threads", "best", "median", "nominal", "of nominal"],
                                  rows, align_right={3, 4, 5, 6, 7}))
    rows = [[c.device, c.name, c.threads or "", _fmt(c, c.value), _fmt(c, c.median), c.source]
            for c in sorted((c for c in snap.ceilings if c.kind == "bandwidth"), key=_order)]
    if rows:
        lines.append("\nBandwidth ceilings in force (GB/s = 1e9 bytes/s)")
        lines.append(format_table(["device", "level", "threads", "best", "median", "source"], rows,
                                  align_right={2, 3, 4}))
    if snap.clock_ghz:
        lines.append(f"\nCore clock under load: {snap.clock_ghz:.3g} GHz (dependent add chain)")
    if not lines:
        lines.append("No ceiling in force: nothing healthy was measured on this device yet.")
    lines.append(f"\nRule: {snap.rule}.")
    return "\n".join(lines)


def format_measurements(measured: list[CeilingMeasurement]) -> str:
    """What one probe run measured, each with its health: suspect ones are kept, never used."""
    rows = []
    for m in sorted(measured, key=_order):
        if m.kind == "stream":
            continue
        spread = f"{100 * m.spread:.1f}%" if m.spread is not None else ""
        rows.append([m.label(), _fmt(m, m.value), _fmt(m, m.median), spread,
                     "ok" if m.healthy else "suspect: " + "; ".join(m.health)])
    if not rows:
        return "This run measured no ceiling."
    return ("Measured by this run (best repetition, median, how much faster the best was than the median, health)\n"
            + format_table(["ceiling", "best", "median", "spread", "health"], rows, align_right={1, 2, 3}))


def format_history(profile: DeviceProfile, in_force: list[Ceiling], key_filter: str | None = None) -> str:
    """Every ceiling, its history (newest last) and why the one in force was chosen."""
    chosen = {c.measurement.key: c for c in in_force}
    keys = sorted({m.key for m in profile.measurements}, key=lambda k: _order(profile.history(k)[0]))
    out = []
    for key in keys:
        history = profile.history(key)
        head = history[-1]
        if head.kind == "stream":
            continue
        if key_filter and key_filter.lower() not in head.label().lower():
            continue
        current = chosen.get(key)
        verdict = (f"in force: {_fmt(head, current.measurement.value)} from run {current.measurement.run_id} "
                   f"({current.rule})" if current else "no healthy recent measurement: none in force")
        out.append(f"{head.label()}: {verdict}")
        rows = []
        for m in history:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.measured_at)) if m.measured_at else "?"
            mark = "*" if current is not None and m is current.measurement else ""
            rows.append([mark, when, m.run_id or "?", _fmt(m, m.value), _fmt(m, m.median),
                         "ok" if m.healthy else "suspect: " + "; ".join(m.health)])
        out.append(format_table(["", "measured", "run", "best", "median", "health"], rows, align_right={3, 4}))
        out.append("")
    if not out:
        return "The profile holds no measurement" + (f" matching {key_filter!r}" if key_filter else "") + "."
    return "\n".join(out).rstrip()


# A throttle cell is flagged when its 95% interval is wider than this share of its median, or
# when it rests on fewer clock samples per core than THROTTLE_MIN_SAMPLES.
THROTTLE_WIDE_CI = 0.02
THROTTLE_MIN_SAMPLES = 5


def throttle_rows(frame, cells=None) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the throttle table: each cell's median MHz, its change from the 1-core
    figure of its column, the range over the busy cores, the half-width of the 95% interval of
    the median, and a flag where the cell is suspect, noisy or thin."""
    headers = ["busy cores"] + [("Normal (none)" if c == "none" else c.upper()) for c in frame.columns]
    facts = {}
    if cells is not None and not cells.empty:
        for _, cell in cells.iterrows():
            facts[(cell["busy_cores"], cell["isa"])] = cell
    first = frame.iloc[0]
    rows = []
    for cores, row in frame.iterrows():
        texts = [str(cores)]
        for col in frame.columns:
            mhz = row[col]
            if mhz != mhz:
                texts.append("")
                continue
            text = f"{mhz:.0f} MHz"
            if cores != frame.index[0] and first[col]:
                text += f" ({100 * (mhz - first[col]) / first[col]:+.1f}%)"
            cell = facts.get((cores, col))
            if cell is not None:
                if cores > 1 and _known(cell["mhz_low"]):
                    text += f" [{cell['mhz_low']:.0f}-{cell['mhz_high']:.0f}]"
                if _known(cell.get("mhz_ci_low")):
                    half = (cell["mhz_ci_high"] - cell["mhz_ci_low"]) / 2
                    text += f" ±{half:.0f}"
                    if half > THROTTLE_WIDE_CI * mhz:
                        text += " (noisy)"
                if _known(cell.get("samples")) and cell["samples"] < THROTTLE_MIN_SAMPLES:
                    text += f" ({int(cell['samples'])} samples)"
                if cell["status"] == "suspect":
                    text += " (suspect)"
            texts.append(text)
        rows.append(texts)
    return headers, rows


def _known(x) -> bool:
    return x is not None and x == x


def format_throttle_table(frame, cells=None, hypervisor: bool = False) -> str:
    """The throttle table (throttle_rows) with what its cells mean."""
    if frame.empty:
        return "no throttle measurements"
    headers, rows = throttle_rows(frame, cells)
    lines = [format_table(headers, rows), "",
             "Cells: median core clock from a dependent add chain run on each busy core right after a burst at "
             "that level; (%) is the change from the 1-core figure of the column; [low-high] the range over the "
             f"busy cores; ± the half-width of the 95% interval of the median; (noisy) where that is above "
             f"{100 * THROTTLE_WIDE_CI:.0f}% of the median, (N samples) where a core gave fewer than "
             f"{THROTTLE_MIN_SAMPLES} clock samples."]
    if hypervisor:
        lines.append("This machine is a VM: the guest sees the clock its vCPU runs at, but the host may share the "
                     "physical cores and change their clock for reasons the guest cannot see.")
    return "\n".join(lines)
