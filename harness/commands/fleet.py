"""`harness fleet run SUITE` and `harness fleet status`: one suite on every machine of a Ray
cluster, one exclusive benchmark per machine, gathered into results/ (harness.session.fleet)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.commands import options
from harness.core.errors import UsageError
from harness.core.text import format_table
from harness.session.fleet import RESOURCE, fleet_status, parse_labels, run_fleet

HELP = "run a suite on every machine of a Ray cluster, one exclusive benchmark per machine; fleet status"
DESCRIPTION = (
    "fleet run: one Ray task per node, pinned to it and holding its harness_node resource (and every CPU and GPU "
    "Ray counts there), so no two benchmarks share a machine; each runs the suite in a fresh `harness run` on its "
    "node, with its own pinning, thread settings, fingerprint and device profile, and streams the records back as "
    "they finish. They land in results/<device>/<stamp>-<suite>-<node>/, one run per node, linked by "
    "results/fleet/<stamp>-<suite>/fleet.json; `harness compare results/fleet/<run>` sets the devices side by "
    "side. Without --address it starts a local one-node Ray instance and stops it at the end. "
    "fleet status: each node, its CPU and device, and whether its harness slot is free or busy. "
    "Needs Ray: pip install 'roofline-harness[fleet]'.")
EPILOG = f"""\
examples:
  ray start --head --resources '{{"{RESOURCE}": 1}}'                      on the first machine
  ray start --address HEAD:6379 --resources '{{"{RESOURCE}": 1}}'         on each of the others
  harness fleet status --address HEAD:6379
  harness fleet run suites/quick.yaml --address HEAD:6379
  harness fleet run suites/conv.yaml --address HEAD:6379 --nodes 2 --label rack=a
  harness fleet run suites/quick.yaml                                    a local one-node instance
  harness compare results/fleet/<stamp>-quick                            the nodes side by side
"""


def nodes_count(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'all', got {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100000, got {text}")
    return value


def add_address(parser) -> None:
    parser.add_argument("--address", metavar="ADDR",
                        help="the Ray cluster (HEAD:6379 as `ray start --head` printed it, or 'auto' for one started "
                             "on this machine); default: a local one-node instance started and stopped here")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND")
    run_parser = sub.add_parser("run", help="run a suite on every node", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    run_parser.add_argument("suite", help="a suite YAML file, e.g. suites/quick.yaml (shipped to each node with the "
                                          "files it includes)")
    add_address(run_parser)
    run_parser.add_argument("--nodes", type=nodes_count, default=None, metavar="N|all",
                            help="how many harness nodes to run on (default: all)")
    run_parser.add_argument("--label", action="append", metavar="KEY=VALUE",
                            help="only nodes with this label (`ray start --labels`); repeat for several")
    run_parser.add_argument("--filter", metavar="TEXT", help="only cases whose id contains TEXT")
    options.add_budget_scale(run_parser)
    run_parser.add_argument("--processes", type=options.bounded_int(1, 100), metavar="K",
                            help="run every case in K fresh workers and pool the samples")
    options.add_run_options(run_parser)
    status_parser = sub.add_parser("status", help="each node, its CPU and device, its harness slot free or busy",
                                   description="One row per live node of the cluster: node id, address, host, CPU "
                                   "model and device (a fingerprint taken there), CPUs and GPUs Ray counts, and "
                                   f"the {RESOURCE} resource: free, busy (a fleet run holds it) or absent.")
    add_address(status_parser)
    options.add_results(status_parser)
    status_parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    if args.fleet_command == "run":
        return run_command(args)
    if args.fleet_command == "status":
        return status_command(args)
    raise UsageError("harness fleet: expected a subcommand, run or status (see harness fleet --help)")


def run_command(args) -> int:
    outcome = run_fleet(args.suite, Path(args.results), address=args.address, count=args.nodes,
                        labels=parse_labels(args.label), name_filter=args.filter, budget_scale=args.budget_scale,
                        processes=args.processes, progress=not args.no_progress)
    fleet = outcome.fleet
    rows = [[p.label, p.address, p.device or "-", p.status, p.records, p.run or "-", p.reason or ""]
            for p in fleet.parts.values()]
    print(format_table(["node", "address", "device", "status", "records", "run", "reason"], rows,
                       align_right={4}))
    failed = sum(r.status == "failed" for _, r in outcome.records)
    print(f"\nfleet {fleet.status}: {len(fleet.parts)} node(s), {len(outcome.records)} records "
          f"({failed} failed) in {outcome.wall_s:.1f} s")
    print(f"fleet manifest: {fleet.path / 'fleet.json'}")
    if sum(1 for p in fleet.parts.values() if p.run) >= 2:
        print(f"compare the nodes: harness compare {fleet.path}")
    return 0 if fleet.status == "complete" and not failed else 1


def status_command(args) -> int:
    rows = fleet_status(args.address, Path(args.results))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(format_table(
        ["node", "address", "host", "CPU", "device", "CPUs", "GPUs", RESOURCE, "last fleet run", "note"],
        [[r["node_id"][:12], r["address"], r["hostname"], r["cpu"] or "?", r["device"] or "?",
          "" if r["cpus"] is None else f"{r['cpus']:g}", "" if r["gpus"] is None else f"{r['gpus']:g}",
          r[RESOURCE], r["last_fleet_run"] or "", r["error"] or ""] for r in rows]))
    free = sum(r[RESOURCE] == "free" for r in rows)
    print(f"\n{len(rows)} node(s), {sum(r[RESOURCE] != 'absent' for r in rows)} with the {RESOURCE} resource, "
          f"{free} free")
    return 0
