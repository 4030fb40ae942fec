"""The worker process: runs a group of cases that share CPU affinity and thread settings.

Started by the runner as `python -m harness.worker SPEC_JSON FD`, with the thread
environment already in its environment and its affinity set before exec, so every
library it imports starts with the settings the cases ask for. It writes one JSON line
per event to file descriptor FD: `ready`, then for each case `start` and `record`.
A case that raises becomes a failed record here; one that crashes or hangs the process
is turned into a failed record by the runner, which starts a new worker for the rest.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

from harness import conditions
from harness.suite import Case
from harness.timing import TimingPolicy, measure
from harness.workload import Context, Skip, Workload

# A coefficient of variation above this marks a measurement as noisy.
NOISY_CV = 0.10


def derived_metrics(workload: Workload, median_s: float) -> dict:
    metrics = {}
    if workload.flops is not None and median_s > 0:
        metrics["flops_per_s"] = workload.flops / median_s
    if workload.bytes is not None and median_s > 0:
        metrics["bytes_per_s"] = workload.bytes / median_s
    if workload.metrics is not None:
        metrics.update(workload.metrics(median_s))
    return metrics


def cost_of(workload: Workload) -> dict:
    cost = {"flops": workload.flops, "bytes": workload.bytes,
            "bytes_accounting": workload.info.get("bytes_accounting")}
    if workload.flops is not None and workload.bytes:
        cost["intensity"] = workload.flops / workload.bytes
    return cost


def measurement_warnings(m: dict, load_before: dict, load_after: dict, affinity: list[int],
                         case: Case) -> list[str]:
    warnings = []
    t, f = m["timing"], m["faults"]
    if f["minor_per_call"] > 0 or f["major_per_call"] > 0:
        warnings.append(f"page faults in the timed region: {f['minor']} minor, {f['major']} major "
                        f"({f['minor_per_call']:.3g} and {f['major_per_call']:.3g} per call)")
    for label, load in (("before", load_before), ("after", load_after)):
        if load["others_percent"] > conditions.LOAD_WARN_PERCENT:
            warnings.append(f"other processes kept the pinned CPUs {load['others_percent']:.0f}% busy "
                            f"{label} the case (per CPU: {load['per_cpu_percent']})")
    if f["steal_fraction"] > conditions.STEAL_WARN_FRACTION:
        warnings.append(f"hypervisor steal took {100 * f['steal_fraction']:.1f}% of the timed region")
    if not t["warmup_converged"]:
        warnings.append(f"warm-up did not reach a steady state in {t['warmup_samples']} samples")
    if t["cv"] > NOISY_CV:
        warnings.append(f"noisy: coefficient of variation {100 * t['cv']:.1f}%")
    if len(t["outliers"]) > 0.1 * t["n"]:
        warnings.append(f"{len(t['outliers'])} of {t['n']} samples are outliers")
    if sorted(affinity) != sorted(case.cpus):
        warnings.append(f"asked for CPUs {case.cpus}, got {affinity}")
    return warnings


def pool_records(records: list[dict]) -> dict:
    """One record from the same case run in several fresh worker processes (pyperf's way
    to average out what differs between processes: memory layout, a clock that moved).

    Samples are pooled and summarised afresh; each process's median is kept beside them.
    Faults are summed over all iterations; FLOP/s and B/s follow the pooled median, other
    derived figures are the median over processes. A failure in any process fails the case.
    """
    import copy
    import statistics

    from harness.stats import summarize

    bad = [r for r in records if r.get("status") != "ok"]
    if bad:
        record = copy.deepcopy(bad[0])
        record["error"] = f"process {records.index(bad[0]) + 1} of {len(records)}: {record.get('error')}"
        return record
    record = copy.deepcopy(records[0])
    timings = [r["timing"] for r in records]
    samples = [s for t in timings for s in t["samples"]]
    iterations = sum(t["n"] * t["number"] for t in timings)
    record["timing"].update(summarize(samples))
    record["timing"].update(samples=samples, processes=len(records),
                            process_medians=[t["median"] for t in timings],
                            warmup_iterations=[t["warmup_iterations"] for t in timings],
                            first_call_s=[t["first_call_s"] for t in timings])
    faults = record["faults"]
    for key in ("minor", "major", "voluntary_switches", "involuntary_switches"):
        faults[key] = sum(r["faults"][key] for r in records)
    faults["minor_per_call"] = faults["minor"] / iterations
    faults["major_per_call"] = faults["major"] / iterations
    median = record["timing"]["median"]
    metrics = {}
    for key, value in record.get("metrics", {}).items():
        values = [r["metrics"].get(key) for r in records]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            metrics[key] = statistics.median(values)
        else:
            metrics[key] = value
    cost = record.get("cost") or {}
    if cost.get("flops") and median > 0:
        metrics["flops_per_s"] = cost["flops"] / median
    if cost.get("bytes") and median > 0:
        metrics["bytes_per_s"] = cost["bytes"] / median
    record["metrics"] = metrics
    record["worker_pid"] = [r.get("worker_pid") for r in records]
    record["warnings"] = list(dict.fromkeys(w for r in records for w in r.get("warnings", [])))
    record["duration_s"] = sum(r.get("duration_s", 0) for r in records)
    return record


def run_case(case: Case, affinity: list[int]) -> dict:
    from kernels import registry

    started = time.time()
    record = {
        "case_id": case.case_id, "kind": case.kind, "params": case.params,
        "threads": case.threads, "cpus_requested": case.cpus, "affinity": affinity,
        "env": case.env, "started_at": started, "worker_pid": os.getpid(),
    }
    workload = None
    try:
        # An OpenMP runtime started by an earlier case binds this thread to one CPU
        # (OMP_PROC_BIND), and threads started later inherit that: give it the case's CPUs back.
        os.sched_setaffinity(0, case.cpus)
        factory = registry.get(case.kind).load_factory()
        load_before = conditions.other_load(case.cpus)
        freq_before = conditions.cpufreq_mhz(case.cpus)
        workload = factory(case.params, Context(case.case_id, case.threads, case.cpus))
        library_threads = conditions.set_library_threads(case.threads)
        m = measure(workload, TimingPolicy.from_dict(case.policy), case.cpus)
        clock_after = conditions.clock_ghz()
        if workload.check is not None:
            workload.check()
        freq_after = conditions.cpufreq_mhz(case.cpus)
        load_after = conditions.other_load(case.cpus)
        record.update(
            status="ok",
            cost=cost_of(workload),
            metrics=derived_metrics(workload, m["timing"]["median"]),
            info=workload.info,
            conditions={"load_before": load_before, "load_after": load_after,
                        "cpufreq_mhz_before": freq_before, "cpufreq_mhz_after": freq_after,
                        "clock_ghz_after": clock_after,
                        "library_threads": library_threads},
            warnings=measurement_warnings(m, load_before, load_after, affinity, case),
            **m,
        )
    except Skip as exc:
        record.update(status="skipped", error=str(exc))
    except Exception as exc:  # the case failed; the worker and the run go on
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=8))
        if workload is not None:
            record["info"] = workload.info
    finally:
        if workload is not None and workload.teardown is not None:
            try:
                workload.teardown()
            except Exception as exc:
                record.setdefault("warnings", []).append(f"teardown failed: {exc}")
    record["duration_s"] = time.time() - started
    return record


def main(argv: list[str]) -> int:
    spec_path, fd = argv[0], int(argv[1])
    spec = json.loads(open(spec_path).read())
    out = os.fdopen(fd, "w", buffering=1)

    def emit(event: dict) -> None:
        out.write(json.dumps(event, default=str) + "\n")
        out.flush()

    cases = [Case.from_dict(c) for c in spec["cases"]]
    affinity = sorted(os.sched_getaffinity(0))
    emit({"event": "ready", "pid": os.getpid(), "affinity": affinity})
    for case in cases:
        emit({"event": "start", "case_id": case.case_id})
        emit({"event": "record", "record": run_case(case, affinity)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
