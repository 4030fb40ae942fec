"""`harness probe`: measure the ceilings and update the device profile."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from harness.analysis import profile as profiles
from harness.analysis.throttle import throttle_cells, throttle_table
from harness.commands import options
from harness.core import system
from harness.core.errors import UsageError
from harness.core.suite import Suite, load_suite, parse_suite
from harness.presentation.console import closing_lines, summary_counts
from harness.presentation.tables import format_measurements, format_snapshot, format_throttle_table
from harness.core.text import cut
from harness.session.pipeline import Session, exit_status, scale_budgets

HELP = "measure peak FLOP/s, bandwidth per memory level and the clock; updates the device profile"
DESCRIPTION = ("Measures this device's ceilings: peak FLOP/s per dtype, instruction-set level and thread count "
               "(register FMA chains), BLAS GEMM, DRAM bandwidth (STREAM), bandwidth per cache level (a "
               "working-set sweep) and the clock under load. Every measurement is kept in the device profile "
               "(results/<device>/profile.json) with its health; the ceiling in force is the best healthy one "
               "of the recent runs (`harness profile` shows why). --quick takes under a minute.")
SUITES = Path(__file__).resolve().parent.parent.parent / "suites"
SWEEP_OPS = ("read", "write", "triad")


def sweep_sizes(llc_bytes: int, points_per_doubling: int = 4, start: int = 4096, factor: int = 8) -> list[int]:
    """Working-set sizes in bytes, geometric: start * 2**(k / points_per_doubling) up to
    factor x llc_bytes (included when it falls on the grid), rounded to whole 64-byte lines."""
    stop = factor * llc_bytes
    count = int(math.floor(points_per_doubling * math.log2(stop / start) + 1e-9))
    sizes = []
    for k in range(count + 1):
        size = round(start * 2 ** (k / points_per_doubling) / 64) * 64
        if not sizes or size > sizes[-1]:
            sizes.append(size)
    return sizes


def probe_suite(quick: bool, sweep: bool = True) -> Suite:
    """The quick or the full probe; the full one adds a working-set sweep from 4 KiB to 8x the
    last-level cache (4 points per doubling, read, write and triad, 1 and all threads)."""
    suite = load_suite(SUITES / ("probe-quick.yaml" if quick else "probe.yaml"))
    if not quick and sweep:
        sizes_kib = [round(s / 1024, 3) for s in sweep_sizes(system.llc_total_bytes())]
        generated = parse_suite({
            "defaults": {"budget": 0.15, "min_samples": 5, "warmup_max": 0.3, "timeout": 120},
            "cases": [{"id": f"sweep-{op}", "kind": "probe.sweep", "params": {"op": op},
                       "matrix": {"kbytes": sizes_kib}, "threads": [1, "all"]} for op in SWEEP_OPS]},
            "generated sweep")
        suite.cases += generated.cases
    return suite


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="the quick probe (under a minute)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the working-set sweep of the full probe")
    options.add_filter(parser)
    options.add_budget_scale(parser)
    options.add_run_options(parser)


def run(args) -> int:
    suite = probe_suite(args.quick, sweep=not args.no_sweep)
    options.filter_cases(suite, args.filter)
    scale_budgets(suite, args.budget_scale)
    print(f"probe: {len(suite.cases)} cases ({suite.path.name}"
          f"{'' if args.quick or args.no_sweep else ' + working-set sweep'})", file=sys.stderr)
    session = Session(suite, Path(args.results), progress=not args.no_progress)
    store, records = session.run()
    if session.profile is None:
        raise UsageError(f"the probe measured nothing usable; see the failed cases in {store.path}")
    measured = [m for m in session.profile.measurements if m.run_id == store.run_id]
    print(format_measurements(measured))
    print()
    print(format_snapshot(session.snapshot))
    frame = throttle_table(records)
    if not frame.empty:
        print("\nClock by busy cores and ISA level")
        print(format_throttle_table(frame, throttle_cells(records), "hypervisor" in system.cpu_flags()))
    for r in records:
        if r.status in ("failed", "skipped"):
            print(f"{r.status}: {r.case_id}: {cut(r.reason, 140)}")
    print(f"\n{summary_counts(records)}")
    print(f"device profile: {profiles.profile_path(args.results, session.device)} (`harness profile` shows "
          "every ceiling's history)")
    print("\n".join(closing_lines(store, records)))
    return exit_status(records)
