"""`harness conv`: one convolution, its cost, and how close each backend gets to the roofline.

    harness conv --ic 128 --oc 128 --hw 28 -k 3 --pad 1 [--backend torch onnxruntime] [--threads 1 2]

Prints the cost model's figures (MACs, FLOPs, params, bytes, intensity in true FLOP/byte),
then runs the config once per backend x thread count through the measurement core (a
worker process per thread count, as `harness run` does) and prints, per run: median time
and its spread, attained FLOP/s and B/s, the roofline's time (against the measured ceilings
at that thread count and the memory level the working set fits in, or the nominal peak,
labelled 'datasheet'), the share of the roof reached, and the path the backend took.
"""
from __future__ import annotations

import sys
from pathlib import Path

from harness.commands import options
from harness.core import system
from harness.core.errors import UsageError
from harness.core.records import final
from harness.core.suite import parse_suite
from harness.core.text import format_table
from harness.presentation.console import closing_lines
from harness.presentation.conv_text import RESULT_HEADERS, RESULT_NUMERIC, conv_cost, conv_cost_lines, result_row
from harness.session.pipeline import exit_status, run_suite

HELP = "time one convolution config on each backend against its roofline"
DESCRIPTION = __doc__
BACKENDS = ("torch", "onnxruntime")
# The conv kinds' own bounds (kernels/conv.py SHAPE_PARAMS), said in flag words here.
MAX_CHANNELS, MAX_SIDE, MAX_BATCH = 1 << 16, 1 << 15, 1 << 12


def add_arguments(parser) -> None:
    shape = parser.add_argument_group("the convolution (input N x IC x H x W)")
    shape.add_argument("--ic", type=int, required=True, help="input channels")
    shape.add_argument("--oc", type=int, required=True, help="output channels")
    shape.add_argument("--hw", type=int, required=True, help="input height (and width, unless --w)")
    shape.add_argument("--w", type=int, help="input width (default: --hw)")
    shape.add_argument("-k", "--kernel", type=int, default=3, help="kernel height (and width, unless --kw); default 3")
    shape.add_argument("--kw", type=int, help="kernel width (default: -k)")
    shape.add_argument("--stride", type=int, default=1)
    shape.add_argument("--pad", type=int, default=0, help="zero padding on every side (default 0)")
    shape.add_argument("--dilation", type=int, default=1)
    shape.add_argument("--groups", type=int, default=1, help="groups (= --ic for depthwise)")
    shape.add_argument("--batch", type=int, default=1)
    shape.add_argument("--bias", action="store_true", help="add a bias (default: none, as the document's formula)")
    shape.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "int8"],
                       help="a backend without it records a skip with the reason")
    run = parser.add_argument_group("the measurement")
    run.add_argument("--backend", nargs="+", default=list(BACKENDS), choices=BACKENDS,
                     help="default: both")
    run.add_argument("--threads", nargs="+", type=int,
                     help="thread counts to run at (default: 1 and all CPUs this process may use)")
    run.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    run.add_argument("--budget", type=options.seconds, default=0.5,
                     help="seconds of timed sampling per run (default 0.5)")
    options.add_run_options(run)


def _check_flags(args, cpus: list[int]) -> None:
    """One line naming the flag for each bad value the cost model would not name in flag words."""
    positive = {"--ic": args.ic, "--oc": args.oc, "--hw": args.hw, "--w": args.w, "-k": args.kernel,
                "--kw": args.kw, "--stride": args.stride, "--dilation": args.dilation,
                "--groups": args.groups, "--batch": args.batch}
    largest = {"--ic": MAX_CHANNELS, "--oc": MAX_CHANNELS, "--groups": MAX_CHANNELS, "--batch": MAX_BATCH}
    for flag, value in positive.items():
        if value is not None and value <= 0:
            raise UsageError(f"{flag}: must be > 0, got {value}")
        if value is not None and value > largest.get(flag, MAX_SIDE):
            raise UsageError(f"{flag}: must be at most {largest.get(flag, MAX_SIDE)}, got {value}")
    if not 0 <= args.pad <= MAX_SIDE:
        raise UsageError(f"--pad: must be between 0 and {MAX_SIDE}, got {args.pad}")
    if args.ic % args.groups:
        raise UsageError(f"--groups: --ic {args.ic} is not divisible by --groups {args.groups}")
    if args.oc % args.groups:
        raise UsageError(f"--groups: --oc {args.oc} is not divisible by --groups {args.groups}")
    for t in args.threads or []:
        if not 1 <= t <= len(cpus):
            raise UsageError(f"--threads {t}: must be between 1 and the {len(cpus)} CPUs this process may use")


