"""Measured against theoretical time for the first source document's conv configs and the
distinct convs of ResNet-50, on torch and ONNX Runtime at 1 and all threads.

Cases come from suites/conv.yaml (ids doc-* and resnet50-l*, one dtype), run through the
harness core (harness.session.pipeline.run_suite: worker processes, warm-up, timed samples, stored
run). Each measured record carries its placement (record.roofline); the table shows measured / theoretical time per
config and backend x threads (1.0 = on the roof, 10 = a tenth of what the roofline allows),
sorted worst first so configs far below the roofline stand out. The theoretical time uses
measured ceilings where the device has a profile (cache-aware: the level the working set fits in),
else the nominal peak ("datasheet").

Usage: .venv/bin/python bench/conv_vs_theory.py [--budget-scale 1] [--only doc-] [--dtype float32]
Run it on a quiet machine: bandwidth-bound points move with other tenants' traffic.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.core.records import Record, final  # noqa: E402
from harness.core.suite import load_suite  # noqa: E402
from harness.core.text import format_table  # noqa: E402
from harness.session.pipeline import run_suite, scale_budgets  # noqa: E402

PREFIXES = ("doc-", "resnet50-l")


def select_cases(suite, dtype: str, only: str | None):
    cases = [c for c in suite.cases
             if c.case_id.startswith(PREFIXES) and c.params.get("dtype") == dtype
             and (only is None or only in c.case_id)]
    return cases


def ratio(record: Record) -> float | None:
    """measured / theoretical time, or None without a roofline."""
    roof = record.roofline
    if not record.measured or roof is None or not roof.theoretical_time_s:
        return None
    return record.timing.median / roof.theoretical_time_s


def table(records: list[Record]) -> str:
    """One row per config; one column per backend x threads, worst config first."""
    records = final(records)
    columns = sorted({(r.params["backend"], r.threads) for r in records}, key=lambda c: (c[0] != "torch", c[1]))
    rows: dict[str, dict] = {}
    for r in records:
        config = r.case_id.split("[")[0]
        row = rows.setdefault(config, {"cells": {}, "record": r})
        row["cells"][(r.params["backend"], r.threads)] = r
    lines = []
    for config, row in rows.items():
        ratios = [ratio(r) for r in row["cells"].values()]
        worst = max((x for x in ratios if x is not None), default=float("nan"))
        first = row["record"]
        roof = first.roofline
        conv = first.info.get("conv") or first.params
        shape = (f"{conv['ic']}->{conv['oc']} {conv['h']}x{conv.get('w') or conv['h']} "
                 f"k{conv['kh']} s{conv['stride']}" + (f" g{conv['groups']}" if conv["groups"] > 1 else ""))
        cells = []
        for col in columns:
            r = row["cells"].get(col)
            x = ratio(r) if r else None
            cells.append(f"{x:.2f}x" if x is not None else (r.status if r else "-"))
        intensity = first.cost.intensity if first.cost and first.cost.intensity else 0
        lines.append((worst, [config, shape, f"{intensity:.3g}", roof.bound if roof else "-",
                              f"{roof.source} {roof.level or ''}".strip() if roof else "-", *cells]))
    lines.sort(key=lambda x: -x[0] if x[0] == x[0] else 0)
    headers = ["config", "conv", "FLOP/B", "bound", "ceiling", *[f"{b} t={t}" for b, t in columns]]
    return format_table(headers, [cells for _, cells in lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-scale", type=float, default=1.0, help="scale every case's budget (0.05 for a smoke run)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--only", help="only case ids containing this text (e.g. doc-t1)")
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    suite = load_suite(ROOT / "suites" / "conv.yaml")
    suite.cases = select_cases(suite, args.dtype, args.only)
    if not suite.cases:
        print("no cases selected", file=sys.stderr)
        return 2
    suite.name = "conv-vs-theory"
    scale_budgets(suite, args.budget_scale)
    print(f"running {len(suite.cases)} cases", file=sys.stderr)
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    print("measured / theoretical time (1.00x = on the roofline; worst config first)\n")
    print(table(records))
    missing = sum(1 for r in final(records) if r.measured and r.roofline is None)
    if missing:
        print(f"\n{missing} ok records have no roofline (no peak known for their dtype?)")
    print(f"\nrun stored in {store.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
