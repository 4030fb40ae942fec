"""`harness run SUITE`: run a suite file, storing every record under results/."""
from __future__ import annotations

import sys
from pathlib import Path

from harness.commands import options
from harness.core.errors import UsageError
from harness.core.suite import load_suite
from harness.presentation.console import closing_lines, summary_counts, summary_table
from harness.core.text import plural
from harness.session.pipeline import exit_status, run_suite, scale_budgets

HELP = "run a suite file, storing every record under results/"
DESCRIPTION = ("Runs every case of a suite file (suites/*.yaml; `harness kinds` lists the case kinds), each in a "
               "worker process pinned to its CPUs, warmed up and timed; probe cases run first and update the "
               "device profile, then every other case is placed on the roofline against it. Prints a summary "
               "table and where the run and its report are.")


def add_arguments(parser) -> None:
    parser.add_argument("suite", help="a suite YAML file, e.g. suites/quick.yaml")
    options.add_filter(parser)
    options.add_budget_scale(parser)
    parser.add_argument("--processes", type=options.bounded_int(1, 100), metavar="K",
                        help="run every case in K fresh workers and pool the samples (pyperf's way; steadier "
                             "medians across runs, K times the time)")
    options.add_run_options(parser)


def print_outcome(store, records) -> None:
    print(summary_table(records))
    print(f"\n{summary_counts(records)}")
    print("\n".join(closing_lines(store, records)))


def run(args) -> int:
    suite = load_suite(args.suite)
    options.filter_cases(suite, args.filter)
    scale_budgets(suite, args.budget_scale)
    if args.processes is not None:
        for c in suite.cases:
            c.processes = args.processes
    print(f"running {plural(len(suite.cases), 'case')} of {suite.name} ({suite.path})", file=sys.stderr)
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    print_outcome(store, records)
    return exit_status(records)
