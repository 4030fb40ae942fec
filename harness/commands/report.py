"""`harness report RUN`: a run's HTML and Markdown report."""
from __future__ import annotations

from harness.commands import options
from harness.core.store import resolve_run_arg
from harness.presentation.report import TOP_OPS, write_report

HELP = "write a run's HTML and Markdown report (plots embedded)"
DESCRIPTION = ("Writes RUN/report.html (one self-contained file) and RUN/report.md from the run folder alone: its "
               "records, manifest and frozen profile snapshot, so writing it again gives the same report.")


def add_arguments(parser) -> None:
    parser.add_argument("run", help="a run folder (results/<device>/<run>) or 'latest'")
    parser.add_argument("--top", type=options.bounded_int(1, 10_000), default=TOP_OPS,
                        help=f"ops listed in 'where the time goes' (default {TOP_OPS})")
    options.add_results(parser)


def run(args) -> int:
    html_path, md_path = write_report(resolve_run_arg(args.run, args.results), top=args.top)
    print(f"report: {html_path}")
    print(f"markdown: {md_path}")
    return 0
