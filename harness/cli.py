"""The `harness` command line."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from harness.errors import UsageError

EPILOG = """\
examples:
  harness device                      what this machine is, and its theoretical peaks
  harness run suites/quick.yaml       time the quick suite; prints where the run is stored
  harness kinds                       the case kinds a suite may use, with their parameters
  harness probe [--quick]             measure the ceilings; writes the device profile
  harness throttle                    clock by busy cores x instruction set
  harness conv --ic 128 --oc 128 --hw 28 -k 3 --pad 1
                                      one conv config: cost, time per backend, roofline
  harness model resnet50 --layers      four size metrics, latency per framework, per-layer roofline
  harness model my.onnx --shape input=1x3x224x224
  harness report latest               HTML + Markdown report of the newest run
  harness compare RUN_A RUN_B         matching cases side by side, Mann-Whitney U verdicts

Units are decimal SI (1 GB = 1e9 bytes, 1 GFLOP/s = 1e9 FLOP/s); a multiply-add counts 2 FLOPs.
"""


def _human_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def summary_table(records: list[dict]) -> str:
    from harness.report import figure_of

    rows = []
    for r in records:
        t = r.get("timing") or {}
        if r.get("status") == "ok":
            ci = f"[{_human_time(t['ci95_low'])}, {_human_time(t['ci95_high'])}]"
            faults = r.get("faults", {}).get("minor_per_call", 0)
            roof = r.get("roofline")
            placed = (f"{100 * roof['efficiency']:.0f}% {roof['bound'].split()[0]}"
                      + ("" if roof["source"] == "measured" else " (datasheet)")) if roof else ""
            rows.append([r["case_id"], "ok", _human_time(t["median"]), ci, f"{100 * t['cv']:.1f}%",
                         t["n"], f"{faults:.3g}", figure_of(r), placed, len(r.get("warnings", []))])
        else:
            reason = (r.get("error") or "").splitlines()[0] if r.get("error") else ""
            reason = reason[:45] + "..." if len(reason) > 48 else reason
            rows.append([r["case_id"], r.get("status"), "", "", "", "", "", reason, "", ""])
    return format_table(["case", "status", "median", "95% CI", "CV", "n", "faults/call",
                         "figure", "of roofline", "warnings"], rows)


def scale_budgets(suite, scale: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise UsageError(f"--budget-scale {scale}: must be a number > 0")
    for case in suite.cases:
        case.policy = {**case.policy, "budget_s": case.policy["budget_s"] * scale}


def exit_status(records: list[dict]) -> int:
    """0 when no case failed, 1 otherwise (skips are not failures: they say why)."""
    return 1 if any(r.get("status") == "failed" for r in records) else 0


def cmd_device(args) -> int:
    from harness.fingerprint import fingerprint, format_fingerprint

    fp = fingerprint()
    print(json.dumps(fp, indent=2) if args.json else format_fingerprint(fp))
    return 0


def cmd_kinds(args) -> int:
    from kernels import registry

    for name, kind in sorted(registry.kinds().items()):
        print(f"{name}: {kind.description}")
        for pname, p in kind.params.items():
            default = "required" if p.required else f"default {p.default!r}"
            choices = f", one of {list(p.choices)}" if p.choices else ""
            print(f"    {pname}: {getattr(p.type, '__name__', p.type)} ({default}{choices}) {p.help}")
    return 0


def run_suite(suite, results: Path, progress: bool = True, argv: list[str] | None = None):
    """Runs a loaded suite into a new run folder; returns (store, records)."""
    from tqdm import tqdm

    from harness import fingerprint as fpmod
    from harness.runner import run_cases
    from harness.store import RunStore, git_revision

    from harness.placement import Placer
    from harness.profile import load_profile, profile_path, update_profile

    fp = fpmod.fingerprint()
    device = fpmod.device_slug(fp)
    store = RunStore.create(results, device, suite.name)
    profile_file = profile_path(results, device)
    profile = load_profile(profile_file)
    placer = Placer(profile, fp, str(profile_file) if profile else None)
    manifest = {
        "run_id": store.run_id,
        "status": "running",
        "suite": {"name": suite.name, "description": suite.description,
                  "path": str(suite.path) if suite.path else None,
                  "cases": [c.to_dict() for c in suite.cases]},
        "command_line": argv if argv is not None else sys.argv,
        "git_revision": git_revision(Path(__file__).resolve().parent.parent),
        "started_at": time.time(),
        "fingerprint": fp,
        "profile": str(profile_file) if profile else None,
        "warnings": fp["machine_state"]["warnings"],
    }
    store.write_manifest(manifest)
    status = "interrupted"
    on_start, on_record, bar = None, None, None
    if progress and sys.stderr.isatty():
        bar = tqdm(total=len(suite.cases), desc=suite.name, unit="case", file=sys.stderr,
                   dynamic_ncols=True)
        on_start = lambda case: bar.set_postfix_str(case.case_id, refresh=True)
        on_record = lambda record: bar.update(1)
    elif progress:  # a log, not a terminal: one line per finished case
        done = [0]

        def on_record(record):
            done[0] += 1
            print(f"[{done[0]}/{len(suite.cases)}] {record['case_id']}: {record['status']}",
                  file=sys.stderr, flush=True)
    try:
        records = run_cases(suite.cases, store, on_start=on_start, on_record=on_record, enrich=placer)
        status = "complete"
        updated = update_profile(profile_file, records, fp, store.run_id)
        if updated is not None:
            (store.path / "profile.json").write_text(json.dumps(updated, indent=2))
    finally:
        if bar is not None:
            bar.close()
        store.update_manifest(status=status, finished_at=time.time())
        store.close()
    store.report = write_report_safely(store.path)
    return store, records


def cmd_run(args) -> int:
    from harness.suite import load_suite

    suite = load_suite(args.suite)
    if args.filter:
        suite.cases = [c for c in suite.cases if args.filter in c.case_id]
        if not suite.cases:
            raise UsageError(f"--filter {args.filter!r}: no case id contains it")
    scale_budgets(suite, args.budget_scale)
    if args.processes is not None:
        if args.processes < 1:
            raise UsageError(f"--processes {args.processes}: must be at least 1")
        for c in suite.cases:
            c.processes = args.processes
    print(f"running {len(suite.cases)} cases of {suite.name} ({suite.path})", file=sys.stderr)
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    print(summary_table(records))
    failed = sum(r["status"] == "failed" for r in records)
    skipped = sum(r["status"] == "skipped" for r in records)
    print(f"\n{len(records) - failed - skipped} ok, {failed} failed, {skipped} skipped")
    print(f"run stored in {store.path}")
    print(f"report: {store.report}" if store.report else "report: not written (see the message above)")
    return exit_status(records)


def write_report_safely(run_path: Path) -> Path | None:
    """The run's HTML report; a report that fails to build never fails the run."""
    from harness.report import write_report

    try:
        return write_report(run_path)[0]
    except Exception as exc:
        print(f"report not written: {exc!r} (the run itself is stored)", file=sys.stderr)
        return None


