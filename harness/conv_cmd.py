"""`harness conv`: one convolution, its cost, and how close each backend gets to the roofline.

    harness conv --ic 128 --oc 128 --hw 28 -k 3 --pad 1 [--backend torch onnxruntime] [--threads 1 2]

Prints the cost model's figures (MACs, FLOPs, params, bytes, intensity in true FLOP/byte),
then runs the config once per backend x thread count through the measurement core (a
worker process per thread count, as `harness run` does) and prints, per run: median time,
attained GFLOP/s and GB/s, the roofline's theoretical time (from measured ceilings, or the
datasheet peak, labelled as such), efficiency = theoretical / measured, and the bound.

Also runnable as `python -m harness.conv_cmd ...`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import UsageError

BACKENDS = ("torch", "onnxruntime")


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    run.add_argument("--budget", type=float, default=0.5, help="seconds of timed sampling per run (default 0.5)")
    run.add_argument("--results", default="results", help="where runs are stored (default: results)")
    run.add_argument("--no-progress", action="store_true", help="no progress lines")


def _check_flags(args, cpus: list[int]) -> None:
    """One line naming the flag for each bad value the cost model would not name in flag words."""
    positive = {"--ic": args.ic, "--oc": args.oc, "--hw": args.hw, "--w": args.w, "-k": args.kernel,
                "--kw": args.kw, "--stride": args.stride, "--dilation": args.dilation,
                "--groups": args.groups, "--batch": args.batch}
    for flag, value in positive.items():
        if value is not None and value <= 0:
            raise UsageError(f"{flag}: must be > 0, got {value}")
    if args.pad < 0:
        raise UsageError(f"--pad: must be >= 0, got {args.pad}")
    if args.ic % args.groups:
        raise UsageError(f"--groups: --ic {args.ic} is not divisible by --groups {args.groups}")
    if args.oc % args.groups:
        raise UsageError(f"--groups: --oc {args.oc} is not divisible by --groups {args.groups}")
    if not args.budget >= 0:
        raise UsageError(f"--budget: must be >= 0, got {args.budget}")
    for t in args.threads or []:
        if not 1 <= t <= len(cpus):
            raise UsageError(f"--threads {t}: must be between 1 and the {len(cpus)} CPUs this process may use")


def conv_params(args) -> dict:
    return {"n": args.batch, "ic": args.ic, "oc": args.oc, "h": args.hw, "w": args.w or 0,
            "kh": args.kernel, "kw": args.kw or 0, "stride": args.stride, "pad": args.pad,
            "dilation": args.dilation, "groups": args.groups, "bias": args.bias, "dtype": args.dtype,
            "device": args.device}


def _si(value: float, unit: str) -> str:
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"


def _time(seconds) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def cost_lines(params: dict) -> list[str]:
    """The cost model's view of the conv, in the document's words and decimal SI units."""
    from harness.cost import dtype_bytes
    from kernels.conv import conv_cost, conv_shape

    s, cost = conv_shape(params), conv_cost(params)
    n, oc, oh, ow = cost.output_shape
    input_bytes = s["n"] * s["ic"] * s["h"] * s["w"] * dtype_bytes(params["dtype"])
    weight_bytes = cost.bytes_read - input_bytes  # weights and bias
    return [
        f"conv {s['n']}x{s['ic']}x{s['h']}x{s['w']} -> {n}x{oc}x{oh}x{ow}, kernel {s['kh']}x{s['kw']}, "
        f"stride {s['stride']}, pad {s['pad']}, dilation {s['dilation']}, groups {s['groups']}, "
        f"{'bias, ' if s['bias'] else ''}{params['dtype']}",
        f"  MACs {_si(cost.macs, '')}   FLOPs {_si(cost.flops, 'FLOP')} (a multiply-add = 2)   "
        f"params {_si(cost.params, '')}",
        f"  bytes {_si(cost.bytes, 'B')} (input {_si(input_bytes, 'B')}, weights {_si(weight_bytes, 'B')}, "
        f"output {_si(cost.bytes_written, 'B')}; each moved once)",
        f"  intensity {cost.intensity:.4g} FLOP/B (true FLOPs per byte; the document's MFLOPs/MiB "
        f"is x 1.048576 = {cost.intensity * 1.048576:.4g})",
    ]


def result_row(record: dict) -> list[str]:
    """One table row from a record; the roofline fields come from record['roofline'] when the
    runner added it."""
    params = record.get("params") or {}
    head = [params.get("backend", record.get("kind", "")), str(record.get("threads", ""))]
    if record.get("status") != "ok":
        reason = (record.get("error") or "").splitlines()[0][:90] if record.get("error") else ""
        return head + [record.get("status", "?"), "", "", "", "", "", "", "", reason]
    median = record["timing"]["median"]
    metrics = record.get("metrics") or {}
    roof = record.get("roofline") or {}
    theory, efficiency, bound, ceiling = "-", "-", "-", "no roofline in the record"
    if roof.get("theoretical_time_s"):
        theory = _time(roof["theoretical_time_s"])
        efficiency = f"{100 * roof['efficiency']:.1f}%" if roof.get("efficiency") is not None else "-"
        bound = str(roof.get("bound", "-"))
        if roof.get("source") == "measured":
            ceiling = "measured"
        else:
            ceiling = "datasheet peak" + ("" if roof.get("bandwidth_bytes_per_s") else ", no bandwidth")
    backend = (record.get("info") or {}).get("backend") or {}
    path = backend.get("conv_backend") or " ".join(
        n.split(":")[-1] for n in backend.get("optimized_graph", []))
    faults = (record.get("faults") or {}).get("minor_per_call", 0)
    return head + ["ok", _time(median), f"{metrics.get('flops_per_s', 0) / 1e9:.3g}",
                   f"{metrics.get('bytes_per_s', 0) / 1e9:.3g}", theory, efficiency, bound,
                   f"{faults:.3g}", f"{ceiling}; {path}"]


HEADERS = ["backend", "threads", "status", "median", "GFLOP/s", "GB/s", "theoretical", "efficiency",
           "bound", "faults/call", "ceiling; path"]


def build_suite(args, cpus: list[int]):
    from harness.suite import parse_suite

    params = conv_params(args)
    threads = args.threads or sorted({1, len(cpus)})
    label = f"conv-{args.ic}x{args.hw}-oc{args.oc}-k{args.kernel}s{args.stride}g{args.groups}"
    data = {"name": "conv", "description": "harness conv",
            "cases": [{"id": label, "kind": "conv", "params": params,
                       "matrix": {"backend": list(dict.fromkeys(args.backend))}, "threads": threads,
                       "budget": args.budget, "warmup_max": 1.0}]}
    return parse_suite(data, "harness conv", cpus)


def run(args) -> int:
    from harness.cli import format_table, run_suite
    from harness.conditions import available_cpus
    from kernels.conv import conv_cost

    cpus = available_cpus()
    _check_flags(args, cpus)
    params = conv_params(args)
    try:
        conv_cost(params)
    except UsageError as exc:  # CostError: names the field; say which flag it came from
        field, _, what = str(exc).partition(": ")
        if field == "output size":
            raise UsageError(f"--hw/-k/--stride/--pad/--dilation: output size {what}") from None
        flag = {"groups": "--groups", "dtype": "--dtype"}.get(field, field)
        raise UsageError(f"{flag}: {what}") from None
    print("\n".join(cost_lines(params)))
    suite = build_suite(args, cpus)
    print(f"\nrunning {len(suite.cases)} cases: {', '.join(c.case_id for c in suite.cases)}", file=sys.stderr)
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    order = {b: i for i, b in enumerate(BACKENDS)}
    records = sorted(records, key=lambda r: (order.get((r.get("params") or {}).get("backend"), 9),
                                             r.get("threads", 0)))
    print()
    print(format_table(HEADERS, [result_row(r) for r in records]))
    print("\ntheoretical = max(FLOPs / peak, bytes / bandwidth) for this dtype and thread count; "
          "efficiency = theoretical / median. 'datasheet peak' means no measured ceilings "
          "(run `harness probe` for them).")
    print(f"run stored in {store.path}")
    print(f"report: {store.report}")
    from harness.cli import exit_status

    return exit_status(records)




def main(argv: list[str] | None = None) -> int:
    """`harness conv ...` run as `python -m harness.conv_cmd ...`."""
    from harness.cli import main as harness_main

    return harness_main(["conv", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
