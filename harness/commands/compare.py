"""`harness compare RUN_A RUN_B [...]`: the same cases across runs or devices, side by side."""
from __future__ import annotations

from pathlib import Path

from harness.commands import options
from harness.core.errors import UsageError
from harness.core.store import resolve_run_arg
from harness.core.text import fmt_pct, format_table
from harness.presentation.compare import (MIN_EFFECT, POOLED_MIN_EFFECT, basis_note, compare_runs, comparison_rows,
                                          conditions_rows, geometric_means, pivot_tables, regressions, roof_rows,
                                          run_letter, write_comparison)
from harness.session.fleet_store import fleet_runs, is_fleet

HELP = "line up matching cases of two or more runs: ratios with intervals, verdicts, a regression gate"
DESCRIPTION = (
    "Matches cases across runs by case id (else kind, params and threads); the first run is the baseline. Each "
    "later run's case gets the ratio of medians (> 1 = slower) with a 95% bootstrap interval and a verdict: "
    "slower or faster when the ratio passes the minimum effect and the interval is clear of 1, same when the whole "
    "interval lies within the minimum effect, unclear otherwise. Where both runs pooled fresh worker processes "
    "(--processes K when they ran), the interval resamples the per-process medians and so holds run-to-run "
    f"variation (minimum effect {fmt_pct(POOLED_MIN_EFFECT)}); otherwise it rests on one process's samples, which "
    f"cannot show how a rerun would differ, and the minimum effect is {fmt_pct(MIN_EFFECT)}. Prints the geometric "
    "mean of the ratios, tables side by side with the fastest marked, and the conditions of each run with what "
    "differs; writes comparison.html/.md/.csv and a plot.")
EPILOG = """\
examples:
  harness compare latest~1 latest               (run folders, or 'latest')
  harness compare BASE NEW --fail-slower 10     exit 1 if any case is >10% slower beyond the noise (a CI gate)
  harness compare results/fleet/<stamp>-quick   a fleet run's nodes side by side (the first node the baseline)
"""


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders (or 'latest'), or fleet run folders (results/fleet/<run>: its node runs, "
                             "in node order); the first run is the baseline")
    parser.add_argument("--out", help="folder for comparison.html/.md/.csv and the plot "
                                      "(default: <results>/comparisons/<runs>)")
    options.add_results(parser)
    parser.add_argument("--min-effect", type=options.bounded_float(0.0, 10.0), metavar="FRACTION",
                        help=f"smallest change called faster or slower, as a fraction (default {MIN_EFFECT} for runs "
                             f"of one process, {POOLED_MIN_EFFECT} for pooled processes)")
    parser.add_argument("--fail-slower", type=options.bounded_float(0.0, 1e6), metavar="PCT",
                        help="exit 1 when any matched case is slower by more than PCT percent beyond the noise (the "
                             "low end of its 95%% interval above 1 + PCT/100)")


def expand(arg: str, results: str) -> list[Path]:
    """A run folder, or a fleet run folder's node runs."""
    if is_fleet(arg):
        runs = fleet_runs(arg)
        if not runs:
            raise UsageError(f"{arg}: the fleet run links no node run (every node failed before its run began)")
        return runs
    return [resolve_run_arg(arg, results)]


def run(args) -> int:
    paths = [p for arg in args.runs for p in expand(arg, args.results)]
    if len(paths) < 2:
        raise UsageError("compare needs at least two runs (a fleet run counts as its node runs)")
    df = compare_runs(paths, min_effect=args.min_effect)
    headers, lines = comparison_rows(df)
    print(format_table(headers, lines))
    for label, cases in df.attrs["unmatched"].items():
        if cases:
            print(f"only in {label}: {len(cases)} case{'s' if len(cases) != 1 else ''} (not compared): "
                  f"{', '.join(cases[:6])}{' ...' if len(cases) > 6 else ''}")
    print()
    print(basis_note(df))
    for label, (g, n) in geometric_means(df).items():
        print(f"geometric mean of the ratios, {label}: {g:.3f} over {n} cases "
              f"({'slower' if g > 1 else 'faster'} by {fmt_pct(abs(g - 1))})")
    pivots = pivot_tables(df)
    if pivots:
        print("\nside by side (runs: " + ", ".join(f"{run_letter(i)} = {label}" for i, label in
                                                enumerate(df.attrs["runs"])) + "; * = the fastest of a row)")
    for family, pivot_headers, rows in pivots:
        print(f"\n{family}: median per case, by run, backend and threads")
        print(format_table(pivot_headers, rows, align_right=set(range(1, len(pivot_headers)))))
    roof = roof_rows(df)
    if roof:
        print("\n% of roof per run (each against its own run's ceilings):")
        print(format_table(*roof, align_right=set(range(1, len(roof[0])))))
    cond_headers, cond_rows = conditions_rows(df)
    print("\nconditions (≠ where the runs differ):")
    print(format_table(cond_headers, cond_rows))
    if args.out:
        out = Path(args.out)
    else:
        names = [p.name for p in paths]
        name = "--".join(names[:3]) + (f"--and-{len(names) - 3}-more" if len(names) > 3 else "")
        out = paths[0].parent.parent / "comparisons" / name
    try:
        written = write_comparison(df, out, args.fail_slower)
    except OSError as exc:
        raise UsageError(f"{out}: cannot write the comparison there ({exc.strerror or exc})") from None
    print(f"\ncomparison written to {written[0]} (and .md, .csv, plot in {out})")
    if args.fail_slower is not None:
        bad = regressions(df, args.fail_slower)
        if len(bad):
            print(f"--fail-slower {args.fail_slower:g}: {len(bad)} case(s) slower beyond the noise: "
                  + ", ".join(f"{r['case']} x{r['ratio']:.3f}" for _, r in bad.iterrows()))
            return 1
        print(f"--fail-slower {args.fail_slower:g}: no case slower by more than {args.fail_slower:g}% beyond the noise")
    return 0