def cmd_throttle(args) -> int:
    from harness.fingerprint import fingerprint, _cpu_flags_levels
    from harness.throttle import LEVEL_ORDER, format_throttle_table, throttle_suite, throttle_table

    available = _cpu_flags_levels()
    levels = ["none"] + [lvl for lvl in LEVEL_ORDER[1:] if lvl in available]
    if args.isa:
        unknown = [lvl for lvl in args.isa if lvl not in levels]
        if unknown:
            raise UsageError(f"--isa {unknown[0]}: not available here (available: {', '.join(levels)})")
        levels = [lvl for lvl in levels if lvl in args.isa]
    from harness.conditions import available_cpus

    cpus = available_cpus()
    if args.max_cores is not None and not 1 <= args.max_cores <= len(cpus):
        raise UsageError(f"--max-cores {args.max_cores}: must be between 1 and the {len(cpus)} CPUs "
                         "this process may use")
    for flag, value in (("--seconds", args.seconds), ("--budget", args.budget)):
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} {value}: must be a number > 0")
    suite = throttle_suite(levels, args.max_cores, seconds=args.seconds, dtype=args.dtype,
                           budget=args.budget)
    print(f"throttle: {len(suite.cases)} cells ({', '.join(levels)} x 1..{args.max_cores or len(cpus)} "
          "busy cores)", file=sys.stderr)
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    hypervisor = "hypervisor" in _cpu_flags_levels(raw=True)
    print(format_throttle_table(throttle_table(records), hypervisor=hypervisor))
    for r in records:
        if r["status"] != "ok":
            print(f"{r['case_id']}: {r['status']}: {r.get('error')}")
    print(f"run stored in {store.path}")
    print(f"report: {store.report}")
    return exit_status(records)


