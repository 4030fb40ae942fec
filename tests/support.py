"""Helpers the tests share: running the command line, and writing small runs to read back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def harness_cli(*args, cwd=None, timeout=120, env=None):
    """Runs `python -m harness ARGS` and returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def run_cli(*args):
    """`harness ARGS` in this process (no interpreter start: a usage error takes milliseconds),
    as a CompletedProcess with the exit code, stdout and stderr. For checks of what a command
    prints and returns; signals, workers and `python -m harness` itself need harness_cli."""
    import contextlib
    import io

    from harness.commands.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's one-line errors and --help end this way
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["harness", *map(str, args)], code, out.getvalue(), err.getvalue())


def one_line_error(out) -> str:
    """The stderr of a usage error, checked to be one line and no traceback."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]


def timing(samples):
    """A Timing of these samples (seconds per call), summarised as the core does."""
    from harness.core.records import Timing
    from harness.core.stats import summarize

    return Timing(**summarize(samples), samples=list(samples))


def record(kind, params=None, threads=1, *, flops=None, nbytes=None, samples=(1.0, 1.0, 1.0), status="ok",
           case_id=None, info=None, suspect=(), clock_ghz=None, working_set=None, started_at=1000.0):
    """A measured record built by hand: `samples` seconds per call for `flops` FLOPs and `nbytes`
    bytes of work per call."""
    from harness.core.records import Conditions, Cost, Faults, Record

    t = timing(samples)
    metrics = {}
    if flops is not None:
        metrics["flops_per_s"] = flops / t.median
    if nbytes:
        metrics["bytes_per_s"] = nbytes / t.median
    return Record(case_id=case_id or f"{kind}[{json.dumps(params or {}, sort_keys=True)},t={threads}]", kind=kind,
                  status="suspect" if suspect else status, params=dict(params or {}), threads=threads,
                  cpus_requested=list(range(threads)), affinity=list(range(threads)),
                  cost=Cost.of(flops, nbytes, working_set_bytes=working_set), timing=t, faults=Faults(),
                  conditions=Conditions(clock_ghz_after=clock_ghz), metrics=metrics, info=dict(info or {}),
                  suspect_reasons=list(suspect), started_at=started_at)
