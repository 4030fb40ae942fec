"""`harness predict`: a model's latency on this device from the calibration, before timing it.

Without --check or --validate nothing of the model is timed: a `kernels.*` case lists the
kernels the framework would run (ONNX Runtime builds its optimized graph and runs the model
once for the shapes of its kernels; torch eager walks one forward pass in the cost model's
function mode), each costed, and the predictor (harness.analysis.predict) gives each its
time. --check adds the model measured whole and kernel by kernel (`layers.*`), so predicted
and measured stand side by side per model and per kernel class; --validate measures every
zoo model (`model.*`, no profiler) at each thread count and batch and gives the error
distribution. Every prediction is a run (its cases stored like any) with the predictions in
RUN/predictions.json, which the run's report shows.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from harness.analysis import fingerprint as fpmod
from harness.analysis import predict as pr
from harness.analysis import profile as profiles
from harness.core.errors import UsageError
from harness.core.records import Record, final
from harness.core.store import write_json_file
from harness.core.suite import parse_suite
from harness.session.calibration import FRAMEWORKS, framework_version
from harness.session.pipeline import run_suite, write_report_safely

PREDICTIONS = "predictions.json"
DISCOVERY = {"onnxruntime": "kernels.onnxruntime", "eager": "kernels.torch"}
WHOLE = {"onnxruntime": "model.onnxruntime", "eager": "model.torch"}


def load_predictor(results: Path, framework: str, threads: int, opt_level: str,
                   path: str | None = None) -> pr.Predictor:
    """The predictor of the calibration for (this device, framework, threads); a missing one
    says which command makes it, one made elsewhere is refused."""
    fp = fpmod.fingerprint(with_gpu=False)
    device = fpmod.device_slug(fp)
    file = Path(path) if path else pr.calibration_path(profiles.profile_path(results, device).parent, framework,
                                                         threads)
    if not file.is_file():
        raise UsageError(f"no calibration for {framework} at {threads} thread{'s' if threads != 1 else ''} on this "
                         f"device ({file}): `harness calibrate --framework {framework} --threads {threads}` makes one")
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{file}: not a readable calibration file ({exc})") from None
    cal = pr.Calibration.from_json(data, str(file))
    pr.check_calibration(cal, str(file), device, framework, framework_version(framework), threads, opt_level)
    return pr.Predictor(cal)


def model_params(model: str, batch: int, image: int, shape: str, framework: str, opt_level: str) -> dict:
    params = {"batch": batch, "image": image}
    if model.endswith(".onnx"):
        params = {"onnx": str(Path(model).resolve()), "shape": shape, "model": ""}
    else:
        params["model"] = model
    if framework == "onnxruntime":
        params["opt_level"] = opt_level
    return params


def prediction_suite(models: list[str], framework: str, threads: list[int], batches: list[int], image: int,
                     shape: str, opt_level: str, measure: str | None, label: str):
    """Discovery of each (model, batch) at one thread (the kernel list does not depend on the
    thread count), and where `measure` names a kind (layers.* for --check, model.* for
    --validate) the model measured at each thread count."""
    cases = []
    for model in models:
        stem = Path(model).stem if model.endswith(".onnx") else model
        for batch in batches:
            params = model_params(model, batch, image, shape, framework, opt_level)
            cases.append({"id": f"{stem}.kernels[b={batch}]", "kind": DISCOVERY[framework], "params": params,
                          "threads": [1], "budget": 0.01, "min_samples": 1, "warmup_max": 0.01})
            if measure:
                measured = dict(params)
                if measure.startswith("layers."):
                    measured.update(runs=10, warmup=3)
                cases.append({"id": f"{stem}.{measure.split('.')[0]}[b={batch}]", "kind": measure,
                              "params": measured, "threads": threads})
    data = {"name": label, "description": f"harness predict ({framework})",
            "defaults": {"budget": 0.5, "min_samples": 5, "warmup_max": 1.0, "timeout": 600}, "cases": cases}
    return parse_suite(data, label)


def _model_of(r: Record) -> str:
    return str(r.params.get("model") or Path(str(r.params.get("onnx") or r.case_id)).stem)


def predictions_from(records: list[Record], predictors: dict[int, pr.Predictor], framework: str) -> list[dict]:
    """One row per (model, batch, threads): predicted with its interval, the uncalibrated
    baseline (the sum of roofline times), and what was measured where it was."""
    records = final(records)
    children: dict[str, list[Record]] = {}
    for r in records:
        if r.kind.startswith("layer.") and r.measured:
            children.setdefault(r.info.get("parent_case"), []).append(r)
    rows = []
    for found in records:
        if found.kind != DISCOVERY[framework] or not found.measured:
            continue
        kernels = [pr.Kernel.from_json(k) for k in found.info.get("kernels") or []]
        model, batch = _model_of(found), found.params.get("batch")
        measured = {m.threads: m for m in records if m.kind in (WHOLE[framework], FRAMEWORKS[framework])
                    and m.measured and _model_of(m) == model and m.params.get("batch") == batch}
        # the clock the device runs at now, read by the listing case (the measured ones are not used)
        clock = found.conditions.clock_ghz_after if found.conditions else None
        for threads, predictor in sorted(predictors.items()):
            p = predictor.predict_model(kernels, clock)
            baseline = sum(k.roof_s for k in p.kernels)
            row = {"model": model, "framework": framework, "batch": batch, "threads": threads, "clock_ghz": clock,
                   "calibration_clock_ghz": predictor.clock_ghz,
                   "predicted_s": p.seconds, "low_s": p.low, "high_s": p.high, "baseline_s": baseline,
                   "kernels": len(kernels), "sum_kernels_s": p.sum_kernels_s, "warnings": p.warnings,
                   "by_class": {c: {"predicted_s": s, "kernels": n} for c, (s, n) in p.by_class().items()},
                   "bottlenecks": [{"name": b.kernel.name, "class": b.klass, "predicted_s": b.seconds,
                                    "roof_s": b.roof_s} for b in p.bottlenecks(8)]}
            m = measured.get(threads)
            if m is not None:
                row["measured_s"] = m.timing.median
                row["error"] = p.seconds / m.timing.median - 1
                row["baseline_error"] = baseline / m.timing.median - 1
                layers = {x.params.get("layer"): x for x in children.get(m.case_id, [])}
                for kp in p.kernels:
                    hit = layers.get(kp.kernel.name)
                    if hit is not None:
                        entry = row["by_class"][kp.klass]
                        entry["measured_s"] = entry.get("measured_s", 0.0) + hit.timing.median
            rows.append(row)
    return rows


def run_prediction(models: list[str], framework: str, threads: list[int], batches: list[int], image: int,
                   shape: str, opt_level: str, results: Path, mode: str = "predict", calibration: str | None = None,
                   progress: bool = True):
    """(store, rows): the predictions of every (model, batch, threads), stored with their run."""
    if framework not in FRAMEWORKS:
        raise UsageError(f"--framework {framework}: one of {', '.join(FRAMEWORKS)}")
    predictors = {t: load_predictor(results, framework, t, opt_level, calibration) for t in threads}
    measure = {"predict": None, "check": FRAMEWORKS[framework], "validate": WHOLE[framework]}[mode]
    suite = prediction_suite(models, framework, threads, batches, image, shape, opt_level, measure,
                             f"predict-{mode}-{framework}")
    store, records = run_suite(suite, results, progress=progress, report=False)
    rows = predictions_from(records, predictors, framework)
    failed = [r for r in final(records) if not r.measured and r.kind in (DISCOVERY[framework], measure)]
    write_json_file(store.path / PREDICTIONS, {"mode": mode, "framework": framework, "written_at": time.time(),
                                               "calibrations": {str(t): p.cal.runs for t, p in predictors.items()},
                                               "rows": rows}, "predictions")
    store.report = write_report_safely(store.path)
    return store, rows, failed
