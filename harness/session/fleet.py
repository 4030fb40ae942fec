"""`harness fleet`: one suite on every machine of a Ray cluster, one exclusive benchmark per
machine at a time, gathered into this results folder and compared.

Ray schedules; the harness measures. Each node's part is one Ray task, pinned to its node
(NodeAffinitySchedulingStrategy, soft=False) and asking for the custom resource
`harness_node: 1` that every node advertises (`ray start ... --resources '{"harness_node": 1}'`),
and for every CPU and GPU Ray counts there: so two harness benchmarks never share a node,
and no other Ray task runs beside one. The task (harness.session.fleet_node) runs the suite
in a fresh `harness run` process on its node, with the environment Ray sets for its tasks
(OMP_NUM_THREADS and the other thread counts) dropped, so the measurement core's own
pinning and thread settings win, and its own fingerprint and device profile. It streams
back (a Ray streaming generator) each record as it is appended, the manifest and the
profile snapshot; the driver writes them with the run store (harness.session.fleet_store)
as they arrive.

Faults: a node lost mid-run keeps the records that arrived, its part is marked failed with
the reason, the others go on; a node without the project (or another version of it) says
so in one line; Ctrl-C cancels every task, keeps what arrived, marks the runs interrupted.

Without an address, `harness fleet run` starts a local one-node Ray instance and stops it
at the end, so the same command works on a laptop.

Ray is an optional extra (`pip install 'roofline-harness[fleet]'`) and takes seconds to
start, so it is imported inside functions (deferred on purpose); nothing else in the
harness needs it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.analysis import fingerprint as fpmod
from harness.core import conditions, suite_file, system
from harness.core.errors import UsageError
from harness.core.records import Record
from harness.core.store import git_revision, slug
from harness.core.suite import load_suite
from harness.core.text import fmt_time
from harness.session import fleet_node
from harness.session.fleet_store import FleetRun, NodePart, latest_fleet, load_fleet
from harness.session.pipeline import ROOT, scale_budgets, signals_held

RESOURCE = "harness_node"
EXTRA = "pip install 'roofline-harness[fleet]'"
START_HINT = f"""ray start --head --resources '{{"{RESOURCE}": 1}}'"""
# Ray sets OMP_NUM_THREADS for its tasks; these and the other thread settings are dropped
# from the node's harness process, whose runner sets its own for every case.
DROP_ENV = sorted(set(conditions.thread_env(1)) | {"VECLIB_MAXIMUM_THREADS"})
CANCEL_GRACE_S = 15.0  # a cancelled node stops its harness process within 10 s
STATUS_TIMEOUT_S = 90.0
HOLD_WAIT_S = 5.0  # a free node's harness slot answers within this
OBJECT_STORE_BYTES = 256 * 1024 * 1024
PROFILE_CAP = 20_000_000  # bytes of device profiles shipped to each node, at most


def driver_version() -> str | None:
    """The harness version here, read as each node reads its own (harness.session.fleet_node)."""
    return fleet_node.project_version()[1]


def require_ray():
    """The ray module, or a one-line usage error naming the extra that installs it."""
    try:
        import ray  # deferred: an optional extra, seconds to import
    except ImportError:
        raise UsageError(f"harness fleet needs Ray, an optional extra: {EXTRA}") from None
    return ray


@contextlib.contextmanager
def connected(address: str | None):
    """Ray, connected: to the cluster at `address`, or (None) to a local one-node instance
    started here with the harness resource, shut down at the end. A process that already
    called ray.init (a test, a notebook) keeps its connection."""
    ray = require_ray()
    from ray import cloudpickle  # deferred with ray

    # The node task ships by value: a node without the project can still run it and say so.
    cloudpickle.register_pickle_by_value(fleet_node)
    if ray.is_initialized():
        yield ray
        return
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            # Records are small: a small object store spares /dev/shm on a laptop.
            ray.init(address="local", num_cpus=len(system.available_cpus()), resources={RESOURCE: 1},
                     include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES, **quiet)
    except Exception as exc:  # no cluster there, a malformed address, a Ray that would not start
        where = f"--address {address}" if address else "the local Ray instance"
        raise UsageError(f"{where}: cannot connect ({str(exc).strip().splitlines()[0] if str(exc) else exc!r}); "
                         f"start a cluster with {START_HINT}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def describe(exc: BaseException) -> str:
    """A Ray error in one line: what failed, not the remote traceback."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        return describe(cause)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = ". ".join((lines[0] if lines else "").split(". ")[:2])  # Ray's advice after that is not ours
    text = f"{type(exc).__name__}: {first}".strip().rstrip(":")
    if type(exc).__name__ in ("NodeDiedError", "WorkerCrashedError", "ActorDiedError", "LocalRayletDiedError",
                              "OwnerDiedError", "ObjectLostError", "TaskUnschedulableError"):
        text = "the node or its Ray worker was lost: " + text
    return text[:400]


