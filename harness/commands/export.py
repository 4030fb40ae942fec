"""`harness export RUN --format csv|parquet|pytest-benchmark`: a stored run for other tools."""
from __future__ import annotations

from harness.commands import options
from harness.core.errors import UsageError
from harness.core.store import resolve_run_arg
from harness.presentation.export import FORMATS, export_run

HELP = "a run's records as CSV, Parquet or pytest-benchmark JSON"
DESCRIPTION = ("csv: one row per record, nested fields joined with '.'; parquet: the same, samples as a list "
               "column; pytest-benchmark: the JSON `pytest --benchmark-json` writes, so its tools read our runs.")


def add_arguments(parser) -> None:
    parser.add_argument("run", help="a run folder (results/<device>/<run>) or 'latest'")
    parser.add_argument("--format", required=True, choices=list(FORMATS), dest="format")
    parser.add_argument("--out", help="file to write (default: records.csv / records.parquet / "
                                      "pytest-benchmark.json in the run folder)")
    options.add_results(parser)


def run(args) -> int:
    try:
        path = export_run(resolve_run_arg(args.run, args.results), args.format, args.out)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write there ({exc.strerror or exc})") from None
    print(f"exported to {path}")
    return 0
