"""What commands print about records: the headline figure of a record and the run summary.

Suspect records are shown apart from ok ones: measured, kept, but past a documented limit
(their reasons follow the table).
"""
from __future__ import annotations

from harness.core.records import Record, final
from harness.core.trust import NOISY_CV
from harness.presentation.advice import advice_lines
from harness.core.text import cut, finite, fmt_pct, fmt_si, fmt_time, format_table, plural


def figure_of(record: Record) -> str:
    """The number a reader wants for a record: its own metric, else FLOP/s, else bytes/s."""
    m, cost = record.metrics, record.cost
    if finite(m.get("ghz")):
        return f"{m['ghz']:.3f} GHz"
    intensity = cost.intensity if cost else None
    if finite(m.get("flops_per_s")) and cost and cost.flops and (
            not finite(m.get("bytes_per_s")) or (finite(intensity) and intensity >= 1)):
        return fmt_si(m["flops_per_s"], "FLOP/s")
    if finite(m.get("bytes_per_s")):
        return fmt_si(m["bytes_per_s"], "B/s")
    return ""


def noisy_cv(record: Record) -> str:
    """'13% (noisy)' for a coefficient of variation past trust.NOISY_CV, else '2.1%'."""
    cv = record.timing.cv
    return f"{fmt_pct(cv, 2)}{' (noisy)' if cv > NOISY_CV else ''}"


def roof_cell(record: Record) -> str:
    """'48% compute' (measured ceilings), '96% compute (datasheet)', '' when not placed."""
    p = record.roofline
    if p is None or p.efficiency is None:
        return ""
    level = f" {p.level}" if p.bound.startswith("memory") and p.level else ""
    text = f"{fmt_pct(p.efficiency, 2)} {p.bound.split()[0]}{level}"
    if p.source != "measured":
        text += " (datasheet)"
    if p.explanation and "distrust" in p.explanation:
        text += " (!)"
    return text


def summary_table(records: list[Record]) -> str:
    rows = []
    for r in final(records):
        if r.kind.startswith("layer."):
            continue
        if r.measured:
            t = r.timing
            rows.append([r.case_id, r.status, fmt_time(t.median), f"[{fmt_time(t.ci95_low)}, {fmt_time(t.ci95_high)}]",
                         fmt_pct(t.cv, 2), t.n, f"{r.faults.minor_per_call:.3g}" if r.faults else "",
                         figure_of(r), roof_cell(r), len(r.warnings)])
        else:
            rows.append([r.case_id, r.status, "", "", "", "", "", cut(r.reason, 60), "", ""])
    return format_table(["case", "status", "median", "95% CI", "CV", "n", "faults/call", "figure", "of roofline",
                         "warnings"], rows, align_right={2, 4, 5, 6, 9})


def summary_counts(records: list[Record]) -> str:
    kept = [r for r in final(records) if not r.kind.startswith("layer.")]
    counts = {s: sum(r.status == s for r in kept) for s in ("ok", "suspect", "failed", "skipped")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in ("ok", "failed"))
    remeasured = sum(r.attempt > 1 for r in kept)
    if remeasured:
        text += f" ({plural(remeasured, 'case')} re-measured in a fresh worker)"
    return text


def suspect_lines(records: list[Record]) -> list[str]:
    """One line per suspect record: what made it suspect."""
    return [f"suspect: {r.case_id}: {'; '.join(r.suspect_reasons)}" for r in final(records)
            if r.status == "suspect"]


def distrust_lines(records: list[Record]) -> list[str]:
    """Efficiencies above the roof, each with its reason."""
    return [f"{r.case_id}: {fmt_pct(r.roofline.efficiency, 3)} of its roof: {r.roofline.explanation}"
            for r in final(records) if r.roofline is not None and r.roofline.explanation]


def closing_lines(store, records: list[Record]) -> list[str]:
    """What every measuring command prints after its table: the suspect cases and the figures
    above their roof, each with its reason; the warnings by topic, each with the action that
    would fix it; where the run and its report are."""
    lines = suspect_lines(records) + distrust_lines(records)
    machine = list(getattr(store.manifest, "warnings", None) or []) if getattr(store, "manifest", None) else []
    advice = advice_lines(records, machine)
    if advice:
        lines += ["", "warnings by topic (what each means, and the fix):"] + [f"  {line}" for line in advice]
    lines += [f"run stored in {store.path}",
              f"report: {store.report}" if store.report else "report: not written (see the message above)"]
    return lines
