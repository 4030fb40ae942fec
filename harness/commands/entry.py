"""The `harness` program's first lines: Ctrl-C or SIGTERM while the commands are still being
imported (a second or two, longer on a busy machine) ends the program quietly with 130 or
143, before any run exists; cli.main then installs the handler that marks a run interrupted.
This module imports nothing heavy so that the handler is in place within milliseconds."""
from __future__ import annotations

import signal
import sys


def _quit_early(signum, frame):
    raise SystemExit(130 if signum == signal.SIGINT else 143)


def quit_quietly_on_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _quit_early)


def main() -> int:
    quit_quietly_on_signals()
    from harness.commands.cli import main as cli_main  # the slow imports, under the early handler

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
