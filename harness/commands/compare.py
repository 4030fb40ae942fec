"""`harness compare RUN_A RUN_B [...]`: the same cases across runs or devices, side by side."""
from __future__ import annotations

from pathlib import Path

from harness.commands import options
from harness.core.errors import UsageError
from harness.core.store import resolve_run_arg
from harness.presentation.compare import ALPHA, MIN_EFFECT, compare_runs, comparison_rows, write_comparison
from harness.core.text import format_table

HELP = "line up matching cases of two or more runs, with significance"
DESCRIPTION = ("Matches cases across runs by case id (else kind, params and threads); the first run is the "
               "baseline. Each later run's case gets the ratio of medians (> 1 = slower) and a verdict from a "
               "Mann-Whitney U test on the samples. Writes comparison.html/.md/.csv and a plot.")


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders (or 'latest'); the first is the baseline")
    parser.add_argument("--out", help="folder for comparison.html/.md/.csv and the plot "
                                      "(default: <results>/comparisons/<runs>)")
    options.add_results(parser)
    parser.add_argument("--alpha", type=options.bounded_float(0.0, 1.0, low_open=True), default=ALPHA,
                        help=f"significance level (default {ALPHA})")
    parser.add_argument("--min-effect", type=options.bounded_float(0.0, 10.0), default=MIN_EFFECT,
                        help=f"smallest change called faster/slower, as a fraction (default {MIN_EFFECT})")


def run(args) -> int:
    if len(args.runs) < 2:
        raise UsageError("compare needs at least two runs")
    paths = [resolve_run_arg(r, args.results) for r in args.runs]
    df = compare_runs(paths, alpha=args.alpha, min_effect=args.min_effect)
    headers, lines = comparison_rows(df)
    print(format_table(headers, lines))
    if args.out:
        out = Path(args.out)
    else:
        names = [p.name for p in paths]
        name = "--".join(names[:3]) + (f"--and-{len(names) - 3}-more" if len(names) > 3 else "")
        out = paths[0].parent.parent / "comparisons" / name
    try:
        written = write_comparison(df, out)
    except OSError as exc:
        raise UsageError(f"{out}: cannot write the comparison there ({exc.strerror or exc})") from None
    print(f"\ncomparison written to {written[0]} (and .md, .csv, plot in {out})")
    return 0
