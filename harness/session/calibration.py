"""`harness calibrate`: the kernels of random networks measured on this device, the data the
latency predictor (harness.analysis.predict) learns from.

Why random networks: nn-Meter measures thousands of single kernels over days; LitePred an
hour of them. Kernels measured inside networks see what they see in a real model (the
producer left their input in cache, the fusions the framework applies, the layout reorders
between them) and come in dozens per measurement: one profiled network gives every kernel's
time and, measured whole without the profiler, how the kernels add up. The networks
(kernels/zoo_random.py: calib-cnn-<seed>, calib-vit-<seed>) draw their layers from the zoo's
distinct layers, perturbed (channels, spatial size, stride); the zoo models themselves are
never calibrated on, so predicting them is a fair test.

Rounds within the budget: a first round of networks across every block kind, then rounds
whose networks favour the kernel classes with the largest out-of-bag error of the predictor
fitted so far (nn-Meter's adaptive sampling). Each round is a run of the measurement core
(worker processes, pinned, warmed up, the device profile's ceilings) stored under results/
like any run; the calibration file beside the device profile
(results/<device>/calibration-<framework>-t<threads>.json) keeps every kernel measured,
with the snapshot of ceilings its roofline times came from.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.analysis import fingerprint as fpmod
from harness.analysis import predict as pr
from harness.analysis import profile as profiles
from harness.analysis import snapshot as snapshots
from harness.core import registry
from harness.core.errors import UsageError
from harness.core.records import Record, final
from harness.core.store import load_records, write_json_file
from harness.core.suite import Suite, load_suite, parse_suite
from harness.core.text import fmt_duration, fmt_pct, plural
from harness.session.pipeline import ROOT, blas_library, run_suite

FRAMEWORKS = {"onnxruntime": "layers.onnxruntime", "eager": "layers.torch"}
DEFAULT_BUDGET_S = 300.0
# Seconds a network case is expected to take before the first round measures it: a worker's
# share of start-up, the ONNX export, a session, the whole-model timing, the profiled passes.
FIRST_GUESS_S = 8.0
# Rounds are short so that the budget is overrun by one short round at most.
FIRST_ROUND = 6
ROUND_MAX = 12
# What the quick probe's cases at one thread count take, where the first round runs them.
PROBE_GUESS_S = 30.0
BATCHES = (1, 1, 2, 1, 1, 4, 1, 1, 8)
# Seconds kept for the end: the last fit and the calibration file.
FIT_RESERVE_S = 8.0
PROFILED_RUNS, PROFILED_WARMUP = 8, 2
CONV_FOCI = ("convkxk", "conv1x1", "depthwise", "grouped", "pool", "eltwise", "data")
VIT_FOCI = ("gemm", "norm", "softmax")
# The zoo's random-network names take these focus words (kernels/zoo_random.py).
FOCUS_WORD = {"convkxk": "convkxk", "conv1x1": "conv1x1", "depthwise": "depthwise", "grouped": "grouped",
              "pool": "pool", "eltwise": "eltwise", "data": "data", "gemm": "gemm", "norm": "norm",
              "softmax": "softmax"}


def framework_version(framework: str) -> str:
    """The version of the library a calibration holds for (onnxruntime's, or torch's for eager)."""
    if framework == "onnxruntime":
        import onnxruntime  # deferred: the calibration key needs only its version

        return onnxruntime.__version__
    import torch  # deferred as above

    return torch.__version__


def network_names(seeds: range, focus: list[str]) -> list[tuple[str, int, int]]:
    """(zoo name, image size, batch) per seed: three CNNs to one transformer, or the focus's
    family; each network at the input size it was drawn with (56 to 224 pixels), and one in
    three at a batch of 2 to 8, so that kernels as large as a zoo model's at batch 8 are seen."""
    zoo = registry.model_zoo()
    out = []
    for seed in seeds:
        word = focus[seed % len(focus)] if focus else None
        family = "vit" if (word in VIT_FOCI if word else seed % 4 == 3) else "cnn"
        name = f"calib-{family}-{seed}" + (f"-{FOCUS_WORD[word]}" if word else "")
        out.append((name, zoo.input_shape(name)[2], BATCHES[seed % len(BATCHES)]))
    return out


def probe_cases(threads: int) -> list:
    """The quick probe's cases at `threads` (and the clock), for a device whose profile has no
    ceilings there yet: the run measures them first and places everything after against them."""
    quick = load_suite(ROOT / "suites" / "probe-quick.yaml")
    return [c for c in quick.cases if c.threads == threads or c.kind == "probe.frequency"]


def calibration_suite(framework: str, threads: int, networks: list[tuple[str, int, int]], opt_level: str,
                      label: str, probes: bool = False) -> Suite:
    cases = []
    for name, image, batch in networks:
        params = {"model": name, "image": image, "batch": batch, "runs": PROFILED_RUNS, "warmup": PROFILED_WARMUP}
        if framework == "onnxruntime":
            params["opt_level"] = opt_level
        cases.append({"id": f"{name}-b{batch}", "kind": FRAMEWORKS[framework], "params": params, "threads": [threads]})
    data = {"name": label, "description": f"calibration networks for harness predict ({framework}, {threads} "
                                          f"thread{'s' if threads != 1 else ''})",
            "defaults": {"budget": 0.2, "min_samples": 3, "warmup_max": 0.3, "timeout": 300}, "cases": cases}
    suite = parse_suite(data, label)
    if probes:
        suite.cases = probe_cases(threads) + suite.cases
    return suite