def parse_labels(items) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--label {item!r}: expected KEY=VALUE (a label given to `ray start --labels`)")
        out.append((key, value))
    return out


def harness_nodes(ray, count: int | None = None, labels=()) -> list[dict]:
    """The live nodes that advertise the harness resource, those with every label, the
    first `count` of them (by address)."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    tagged = [n for n in alive if (n.get("Resources") or {}).get(RESOURCE, 0) >= 1]
    if not tagged:
        raise UsageError(f"none of the cluster's {len(alive)} live node(s) advertises the {RESOURCE} resource: "
                         f"start each with `ray start ... --resources '{{\"{RESOURCE}\": 1}}'`")
    for key, value in labels:
        tagged = [n for n in tagged if (n.get("Labels") or {}).get(key) == value]
        if not tagged:
            raise UsageError(f"--label {key}={value}: no harness node has that label")
    tagged.sort(key=lambda n: (n.get("NodeManagerAddress") or "", n["NodeID"]))
    if count is not None:
        if count > len(tagged):
            raise UsageError(f"--nodes {count}: only {len(tagged)} node(s) advertise the {RESOURCE} resource")
        tagged = tagged[:count]
    return tagged


def node_parts(nodes: list[dict]) -> list[NodePart]:
    """A part per node, labelled by host name (with the node id's start where hosts repeat)."""
    hosts = [slug(n.get("NodeManagerHostname") or n.get("NodeManagerAddress") or "node") for n in nodes]
    return [NodePart(node_id=n["NodeID"], address=n.get("NodeManagerAddress") or "", hostname=host,
                     label=host if hosts.count(host) == 1 else f"{host}-{n['NodeID'][:6]}")
            for n, host in zip(nodes, hosts)]


def suite_files(path: Path) -> tuple[dict[str, str], str]:
    """The suite file and every file it includes, as {path under their common folder: text},
    and the suite's own path there: the node lays them out alike, so includes resolve."""
    seen: list[Path] = []
    todo = [Path(path).resolve()]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        data = suite_file.read(p)
        for name in (data.get("include") or []) if isinstance(data, dict) else []:
            todo.append((p.parent / name).resolve())
    common = Path(os.path.commonpath([str(p.parent) for p in seen]))
    return {str(p.relative_to(common)): p.read_text() for p in seen}, str(Path(path).resolve().relative_to(common))


def device_profiles(results: Path) -> dict[str, str]:
    """This results folder's device profiles ({slug: text}): each node runs against its own."""
    out, total = {}, 0
    for path in sorted(Path(results).glob("*/profile.json")):
        text = path.read_text()
        total += len(text)
        if total > PROFILE_CAP:
            print(f"warning: device profiles past {PROFILE_CAP / 1e6:g} MB are not shipped to the nodes "
                  f"(from {path.parent.name} on)", file=sys.stderr)
            break
        out[path.parent.name] = text
    return out


def check_suite(path: str, nodes: list[dict], name_filter: str | None, budget_scale: float) -> str:
    """The suite validated here (a bad one is one line before any node starts): the suite's
    name. Where it asks for more CPUs than this machine has but some node has them, the
    nodes judge it (each refuses in one line, its part's reason)."""
    try:
        suite = load_suite(path)
    except UsageError:
        most = max((int((n.get("Resources") or {}).get("CPU", 0)) for n in nodes), default=0)
        if most <= len(system.available_cpus()):
            raise
        data = suite_file.read(Path(path))
        return str(data.get("name") or Path(path).stem) if isinstance(data, dict) else Path(path).stem
    if name_filter and not any(name_filter in c.case_id for c in suite.cases):
        raise UsageError(f"--filter {name_filter!r}: no case id contains it")
    scale_budgets(suite, budget_scale)
    return suite.name


@dataclass
class Outcome:
    fleet: FleetRun
    wall_s: float
    records: list[tuple[str, Record]] = field(default_factory=list)


def print_record(part: NodePart, record: Record) -> None:
    median = fmt_time(record.timing.median) if record.measured and record.timing else ""
    print(f"  {part.label}: {record.case_id} {record.status} {median}".rstrip(), file=sys.stderr, flush=True)


def run_fleet(suite: str, results: Path, address: str | None = None, count: int | None = None, labels=(),
              name_filter: str | None = None, budget_scale: float = 1.0, processes: int | None = None,
              progress: bool = True, on_event=None, command_line: list[str] | None = None) -> Outcome:
    """The suite on every chosen node, each part exclusive on its node; returns the outcome
    once every part has ended. on_event(part, event) sees each event after it is stored."""
    results = Path(results)
    version = driver_version()
    started = time.time()
    reused = require_ray().is_initialized()
    with connected(address) as ray:
        nodes = harness_nodes(ray, count, labels)
        suite_name = check_suite(suite, nodes, name_filter, budget_scale)
        files, top = suite_files(Path(suite))
        args = (["--filter", name_filter] if name_filter else []) + \
            (["--budget-scale", repr(budget_scale)] if budget_scale != 1.0 else []) + \
            (["--processes", str(processes)] if processes else [])
        spec = {"version": version, "suite_files": files, "suite": top, "profiles": device_profiles(results),
                "args": args, "drop_env": DROP_ENV}
        parts = node_parts(nodes)
        where = "the caller's Ray connection" if reused else address or "local (started by harness fleet run)"
        info = {"address": where, "suite_path": str(suite),
                "command_line": list(command_line if command_line is not None else sys.argv),
                "driver": {"hostname": os.uname().nodename, "git_revision": git_revision(ROOT), "version": version}}
        fleet = FleetRun(results, suite_name, parts, info, progress=print_record if progress else None)
        print(f"fleet run {fleet.run_id}: {suite_name} on {len(parts)} node(s): "
              + ", ".join(f"{p.label} ({p.address})" for p in parts), file=sys.stderr, flush=True)
        outcome = Outcome(fleet, 0.0)
        drive(ray, fleet, nodes, spec, outcome, on_event, progress)
    outcome.wall_s = time.time() - started
    return outcome


def submit(ray, node: dict, spec: dict, label: str):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # deferred with ray

    have = node.get("Resources") or {}
    task = ray.remote(fleet_node.node_run).options(
        num_returns="streaming", max_retries=0, resources={RESOURCE: 1}, num_cpus=have.get("CPU", 0),
        num_gpus=have.get("GPU", 0), name=f"harness-fleet:{label}",
        scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
    return task.remote(spec)


def pump(ray, node_id: str, generator, out: queue.Queue) -> None:
    """One node's stream into the driver's queue: (node, "event", dict), (node, "error",
    exception), then (node, "end", None)."""
    try:
        for ref in generator:
            out.put((node_id, "event", ray.get(ref)))
    except BaseException as exc:  # the node lost, the task cancelled: the driver decides
        out.put((node_id, "error", exc))
    finally:
        out.put((node_id, "end", None))


def drive(ray, fleet: FleetRun, nodes: list[dict], spec: dict, outcome: Outcome, on_event, progress: bool) -> None:
    inbox: queue.Queue = queue.Queue()
    generators = {}
    for node, part in zip(nodes, fleet.parts.values()):
        generators[part.node_id] = submit(ray, node, spec, part.label)
    threads = [threading.Thread(target=pump, args=(ray, node_id, gen, inbox), daemon=True,
                                name=f"fleet-{node_id[:6]}") for node_id, gen in generators.items()]
    for t in threads:
        t.start()
    live = set(generators)
    cancelling = False

    def take(item) -> None:
        node_id, what, payload = item
        part = fleet.parts[node_id]
        if what == "event":
            with signals_held():  # a record is written whole: Ctrl-C takes effect after it
                record = fleet.handle(node_id, payload)
            if record is not None:
                outcome.records.append((node_id, record))
            if on_event is not None:
                on_event(part, payload)
        elif what == "error":
            fleet.fail(node_id, "cancelled by Ctrl-C or SIGTERM on the driver" if cancelling else describe(payload),
                       status="interrupted" if cancelling else "failed")
        else:
            live.discard(node_id)
            fleet.end(node_id)
            if progress:
                print(f"{part.label}: {part.status}" + (f" ({part.reason})" if part.reason else "")
                      + (f", {part.records} records in {part.run}" if part.run else ""), file=sys.stderr, flush=True)

    try:
        while live:
            try:
                take(inbox.get(timeout=0.5))
            except queue.Empty:
                continue
        fleet.finish()
    except BaseException:  # Ctrl-C, SIGTERM, a disk that refused a write: stop every node, keep what arrived
        cancelling = True
        for node_id in live:
            with contextlib.suppress(Exception):
                ray.cancel(generators[node_id], force=False)
        deadline = time.time() + CANCEL_GRACE_S
        while live and time.time() < deadline:
            try:  # what arrives while the nodes stop is kept; nothing here stops the stopping
                take(inbox.get(timeout=0.2))
            except BaseException:
                pass
        for node_id in live:
            with contextlib.suppress(Exception):
                ray.cancel(generators[node_id], force=True)
        fleet.interrupt()
        raise


# ---------------------------------------------------------------------- status

def fleet_status(address: str | None, results: Path) -> list[dict]:
    """One row per live node: id, address, host, CPU model and device (a fingerprint taken
    there, else the last fleet run's), the harness resource free, busy or absent."""
    version = driver_version()
    last = latest_fleet(results)
    known = {n["node_id"]: n for n in load_fleet(last)["nodes"]} if last else {}
    with connected(address) as ray:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # deferred with ray

        nodes = sorted((n for n in ray.nodes() if n.get("Alive")),
                       key=lambda n: (n.get("NodeManagerAddress") or "", n["NodeID"]))
        pinned = {n["NodeID"]: NodeAffinitySchedulingStrategy(n["NodeID"], soft=False) for n in nodes}
        # A worker ready on every node first, so that a slot slow to answer means busy, not a
        # worker still starting.
        pings = [ray.remote(fleet_node.hold).options(num_cpus=0, scheduling_strategy=pinned[n["NodeID"]]).remote()
                 for n in nodes]
        ray.wait(pings, num_returns=len(pings), timeout=STATUS_TIMEOUT_S)
        answers, probes = {}, {}
        for n in nodes:
            options = {"num_cpus": 0, "max_retries": 0, "scheduling_strategy": pinned[n["NodeID"]]}
            if (n.get("Resources") or {}).get(RESOURCE):  # fingerprinted holding the slot: no benchmark disturbed
                probes[n["NodeID"]] = ray.remote(fleet_node.node_probe).options(
                    num_returns="streaming", resources={RESOURCE: 1}, **options).remote(version)
            else:
                answers[n["NodeID"]] = ray.remote(fleet_node.node_device).options(**options).remote(version)
        ready, _ = ray.wait(list(probes.values()), num_returns=len(probes), timeout=HOLD_WAIT_S) \
            if probes else ([], [])
        free = {node_id for node_id, gen in probes.items() if gen in ready}
        deadline = time.time() + STATUS_TIMEOUT_S
        for node_id, gen in probes.items():
            if node_id not in free:
                with contextlib.suppress(Exception):
                    ray.cancel(gen, force=False)
                answers[node_id] = {"error": "busy: not fingerprinted while a harness job runs there"}
                continue
            try:
                next(gen)  # the start
                done, _ = ray.wait([gen], timeout=max(1.0, deadline - time.time()))
                answers[node_id] = ray.get(next(gen)) if done else {"error": "no fingerprint in time"}
            except Exception as exc:  # the node lost meanwhile: say why, go on
                answers[node_id] = {"error": describe(exc)}
        for node_id, ref in list(answers.items()):
            if not isinstance(ref, dict):
                try:
                    answers[node_id] = ray.get(ref, timeout=max(1.0, deadline - time.time()))
                except Exception as exc:  # a node that cannot run the task: say why, go on
                    answers[node_id] = {"error": describe(exc)}
        rows = []
        for n in nodes:
            node_id = n["NodeID"]
            answer = answers[node_id]
            fp = answer.get("fingerprint") or {}
            before = known.get(node_id) or {}
            resource = "absent" if node_id not in probes else "free" if node_id in free else "busy"
            rows.append({"node_id": node_id, "address": n.get("NodeManagerAddress"),
                         "hostname": n.get("NodeManagerHostname"),
                         "cpu": (fp.get("cpu") or {}).get("model") or before.get("device"),
                         "device": fpmod.device_slug(fp) if fp.get("cpu") else before.get("device"),
                         "cpus": (n.get("Resources") or {}).get("CPU"), "gpus": (n.get("Resources") or {}).get("GPU"),
                         RESOURCE: resource, "error": answer.get("error"),
                         "last_fleet_run": (f"{last.parent.name}/{last.name} ({before.get('status')})"
                                            if before else None)})
    return rows
