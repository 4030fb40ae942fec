"""The worker process: runs a group of cases that share CPU affinity and thread settings.

Started by the runner as `python -m harness.core.worker SPEC_JSON FD`, with the thread
environment already in its environment and its affinity set before exec, so every
library it imports starts with the settings the cases ask for. It writes one JSON line
per event to file descriptor FD: `ready`, then for each case `start` and `record` (a
case profiled layer by layer says how many layers follow, then writes one `layer` event
per layer).
A case that raises becomes a failed record here; one that crashes or hangs the process
is turned into a failed record by the runner, which starts a new worker for the rest.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

from harness.core import conditions, records, registry, trust
from harness.core.records import Conditions, Cost, Record
from harness.core.suite import Case
from harness.core.timing import measure
from harness.core.workload import Context, Skip, Workload


def describe_failure(exc: BaseException) -> str:
    """The reason a case failed, in words: an allocation that failed says so first."""
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if isinstance(exc, MemoryError) or "can't allocate memory" in lowered or "cannot allocate memory" in lowered \
            or "out of memory" in lowered or "bad_alloc" in lowered:
        return f"out of memory: {text}"
    return text


def derived_metrics(workload: Workload, median_s: float) -> dict:
    metrics = {}
    if workload.flops is not None and median_s > 0:
        metrics["flops_per_s"] = workload.flops / median_s
    if workload.bytes is not None and median_s > 0:
        metrics["bytes_per_s"] = workload.bytes / median_s
    if workload.metrics is not None:
        metrics.update(workload.metrics(median_s))
    return metrics


def cost_of(workload: Workload) -> Cost:
    return Cost.of(workload.flops, workload.bytes, bytes_accounting=workload.info.get("bytes_accounting"),
                   working_set_bytes=workload.working_set_bytes)


def run_case(case: Case, affinity: list[int]) -> list[Record]:
    """The case's record, then one per layer where the case profiles a model layer by layer."""
    started = time.time()
    identity = case.identity()
    workload = None
    out: list[Record] = []
    try:
        # An OpenMP runtime started by an earlier case binds this thread to one CPU
        # (OMP_PROC_BIND), and threads started later inherit that: give it the case's CPUs back.
        os.sched_setaffinity(0, case.cpus)
        factory = registry.get(case.kind).load_factory()
        load_before = conditions.other_load(case.cpus)
        freq_before = conditions.system.cpufreq_mhz(case.cpus)
        workload = factory(case.params, Context(case.case_id, case.threads, case.cpus))
        library_threads = conditions.set_library_threads(case.threads)
        m = measure(workload, case.policy, case.cpus, read_clock=conditions.clock_ghz)
        if workload.check is not None:
            workload.check()
        where = Conditions(load_before=load_before, load_after=conditions.other_load(case.cpus),
                           cpufreq_mhz_before=freq_before,
                           cpufreq_mhz_after=conditions.system.cpufreq_mhz(case.cpus),
                           clock_ghz_before=m.clock_ghz_before, clock_ghz_after=m.clock_ghz_after,
                           library_threads=library_threads)
        verdict = trust.assess(m.timing, m.faults, where, affinity, case.cpus, case.kind)
        record = records.measured(
            identity, affinity=affinity, cost=cost_of(workload), timing=m.timing, faults=m.faults,
            conditions=where, metrics=derived_metrics(workload, m.timing.median), info=workload.info,
            warnings=verdict.warnings, suspect_reasons=verdict.suspect_reasons, worker_pid=os.getpid(),
            started_at=started)
        out.append(record)
        if workload.layers is not None:
            profiled = workload.layers()
            record.info["layers"] = {"method": profiled.method, "runs": profiled.runs, "warmup": profiled.warmup,
                                     "whole_profiled_s": profiled.whole_profiled_s, "notes": profiled.notes,
                                     "count": len(profiled.layers)}
            for index, lt in enumerate(profiled.layers):
                out.append(records.layer(record, name=lt.name, op=lt.op, index=index, samples=lt.samples,
                                         cost=lt.cost, info=lt.info, method=profiled.method))
    except Skip as exc:
        out = [records.skipped(identity, str(exc), started_at=started, worker_pid=os.getpid())]
    except Exception as exc:  # the case failed; the worker and the run go on
        out = [records.failed(identity, describe_failure(exc), traceback=traceback.format_exc(limit=8),
                              info=workload.info if workload is not None else None, started_at=started,
                              worker_pid=os.getpid())]
    finally:
        if workload is not None and workload.teardown is not None:
            try:
                workload.teardown()
            except Exception as exc:
                out[0].warnings.append(f"teardown failed: {exc}")
    out[0].duration_s = time.time() - started
    return out


def main(argv: list[str]) -> int:
    spec_path, fd = argv[0], int(argv[1])
    with open(spec_path) as fh:
        spec = json.load(fh)
    out = os.fdopen(fd, "w", buffering=1)

    def emit(event: dict) -> None:
        out.write(json.dumps(event, default=str) + "\n")
        out.flush()

    cases = [Case.from_dict(c) for c in spec["cases"]]
    affinity = sorted(os.sched_getaffinity(0))
    emit({"event": "ready", "pid": os.getpid(), "affinity": affinity})
    for case in cases:
        emit({"event": "start", "case_id": case.case_id})
        first, *layers = run_case(case, affinity)
        emit({"event": "record", "record": first.to_json(), "layers": len(layers)})
        for layer in layers:
            emit({"event": "layer", "record": layer.to_json()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
