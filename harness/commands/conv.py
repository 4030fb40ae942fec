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
from harness.core.records import Record, final
from harness.core.suite import parse_suite
from harness.cost.ops import conv2d_cost, dtype_bytes
from harness.presentation.console import distrust_lines, roof_cell, suspect_lines
from harness.core.text import cut, fmt_pct, fmt_si, fmt_time, format_table
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
    s = conv_shape(args)
    return conv2d_cost((s["n"], s["ic"], s["h"], s["w"]), s["oc"], (s["kh"], s["kw"]), s["stride"], s["pad"],
                       s["dilation"], s["groups"], bias=s["bias"], dtype=args.dtype)


def cost_lines(args) -> list[str]:
    """The cost model's view of the conv, in the document's words and decimal SI units."""
    s, cost = conv_shape(args), conv_cost_of(args)
    n, oc, oh, ow = cost.output_shape
    input_bytes = s["n"] * s["ic"] * s["h"] * s["w"] * dtype_bytes(args.dtype)
    weight_bytes = cost.bytes_read - input_bytes  # weights and bias
    return [
        f"conv {s['n']}x{s['ic']}x{s['h']}x{s['w']} -> {n}x{oc}x{oh}x{ow}, kernel {s['kh']}x{s['kw']}, "
        f"stride {s['stride']}, pad {s['pad']}, dilation {s['dilation']}, groups {s['groups']}, "
        f"{'bias, ' if s['bias'] else ''}{args.dtype}",
        f"  MACs {fmt_si(cost.macs, '', 4)}   FLOPs {fmt_si(cost.flops, 'FLOP', 4)} (a multiply-add = 2)   "
        f"params {fmt_si(cost.params, '', 4)}",
        f"  bytes {fmt_si(cost.bytes, 'B', 4)} (input {fmt_si(input_bytes, 'B', 4)}, weights "
        f"{fmt_si(weight_bytes, 'B', 4)}, output {fmt_si(cost.bytes_written, 'B', 4)}; each moved once)",
        f"  intensity {cost.intensity:.4g} FLOP/B (true FLOPs per byte; the first source document's MFLOPs/MiB "
        f"is x 1.048576 = {cost.intensity * 1.048576:.4g})",
    ]


def path_of(record: Record) -> str:
    """The backend's path as the record names it: torch's conv algorithm, ONNX Runtime's kernels."""
    backend = record.info.get("backend") or {}
    return backend.get("conv_backend") or " -> ".join(n.split(":")[-1] for n in backend.get("optimized_graph", []))


def result_row(record: Record) -> list[str]:
    head = [record.params.get("backend", record.kind), str(record.threads)]
    if not record.measured:
        return head + [record.status, "", "", "", "", "", "", "", "", cut(record.reason, 90)]
    t, p = record.timing, record.roofline
    noisy = " (noisy)" if t.cv > 0.10 else ""
    return head + [record.status, fmt_time(t.median), f"{fmt_pct(t.cv, 2)}{noisy}",
                   fmt_si(record.metrics.get("flops_per_s"), "FLOP/s"), fmt_si(record.metrics.get("bytes_per_s"), "B/s"),
                   fmt_time(p.theoretical_time_s) if p else "-", roof_cell(record) or "-",
                   f"{record.faults.minor_per_call:.3g}", path_of(record)]


HEADERS = ["backend", "threads", "status", "median", "CV", "FLOP/s", "B/s", "roofline time", "of roofline",
           "faults/call", "path"]


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
    print("\n".join(cost_lines(args)))
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
    print(format_table(HEADERS, [result_row(r) for r in records], align_right={1, 3, 4, 5, 6, 7, 9}))
    print("\nroofline time = max(FLOPs / peak, bytes / bandwidth) against the measured ceilings for this dtype "
          "and thread count, the bandwidth of the memory level the working set fits in; of roofline = roofline "
          "time / median. 'datasheet' means no measured ceiling (`harness probe --quick` measures them); "
          "(noisy): CV above 10%, rerun on a quieter machine or with more --budget.")
    for line in suspect_lines(records) + distrust_lines(records):
        print(line)
    print(f"run stored in {store.path}")
    print(f"report: {store.report}")
    return exit_status(records)
