"""`harness throttle`: the clock by busy cores and instruction-set level."""
from __future__ import annotations

import sys
from pathlib import Path

from harness.analysis.throttle import throttle_cells, throttle_table
from harness.commands import options
from harness.core import isa, system
from harness.core.errors import UsageError
from harness.core.suite import Suite, parse_suite
from harness.presentation.console import closing_lines
from harness.presentation.tables import format_throttle_table
from harness.core.text import cut
from harness.session.pipeline import exit_status, run_suite

HELP = ("the core clock by busy cores and instruction-set (ISA) level, as an OpenPPL talk tabulates it for the "
        "Intel Core i9-10980XE")
DESCRIPTION = ("Measures the core clock with 1..N cores busy at each instruction-set level, the way the first "
               "source document (an OpenPPL talk on inference speed) shows it for an Intel Core i9-10980XE: rows "
               "busy cores, columns ISA level (none = plain integer adds, the document's 'Normal'), cells MHz "
               "with the change from one busy core. Each busy core alternates an FMA burst at the level with a "
               "dependent add chain that reads the clock on the same core.")


def throttle_suite(levels: list[str], max_cores: int | None = None, seconds: float = 0.3,
                   dtype: str = "float32", budget: float = 1.0) -> Suite:
    """One probe.throttle case per (busy cores, level), 1..max_cores cores."""
    allowed = system.available_cpus()
    max_cores = max_cores or len(allowed)
    cases = [{"id": f"throttle-{level}", "kind": "probe.throttle",
              "params": {"isa": level, "dtype": dtype, "seconds": seconds},
              "threads": f"1..{max_cores}"} for level in levels]
    data = {"name": "throttle", "description": "clock frequency by busy cores and ISA level",
            "defaults": {"budget": budget, "min_samples": 3, "warmup_max": 0.5, "timeout": 120}, "cases": cases}
    return parse_suite(data, "throttle", allowed)


def add_arguments(parser) -> None:
    parser.add_argument("--isa", nargs="+", metavar="LEVEL",
                        help="levels to load with (default: none and every level this CPU has)")
    parser.add_argument("--max-cores", type=options.bounded_int(1, options.MAX_THREADS),
                        help="busy cores up to this many (default: all available)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--seconds", type=options.bounded_float(0.05, 60.0), default=0.3,
                        help="length of one sampling call in seconds (default 0.3)")
    parser.add_argument("--budget", type=options.positive_seconds, default=1.0,
                        help="sampling seconds per cell (default 1)")
    options.add_run_options(parser)


def run(args) -> int:
    levels = ["none"] + [lvl for lvl in isa.usable_levels() if lvl in isa.LOAD_LEVELS[1:]]
    if args.isa:
        unknown = [lvl for lvl in args.isa if lvl not in levels]
        if unknown:
            raise UsageError(f"--isa {unknown[0]}: not available here (available: {', '.join(levels)})")
        levels = [lvl for lvl in levels if lvl in args.isa]
    cpus = system.available_cpus()
    if args.max_cores is not None and args.max_cores > len(cpus):
        raise UsageError(f"--max-cores {args.max_cores}: must be between 1 and the {len(cpus)} CPUs "
                         "this process may use")
    suite = throttle_suite(levels, args.max_cores, seconds=args.seconds, dtype=args.dtype, budget=args.budget)
    print(f"throttle: {len(suite.cases)} cells ({', '.join(levels)} x 1..{args.max_cores or len(cpus)} "
          "busy cores)", file=sys.stderr)
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    print(format_throttle_table(throttle_table(records), throttle_cells(records), "hypervisor" in system.cpu_flags()))
    for r in records:
        if not r.measured:
            print(f"{r.case_id}: {r.status}: {cut(r.reason, 140)}")
    print("\n".join(closing_lines(store, records)))
    return exit_status(records)