def samples_from(records: list[Record], threads: int, snap) -> tuple[list[pr.KernelSample], list[pr.NetworkSample]]:
    """Every kernel of every measured network of a run, and each network's whole and summed time."""
    records = final(records)
    children: dict[str, list[Record]] = {}
    for r in records:
        if r.kind.startswith("layer.") and r.measured:
            children.setdefault(r.info.get("parent_case"), []).append(r)
    kernels, networks = [], []
    for case in records:
        if not case.kind.startswith("layers.") or not case.measured or not children.get(case.case_id):
            continue
        network = f"{case.params.get('model')}-b{case.params.get('batch', 1)}"
        layers = children[case.case_id]
        clock = case.conditions.clock_ghz_after if case.conditions else None
        for layer in layers:
            k = pr.Kernel.from_layer_record(layer)
            kernels.append(pr.KernelSample(vars(k).copy(), pr.kernel_class(k), pr.features(k, threads, snap),
                                           layer.timing.median, network, clock))
        networks.append(pr.NetworkSample(network, case.timing.median, sum(x.timing.median for x in layers),
                                         len(layers), clock))
    return kernels, networks


def worst_classes(cal: pr.Calibration, n: int = 3) -> list[str]:
    """The kernel classes to sample more: the largest out-of-bag error, and classes too thin to judge."""
    predictor = pr.Predictor(cal)
    thin = [c for c in pr.CLASSES[:-1] if predictor.class_count.get(c, 0) < pr.MIN_CLASS_SAMPLES]
    ranked = sorted(predictor.class_error, key=lambda c: -predictor.class_error[c])
    return [c for c in dict.fromkeys(thin + ranked) if c in FOCUS_WORD][:n]


def calibrate(framework: str, threads: int, budget_s: float, results: Path, opt_level: str = "all",
              progress: bool = True, log=print) -> Path:
    """Measures calibration networks for `budget_s` seconds; writes and returns the calibration file."""
    if framework not in FRAMEWORKS:
        raise UsageError(f"--framework {framework}: one of {', '.join(FRAMEWORKS)}")
    fp = fpmod.fingerprint(with_gpu=False)
    device = fpmod.device_slug(fp)
    cal = pr.Calibration(device=device, cpu_model=str(fp["cpu"]["model"]), framework=framework,
                         framework_version=framework_version(framework), threads=threads, opt_level=opt_level,
                         budget_s=budget_s)
    started = time.monotonic()
    profile = profiles.load_profile(profiles.profile_path(results, device))
    ceilings = snapshots.take(profile, fp, blas_library=blas_library(fp)) if profile else None
    need_probes = ceilings is None or ceilings.compute("float32", threads) is None
    if need_probes:
        log(f"no measured ceilings at {plural(threads, 'thread')} in the device profile: the first round "
            "runs the quick probe's cases first", file=sys.stderr)
    per_case, seed, focus, round_no = FIRST_GUESS_S, 0, [], 0
    while True:
        left = (budget_s - (time.monotonic() - started) - FIT_RESERVE_S
                - (PROBE_GUESS_S if need_probes and round_no == 0 else 0))
        count = min(FIRST_ROUND if round_no == 0 else ROUND_MAX, int(0.8 * left / per_case))
        if count < 2 and not (round_no == 0 and count == 1):
            break
        round_no += 1
        networks = network_names(range(seed, seed + count), focus)
        seed += count
        label = f"calibrate-{framework}-t{threads}-r{round_no}"
        log(f"round {round_no}: {plural(count, 'network')}" + (f", favouring {', '.join(focus)}" if focus else "")
            + f" ({fmt_duration(left)} of the budget left)", file=sys.stderr)
        t0 = time.monotonic()
        suite = calibration_suite(framework, threads, networks, opt_level, label,
                                  probes=need_probes and round_no == 1)
        store, records = run_suite(suite, results, progress=progress, report=False)
        probes_s = sum(r.duration_s or 0 for r in records if r.kind.startswith("probe."))
        per_case = max((time.monotonic() - t0 - probes_s) / count, 0.5)
        snap = snapshots.load(store.path, store.manifest.fingerprint)
        if not cal.snapshot:  # every round's roofs from the first round's ceilings: one set of features
            cal.snapshot = snap.to_json()
        kernels, nets = samples_from(load_records(store.path), threads, cal.snap())
        cal.kernels += kernels
        cal.networks += nets
        cal.runs.append(store.run_id)
        failed = [r.case_id for r in final(records) if r.kind.startswith("layers.") and not r.measured]
        if failed:
            log(f"  {plural(len(failed), 'network')} not measured: {', '.join(failed[:5])}", file=sys.stderr)
        if len(cal.kernels) >= pr.MIN_CLASS_SAMPLES:
            focus = worst_classes(cal)
    cal.seconds = time.monotonic() - started
    if len(cal.kernels) < pr.MIN_CLASS_SAMPLES:
        raise UsageError(f"--budget {budget_s:g}: too short to measure any calibration network here "
                         f"({fmt_duration(cal.seconds)} spent); give at least {4 * FIRST_GUESS_S:g} s")
    path = pr.calibration_path(profiles.profile_path(results, device).parent, framework, threads)
    write_json_file(path, cal.to_json(), "calibration file", indent=None)
    predictor = pr.Predictor(cal)
    log(f"calibrated {framework} at {plural(threads, 'thread')}: {len(cal.kernels)} kernels from "
        f"{len(cal.networks)} networks in {fmt_duration(cal.seconds)}; out-of-bag error per class: "
        + ", ".join(f"{c} {fmt_pct(e, 2)} ({predictor.class_count[c]})" for c, e in predictor.class_error.items()))
    return path