def cmd_probe(args) -> int:
    from harness.fingerprint import _cpu_flags_levels
    from harness.profile import format_profile, load_profile
    from harness.throttle import format_throttle_table, throttle_table
    from harness.suite import load_suite, parse_suite
    from kernels.sweep import sweep_sizes
    from kernels.stream import llc_total_bytes

    suites = Path(__file__).resolve().parent.parent / "suites"
    suite = load_suite(suites / ("probe-quick.yaml" if args.quick else "probe.yaml"))
    if not args.quick and not args.no_sweep:
        sizes_kib = [round(s / 1024, 3) for s in sweep_sizes(llc_total_bytes())]
        sweep = parse_suite({
            "defaults": {"budget": 0.15, "min_samples": 5, "warmup_max": 0.3, "timeout": 120},
            "cases": [{"id": f"sweep-{op}", "kind": "probe.sweep", "params": {"op": op},
                       "matrix": {"kbytes": sizes_kib}, "threads": [1, "all"]}
                      for op in ("read", "write", "triad")]}, "generated sweep")
        suite.cases += sweep.cases
    scale_budgets(suite, args.budget_scale)
    print(f"probe: {len(suite.cases)} cases ({suite.path.name}"
          f"{'' if args.quick or args.no_sweep else ' + working-set sweep'})", file=sys.stderr)
    store, records = run_suite(suite, Path(args.results), progress=not args.no_progress)
    profile = load_profile(store.path / "profile.json")
    if profile is None:
        raise UsageError("the probe measured nothing usable; see the failed cases in " + str(store.path))
    print(format_profile(profile))
    table = throttle_table(records)
    if not table.empty:
        print("\nClock by busy cores and ISA level")
        print(format_throttle_table(table, hypervisor="hypervisor" in _cpu_flags_levels(raw=True)))
    for r in records:
        if r["status"] != "ok":
            reason = (r.get("error") or "").splitlines()[0]
            print(f"{r['status']}: {r['case_id']}: {reason[:140] + '...' if len(reason) > 140 else reason}")
    print(f"\nrun stored in {store.path}")
    print(f"device profile: {store.path.parent / 'profile.json'}")
    print(f"report: {store.report}")
    return exit_status(records)


class OneLineParser(argparse.ArgumentParser):
    """Bad flags get one line and exit 2, like every other usage error (subcommands inherit it)."""

    def error(self, message):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="harness", description="Empirical micro-benchmarks for deep-learning inference: "
        "how fast this device really is, and why a model runs at the speed it does.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("device", help="fingerprint this machine and print its theoretical peaks")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_device)

    p = sub.add_parser("kinds", help="list the case kinds a suite may use, with their parameters")
    p.set_defaults(func=cmd_kinds)

    p = sub.add_parser("run", help="run a suite file, storing every record under results/")
    p.add_argument("suite", help="a suite YAML file, e.g. suites/quick.yaml")
    p.add_argument("--results", default="results", help="where runs are stored (default: results)")
    p.add_argument("--filter", help="only cases whose id contains this text")
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="multiply every case's sampling budget (e.g. 0.2 for a fast look)")
    p.add_argument("--processes", type=int, help="run every case in this many fresh workers and pool "
                   "the samples (pyperf's way; steadier medians across runs, k times the time)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    from harness import compare, conv_cmd, export, report

    for name, module, text in (
            ("report", report, "write a run's HTML and Markdown report (plots embedded)"),
            ("compare", compare, "line up matching cases of two or more runs, with significance"),
            ("export", export, "a run's records as CSV, Parquet or pytest-benchmark JSON")):
        p = sub.add_parser(name, help=text, description=text)
        module.add_arguments(p)
        p.set_defaults(func=module.run)

    p = sub.add_parser("conv", help="time one convolution config on each backend against its roofline",
                       description=conv_cmd.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    conv_cmd.add_arguments(p)
    p.set_defaults(func=conv_cmd.run)

    from harness import model_cmd

    p = sub.add_parser("model", help="a zoo model or an ONNX file: four size metrics, latency and "
                                     "throughput per framework, layer by layer",
                       description=model_cmd.__doc__, epilog=getattr(model_cmd, "EXAMPLES", None),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    model_cmd.add_arguments(p)
    p.set_defaults(func=model_cmd.run)

    p = sub.add_parser("probe", help="measure peak FLOP/s, bandwidth per memory level and the clock; "
                                     "writes the device profile")
    p.add_argument("--quick", action="store_true", help="the quick probe (under a minute)")
    p.add_argument("--no-sweep", action="store_true", help="skip the working-set sweep of the full probe")
    p.add_argument("--budget-scale", type=float, default=1.0, help="multiply every case's sampling budget")
    p.add_argument("--results", default="results", help="where runs are stored (default: results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("throttle", help="clock frequency by busy cores and ISA level (the 10980XE table)")
    p.add_argument("--isa", nargs="+", help="levels to load with (default: none and every level this CPU has)")
    p.add_argument("--max-cores", type=int, help="busy cores up to this many (default: all available)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--seconds", type=float, default=0.3, help="length of one sampling call (default 0.3)")
    p.add_argument("--budget", type=float, default=1.0, help="sampling seconds per cell (default 1)")
    p.add_argument("--results", default="results", help="where runs are stored (default: results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_throttle)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # run_suite has marked the run interrupted; its records stay
        print("\ninterrupted: every record finished so far is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `harness kinds | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
