"""`harness predict`: a model's latency on this device from the calibration, before timing it."""
from __future__ import annotations

from pathlib import Path

from harness.commands import options
from harness.core import registry
from harness.core.errors import UsageError
from harness.core.text import format_table
from harness.presentation.prediction_text import (BOTTLENECK_HEADERS, CLASS_HEADERS, MODEL_HEADERS, MODEL_NUMERIC,
                                                  bottleneck_rows, class_rows, error_summary, model_rows)
from harness.session.calibration import FRAMEWORKS
from harness.session.prediction import run_prediction

HELP = "predict a model's latency from the calibration without timing it (--check, --validate: against measured)"
DESCRIPTION = (
    "Predicts the latency of a zoo model or an ONNX file on this device: the kernels the framework would run "
    "(ONNX Runtime's optimized graph; torch eager's calls), each costed, each predicted from its roofline time "
    "against this device's ceilings corrected by what `harness calibrate` measured, summed as calibration found "
    "whole models add up. Prints the latency with a ±2 standard-deviation interval, the time per kernel class and "
    "the predicted bottlenecks. --check also measures the model whole and kernel by kernel; --validate measures "
    "every zoo model at each thread count and batch and prints the error distribution. Each prediction is stored "
    "as a run; its report shows it.")
EPILOG = """\
examples:
  harness predict resnet50                         onnxruntime, 1 and all threads, batch 1
  harness predict my.onnx --shape input=1x3x224x224 --threads 2
  harness predict mobilenet_v2 --check --batch 1 8 predicted beside measured, per model and kernel class
  harness predict --validate                       every zoo model, 1 and all threads, batch 1 and 8
"""


def add_arguments(parser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL|FILE",
                        help="a zoo model (resnet18, mobilenet_v2, ...) or a .onnx file; omit with --validate")
    parser.add_argument("--framework", default="onnxruntime", choices=list(FRAMEWORKS),
                        help="the framework whose latency is predicted (default onnxruntime)")
    options.add_threads(parser)
    parser.add_argument("--batch", nargs="+", type=options.bounded_int(1, 4096), default=None,
                        help="batch sizes (default 1; with --validate 1 and 8)")
    parser.add_argument("--image", type=options.bounded_int(32, 1024), default=224,
                        help="input height = width of a zoo model (default 224)")
    parser.add_argument("--shape", default="", help="an ONNX file's input shapes: NAME=1x3x224x224[,NAME=...]")
    parser.add_argument("--opt-level", default="all", choices=["disable", "basic", "extended", "all"],
                        help="ONNX Runtime graph optimization level (default all; must match the calibration)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="also measure the model, whole and kernel by kernel")
    mode.add_argument("--validate", action="store_true",
                      help="predict and measure every zoo model: the error distribution and a plot")
    parser.add_argument("--calibration", metavar="FILE",
                        help="a calibration file (default: results/<device>/calibration-<framework>-t<N>.json)")
    parser.add_argument("--top", type=options.bounded_int(1, 1000), default=8, help="bottlenecks shown (default 8)")
    options.add_run_options(parser)


def run(args) -> int:
    zoo = registry.model_zoo().MODELS
    if args.validate:
        if args.model:
            raise UsageError(f"--validate: predicts every zoo model; give no MODEL (got {args.model})")
        models = list(zoo)
    elif not args.model:
        raise UsageError("MODEL: give a zoo model or a .onnx file (or --validate)")
    elif args.model.endswith(".onnx"):
        if not Path(args.model).is_file():
            raise UsageError(f"{args.model}: no such ONNX file")
        models = [args.model]
    elif args.model not in zoo:
        raise UsageError(f"{args.model}: not a zoo model ({', '.join(zoo)}) or a .onnx file")
    else:
        models = [args.model]
    threads = options.thread_counts(args.threads)
    batches = args.batch or ([1, 8] if args.validate else [1])
    mode = "validate" if args.validate else "check" if args.check else "predict"
    store, rows, failed = run_prediction(models, args.framework, threads, batches, args.image, args.shape,
                                         args.opt_level, Path(args.results), mode, args.calibration,
                                         progress=not args.no_progress)
    print(format_table(MODEL_HEADERS, model_rows(rows), align_right=MODEL_NUMERIC))
    if mode != "predict":
        print("\nprediction error: " + "; ".join(error_summary(rows)))
        print("uncalibrated baseline (sum of roofline times): " + "; ".join(error_summary(rows, "baseline_error")))
    if mode != "validate":
        for r in rows:
            print(f"\n{r['model']}, batch {r['batch']}, {r['threads']} thread{'s' if r['threads'] != 1 else ''}:")
            print(format_table(CLASS_HEADERS, class_rows(r), align_right={1, 2, 3, 4, 5}))
            print(format_table(BOTTLENECK_HEADERS, bottleneck_rows(r)[:args.top], align_right={2, 3, 4}))
            for w in r["warnings"][:5]:
                print(f"warning: outside the calibrated range: {w}")
    for r in failed:
        print(f"{r.case_id}: {r.status}: {r.reason}")
    print(f"\nrun stored in {store.path}")
    print(f"report: {store.report}")
    return 1 if failed else 0