def conv_params(args) -> dict:
    return {"n": args.batch, "ic": args.ic, "oc": args.oc, "h": args.hw, "w": args.w or 0,
            "kh": args.kernel, "kw": args.kw or 0, "stride": args.stride, "pad": args.pad,
            "dilation": args.dilation, "groups": args.groups, "bias": args.bias, "dtype": args.dtype,
            "device": args.device}


def conv_shape(args) -> dict:
    return {"n": args.batch, "ic": args.ic, "oc": args.oc, "h": args.hw, "w": args.w or args.hw, "kh": args.kernel,
            "kw": args.kw or args.kernel, "stride": args.stride, "pad": args.pad, "dilation": args.dilation,
            "groups": args.groups, "bias": args.bias}


def conv_cost_of(args):
    return conv_cost(conv_shape(args), args.dtype)


def build_suite(args, cpus: list[int]):
    threads = args.threads or sorted({1, len(cpus)})
    label = f"conv-{args.ic}x{args.hw}-oc{args.oc}-k{args.kernel}s{args.stride}g{args.groups}"
    data = {"name": "conv", "description": "harness conv",
            "cases": [{"id": label, "kind": "conv", "params": conv_params(args),
                       "matrix": {"backend": list(dict.fromkeys(args.backend))}, "threads": threads,
                       "budget": args.budget, "warmup_max": 1.0}]}
    return parse_suite(data, "harness conv", cpus)


def run(args) -> int:
    cpus = system.available_cpus()
    _check_flags(args, cpus)
    try:
        conv_cost_of(args)
    except UsageError as exc:  # CostError: names the field; say which flag it came from
        field, _, what = str(exc).partition(": ")
        if field == "output size":
            raise UsageError(f"--hw/-k/--stride/--pad/--dilation: output size {what}") from None
        flag = {"groups": "--groups", "dtype": "--dtype"}.get(field, field)
        raise UsageError(f"{flag}: {what}") from None
    print("\n".join(conv_cost_lines(conv_shape(args), args.dtype)))
    try:
        suite = build_suite(args, cpus)
    except UsageError as exc:  # the memory estimate: say it in the words of the flags
        _, _, what = str(exc).partition("params: ")
        raise UsageError(f"--ic/--oc/--hw/--batch: {what or exc}") from None
    print(f"\nrunning {len(suite.cases)} cases: {', '.join(c.case_id for c in suite.cases)}", file=sys.stderr)
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    order = {b: i for i, b in enumerate(BACKENDS)}
    records = sorted(final(records), key=lambda r: (order.get(r.params.get("backend"), 9), r.threads))
    print()
    print(format_table(RESULT_HEADERS, [result_row(r) for r in records], align_right=RESULT_NUMERIC))
    print("\nroofline time = max(FLOPs / peak, bytes / bandwidth) against the measured ceilings for this dtype "
          "and thread count, the bandwidth of the memory level the working set fits in; of roofline = roofline "
          "time / median. 'datasheet' means no measured ceiling (`harness probe --quick` measures them); "
          "(noisy): CV above 10%, rerun on a quieter machine or with more --budget.")
    print("\n".join(closing_lines(store, records)))
    return exit_status(records)
