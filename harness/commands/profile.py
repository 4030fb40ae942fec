"""`harness profile`: every ceiling of this device, its history, and why the one in force was chosen."""
from __future__ import annotations

import os
import time
from pathlib import Path

from harness.analysis import fingerprint as fpmod
from harness.analysis import profile as profiles
from harness.analysis import snapshot as snapshots
from harness.commands import options
from harness.core.errors import UsageError
from harness.presentation.tables import format_history, format_snapshot
from harness.session.pipeline import blas_library

HELP = "show the device profile: each ceiling, its history, why the one in force was chosen"
DESCRIPTION = ("The device profile keeps every measurement of every ceiling (peak FLOP/s, bandwidth per memory "
               "level, the clock) with its run, time and health. The ceiling in force is the best healthy "
               f"measurement among the {profiles.RECENT_RUNS} most recent runs that measured it; suspect "
               "measurements (noise, load, a host that halves two threads, an inverted memory hierarchy) are "
               "kept but never used. --forget RUN drops one run's measurements; --reset starts afresh.")


def add_arguments(parser) -> None:
    parser.add_argument("--ceiling", metavar="TEXT", help="only ceilings whose name contains TEXT (e.g. avx512, L2)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--forget", metavar="RUN", help="drop the measurements of this run id (device/run) or run folder")
    group.add_argument("--reset", action="store_true", help="start the profile afresh (the old one is kept aside)")
    options.add_results(parser)


def run(args) -> int:
    fp = fpmod.fingerprint(with_gpu=False)
    path = profiles.profile_path(args.results, fpmod.device_slug(fp))
    profile = profiles.load_profile(path)
    if profile is None:
        raise UsageError(f"{path}: no device profile yet; `harness probe --quick` measures one")
    if args.reset:
        aside = path.with_name(f"{path.name}.reset-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, aside)
        except OSError as exc:
            raise UsageError(f"{path}: cannot move the profile aside ({exc.strerror or exc})") from None
        print(f"profile reset: the old one is kept as {aside}")
        return 0
    if args.forget is not None:  # --forget "" is a run id too, and none has it
        run_id = args.forget.rstrip("/")
        if Path(run_id).is_dir():
            run_id = f"{Path(run_id).resolve().parent.name}/{Path(run_id).resolve().name}"
        dropped = profile.forget(run_id)
        if not dropped:
            known = ", ".join(profile.runs_in_order()[-5:]) or "none"
            raise UsageError(f"--forget {args.forget}: no measurement of that run in {path} (recent runs: {known})")
        profiles.save_profile(path, profile)
        print(f"forgot {dropped} measurement(s) of run {run_id}")
    blas = blas_library(fp)
    print(f"device profile {path}: {len(profile.measurements)} measurements from "
          f"{len(profile.runs_in_order())} runs\n")
    print(format_history(profile, profile.in_force(blas), args.ceiling))
    print()
    print(format_snapshot(snapshots.take(profile, fp, path, blas)))
    return 0
