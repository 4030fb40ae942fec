"""`harness calibrate`: measure kernels on this device for `harness predict`."""
from __future__ import annotations

import sys
from pathlib import Path

from harness.commands import options
from harness.core.errors import UsageError
from harness.core.text import fmt_duration
from harness.session.calibration import DEFAULT_BUDGET_S, FRAMEWORKS, calibrate

# Seconds the command spends outside the calibration rounds (imports, the fingerprint).
START_S = 5.0

HELP = "measure kernels in random networks for `harness predict` (minutes, not days)"
DESCRIPTION = (
    "Measures the kernels of random networks whose layers are drawn from the zoo's real layers and perturbed "
    "(channels, spatial size, stride): dense, 1x1, depthwise, grouped and strided convs, GEMMs, pooling, "
    "element-wise ops and activations, normalizations, softmax and data movement, each timed by the framework's "
    "profiler inside its network, and each network timed whole. Later rounds favour the kernel classes the "
    "predictor fitted so far gets most wrong (adaptive sampling). Writes results/<device>/calibration-"
    "<framework>-t<threads>.json beside the device profile, keyed by this device, the framework's version and "
    "the thread count; every round is a run stored under results/. A device without measured ceilings at a "
    "thread count gets the quick probe's cases in the first round.")
EPILOG = """\
examples:
  harness calibrate                                   onnxruntime at 1 and all threads, 5 minutes in all
  harness calibrate --framework eager --threads 1 --budget 120
"""


def add_arguments(parser) -> None:
    parser.add_argument("--framework", default="onnxruntime", choices=list(FRAMEWORKS),
                        help="the framework whose kernels are calibrated (default onnxruntime)")
    options.add_threads(parser)
    parser.add_argument("--budget", type=options.bounded_float(10.0, 86_400.0), default=DEFAULT_BUDGET_S,
                        metavar="SECONDS",
                        help=f"wall-clock seconds for the whole calibration, split over the thread counts "
                             f"(default {DEFAULT_BUDGET_S:g})")
    parser.add_argument("--opt-level", default="all", choices=["disable", "basic", "extended", "all"],
                        help="ONNX Runtime graph optimization level calibrated (default all)")
    options.add_run_options(parser)


def run(args) -> int:
    threads = options.thread_counts(args.threads)
    share = (args.budget - START_S) / len(threads)
    if share < 30:
        raise UsageError(f"--budget {args.budget:g}: {share:.0f} s for each of {len(threads)} thread counts is too "
                         "short for a calibration; give at least 30 s a thread count")
    written = []
    for t in threads:
        print(f"calibrating {args.framework} at {t} thread{'s' if t != 1 else ''} ({fmt_duration(share)})",
              file=sys.stderr)
        written.append(calibrate(args.framework, t, share, Path(args.results), args.opt_level,
                                 progress=not args.no_progress))
    for path in written:
        print(f"calibration written to {path}")
    print(f"next: harness predict MODEL --framework {args.framework} --threads {' '.join(map(str, threads))}")
    return 0
