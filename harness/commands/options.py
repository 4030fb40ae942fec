"""Options several commands share, declared once, and argument types whose errors name the
flag the user typed (argparse prints "argument --budget: ..." on one line, exit 2)."""
from __future__ import annotations

import argparse
import math

from harness.core import system
from harness.core.errors import UsageError
from harness.core.suite import MAX_SECONDS, resolve_threads

MAX_THREADS = 4096


def bounded_float(low: float, high: float, low_open: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < low or (low_open and value == low) or value > high:
            lower = f"> {low:g}" if low_open else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"must be {lower} and <= {high:g}, got {text}")
        return value
    return parse


def bounded_int(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {text}")
        return value
    return parse


positive_seconds = bounded_float(0.0, MAX_SECONDS, low_open=True)
seconds = bounded_float(0.0, MAX_SECONDS)
budget_scale = bounded_float(0.0, 1000.0, low_open=True)


def add_results(parser) -> None:
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="where runs and device profiles are stored (default: results)")


def add_progress(parser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress output")


def add_budget_scale(parser) -> None:
    parser.add_argument("--budget-scale", type=budget_scale, default=1.0, metavar="X",
                        help="multiply every case's sampling budget (e.g. 0.2 for a fast look)")


def add_run_options(parser) -> None:
    """--results and --no-progress: every command that makes a run takes both."""
    add_results(parser)
    add_progress(parser)


def add_threads(parser, default=("1", "all")) -> None:
    parser.add_argument("--threads", nargs="+", default=list(default), metavar="N",
                        help=f"thread counts, or 'all' (default: {' '.join(default)})")


def thread_counts(values: list[str], flag: str = "--threads") -> list[int]:
    """The thread counts a user typed (integers or 'all'), checked against the CPUs this process may use."""
    out: list = []
    for v in values:
        if v == "all":
            out.append("all")
            continue
        try:
            out.append(int(v))
        except ValueError:
            raise UsageError(f"{flag} {v}: expected a positive integer or 'all'") from None
    return list(dict.fromkeys(resolve_threads(flag, out, system.available_cpus())))


def add_filter(parser) -> None:
    parser.add_argument("--filter", metavar="TEXT", help="only cases whose id contains TEXT (e.g. 't=1]')")


def filter_cases(suite, text: str | None) -> None:
    """Keeps the cases whose id contains `text` (--filter); none left is one line."""
    if text:
        suite.cases = [c for c in suite.cases if text in c.case_id]
        if not suite.cases:
            raise UsageError(f"--filter {text!r}: no case id contains it")
