"""calibrate -> predict on a synthetic device, through the same records the measurement core
writes: kernels measured inside networks become calibration samples, a model's listed
kernels become a prediction beside what was measured; and every bad input is one line."""
import json

import numpy as np
import pytest

from support import harness_cli, one_line_error, record, run_cli
from harness.analysis import predict as pr
from harness.analysis.snapshot import Snapshot, SnapshotCeiling
from harness.core.records import Cost
from harness.presentation.prediction_text import prediction_blocks
from harness.session import calibration, prediction

SNAP = Snapshot(ceilings=[SnapshotCeiling("compute", "avx2", 1e11, "float32", 1),
                          SnapshotCeiling("bandwidth", "DRAM", 2e10, None, 1)],
                cache_capacity={"1": {"L1": 32768, "L2": 524288}})


def kernel_dict(rng, i):
    c, h = int(rng.choice([16, 24, 32, 64])), int(rng.choice([14, 28]))
    if i % 2:
        n = c * h * h
        return {"name": f"relu{i}", "op": "Relu", "category": "act", "flops": float(n), "bytes": 8.0 * n,
                "flops_main": 0, "params": 0, "output_shape": [1, c, h, h], "input_shapes": [[1, c, h, h]]}
    macs = c * h * h * c
    return {"name": f"conv{i}", "op": "Conv", "category": "conv", "flops": 2.0 * macs,
            "bytes": 4.0 * (2 * c * h * h + c * c), "flops_main": 2 * macs, "params": c * c,
            "output_shape": [1, c, h, h], "input_shapes": [[1, c, h, h], [c, c, 1, 1]]}


def device_time(k: pr.Kernel) -> float:
    """The synthetic device: 1.5 x the roofline time plus 2 us a kernel."""
    return 2e-6 + 1.5 * pr.roof_seconds(k, 1, SNAP)


def layer_records(case_id, kernels, noise):
    """A `layers.onnxruntime` case and its layer records, as the worker writes them."""
    out = []
    for k in kernels:
        t = device_time(pr.Kernel.from_json(k)) * noise()
        r = record("layer.onnxruntime", {"layer": k["name"], "op": k["op"], "model": case_id}, 1,
                   samples=(t, t, t), case_id=f"{case_id}/{k['name']}",
                   info={"category": k["category"], "output_shape": k["output_shape"],
                         "input_shapes": k["input_shapes"], "parent_case": case_id})
        r.cost = Cost.of(k["flops"], k["bytes"], params=k["params"], breakdown={"flops_main": k["flops_main"]})
        out.append(r)
    total = sum(r.timing.median for r in out)
    case = record("layers.onnxruntime", {"model": case_id}, 1, samples=(total * 1.1 + 5e-5,) * 3, case_id=case_id)
    return [case] + out


def test_calibration_samples_fit_a_predictor_that_recovers_the_device():
    rng = np.random.default_rng(0)
    noise = lambda: float(np.exp(rng.normal(0, 0.02)))  # noqa: E731
    records = []
    for n in range(30):
        records += layer_records(f"calib-cnn-{n}", [kernel_dict(rng, i) for i in range(int(rng.integers(4, 16)))],
                                 noise)
    kernels, networks = calibration.samples_from(records, 1, SNAP)
    assert len(networks) == 30 and {s.klass for s in kernels} == {"conv1x1", "eltwise"}
    assert all(n.whole_s == pytest.approx(n.sum_kernels_s * 1.1 + 5e-5) for n in networks)
    cal = pr.Calibration("test-cpu", "Test", "onnxruntime", "1.0", 1, "all", kernels, networks, SNAP.to_json())
    predictor = pr.Predictor(cal)

    # a model calibration never saw: listed (kernels.onnxruntime), then measured (layers.onnxruntime)
    model = [kernel_dict(rng, i) for i in range(25)]
    listed = record("kernels.onnxruntime", {"model": "resnet-like", "batch": 1}, 1, case_id="m.kernels[b=1]",
                    info={"kernels": model})
    measured = layer_records("m.layers[b=1]", model, lambda: 1.0)
    measured[0].params.update(model="resnet-like", batch=1)
    rows = prediction.predictions_from([listed] + measured, {1: predictor}, "onnxruntime")
    (row,) = rows
    assert abs(row["error"]) < 0.05 and row["low_s"] <= row["measured_s"] <= row["high_s"]
    assert abs(row["baseline_error"]) > 0.3  # the uncalibrated sum of roofline times misses by far more
    assert row["by_class"]["conv1x1"]["measured_s"] > 0 and row["kernels"] == 25


def test_a_prediction_run_report_shows_predicted_against_measured(tmp_path):
    row = {"model": "m", "framework": "onnxruntime", "batch": 1, "threads": 1, "predicted_s": 1e-3, "low_s": 9e-4,
           "high_s": 1.1e-3, "baseline_s": 5e-4, "kernels": 3, "sum_kernels_s": 9e-4, "warnings": ["k (gemm): x"],
           "by_class": {"gemm": {"predicted_s": 9e-4, "kernels": 3, "measured_s": 1e-3}},
           "bottlenecks": [{"name": "k", "class": "gemm", "predicted_s": 9e-4, "roof_s": 3e-4}],
           "measured_s": 1.05e-3, "error": 1e-3 / 1.05e-3 - 1, "baseline_error": 5e-4 / 1.05e-3 - 1}
    (tmp_path / "predictions.json").write_text(json.dumps({"mode": "check", "rows": [row]}))
    blocks = prediction_blocks(tmp_path, tmp_path / "plots")
    text = json.dumps(blocks, default=str, ensure_ascii=False)
    assert "Predicted latency" in text and "-4.8%" in text and "within ±5% 100%" in text
    assert (tmp_path / "plots" / "predicted-vs-measured.svg").exists()
    assert prediction_blocks(tmp_path / "nothing", tmp_path) == []


@pytest.mark.parametrize("args,expected", [
    (["predict", "resnet18", "--results", "{tmp}"], "no calibration for onnxruntime at 1 thread"),
    (["predict", "no_such_net", "--results", "{tmp}"], "no_such_net: not a zoo model"),
    (["predict", "missing.onnx", "--results", "{tmp}"], "missing.onnx: no such ONNX file"),
    (["predict", "resnet18", "--validate"], "--validate: predicts every zoo model"),
    (["predict", "resnet18", "--threads", "0"], "--threads: expected a positive integer"),
    (["predict", "resnet18", "--framework", "tensorflow"], "--framework"),
    (["calibrate", "--budget", "5"], "--budget"),
    (["calibrate", "--threads", "1", "--budget", "20"], "too short for a calibration"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, expected):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    line = one_line_error(run_cli(*args, *([] if "--threads" in args else ["--threads", "1"])))
    assert expected in line, line


def test_a_calibration_from_another_device_is_refused(tmp_path):
    cal = pr.Calibration("another-cpu", "Other", "onnxruntime", "0.0", 1, "all")
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(cal.to_json()))
    line = one_line_error(harness_cli("predict", "resnet18", "--threads", "1", "--calibration", path,
                                      "--results", tmp_path))
    assert "calibrated for device another-cpu" in line and "harness calibrate --framework onnxruntime" in line
