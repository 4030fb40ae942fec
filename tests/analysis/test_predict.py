"""The predictor on a synthetic device: kernel times from a known formula plus noise are
learnt from calibration networks and recovered for models calibration never saw."""
import math

import numpy as np
import pytest

from harness.analysis import predict as pr
from harness.analysis.snapshot import Snapshot, SnapshotCeiling
from harness.core.errors import UsageError

KIB, MIB = 1024, 1024 ** 2
SNAP = Snapshot(ceilings=[SnapshotCeiling("compute", "avx2", 1e11, "float32", 1),
                          SnapshotCeiling("bandwidth", "L1", 2e11, None, 1),
                          SnapshotCeiling("bandwidth", "L2", 1e11, None, 1),
                          SnapshotCeiling("bandwidth", "DRAM", 2e10, None, 1)],
                cache_capacity={"1": {"L1": 32 * KIB, "L2": 512 * KIB, "L3": 32 * MIB}})


def conv(rng, name):
    c_in, c_out = (int(c) for c in rng.choice([16, 24, 30, 32, 48, 64, 96, 100, 128], size=2))
    h, k = int(rng.choice([7, 14, 28, 56])), int(rng.choice([1, 3]))
    depthwise = rng.random() < 0.25
    if depthwise:
        c_out, groups = c_in, c_in
    else:
        groups = 1
    macs = c_out * h * h * (c_in // groups) * k * k
    nbytes = 4 * (c_in * h * h + c_out * h * h + c_out * (c_in // groups) * k * k)
    return pr.Kernel(name, "Conv", "conv", 2.0 * macs, float(nbytes), flops_main=2.0 * macs,
                     output_shape=[1, c_out, h, h], input_shapes=[[1, c_in, h, h], [c_out, c_in // groups, k, k]])


def eltwise(rng, name):
    c, h = int(rng.choice([16, 32, 64, 128])), int(rng.choice([7, 14, 28, 56]))
    n = c * h * h
    return pr.Kernel(name, "Relu", "act", float(n), 8.0 * n, output_shape=[1, c, h, h], input_shapes=[[1, c, h, h]])


def gemm(rng, name):
    m, k, n = (int(x) for x in rng.choice([64, 128, 197, 256, 384], size=3))
    return pr.Kernel(name, "MatMul", "matmul", 2.0 * m * k * n, 4.0 * (m * k + k * n + m * n),
                     flops_main=2.0 * m * k * n, output_shape=[m, n], input_shapes=[[m, k], [k, n]])


def true_time(k: pr.Kernel) -> float:
    """The synthetic device: roofline time, slower by a third off multiples of 8 channels and
    for depthwise convs, plus 3 us of overhead a call."""
    roof = pr.roof_seconds(k, 1, SNAP)
    klass = pr.kernel_class(k)
    penalty = 1.0
    if klass in ("convkxk", "conv1x1") and k.output_shape[1] % 8:
        penalty *= 1.33
    if klass == "depthwise":
        penalty *= 3.0
    return 3e-6 + 1.6 * penalty * roof


def network(rng, name, n=12):
    makers = [conv, conv, eltwise, gemm]
    return [makers[int(rng.integers(len(makers)))](rng, f"{name}/{i}") for i in range(n)]


def whole_time(kernels, noise):
    """The framework: 20 us a run, 2 us between kernels, times the kernels' sum."""
    return 20e-6 + 1.02 * sum(true_time(k) * noise() for k in kernels) + 2e-6 * len(kernels)


def calibration(seed=0, networks=60) -> pr.Calibration:
    rng = np.random.default_rng(seed)
    noise = lambda: float(np.exp(rng.normal(0, 0.03)))  # noqa: E731 -- 3% noise, as a quiet machine gives
    cal = pr.Calibration(device="test-cpu", cpu_model="Test CPU", framework="onnxruntime", framework_version="1.0",
                         threads=1, opt_level="all", snapshot=SNAP.to_json())
    for i in range(networks):
        kernels = network(rng, f"calib-{i}", n=int(rng.integers(4, 24)))
        measured = [true_time(k) * noise() for k in kernels]
        for k, t in zip(kernels, measured):
            cal.kernels.append(pr.KernelSample(vars(k).copy(), pr.kernel_class(k), pr.features(k, 1, SNAP), t,
                                               f"calib-{i}"))
        cal.networks.append(pr.NetworkSample(f"calib-{i}", whole_time(kernels, noise), sum(measured), len(kernels)))
    return cal


def test_kernel_classes_from_shapes():
    rng = np.random.default_rng(1)
    k = conv(rng, "c")
    dense = pr.Kernel("a", "Conv", "conv", 2.0 * 64 * 28 * 28 * 32 * 9, 1.0, flops_main=2.0 * 64 * 28 * 28 * 32 * 9,
                      output_shape=[1, 64, 28, 28], input_shapes=[[1, 32, 28, 28], [64, 32, 3, 3]])
    assert pr.kernel_class(dense) == "convkxk" and pr.conv_facts(dense)["groups"] == 1
    dw = pr.Kernel("b", "FusedConv", "conv", 2.0 * 32 * 14 * 14 * 9, 1.0, flops_main=2.0 * 32 * 14 * 14 * 9,
                   output_shape=[1, 32, 14, 14], input_shapes=[[1, 32, 28, 28], [32, 1, 3, 3]])
    assert pr.kernel_class(dw) == "depthwise" and pr.conv_facts(dw)["stride"] == 2
    # ONNX Runtime's blocked layout: 5-D input, 6-D weight, 8 channels a block
    nchwc = pr.Kernel("c", "Conv", "conv", 2.0 * 64 * 28 * 28 * 64, 1.0, flops_main=2.0 * 64 * 28 * 28 * 64,
                      output_shape=[1, 8, 28, 28, 8], input_shapes=[[1, 8, 28, 28, 8], [8, 8, 1, 1, 8, 8]])
    assert pr.kernel_class(nchwc) == "conv1x1" and pr.conv_facts(nchwc)["ic"] == 64
    grouped = pr.Kernel("d", "Conv", "conv", 2.0 * 64 * 7 * 7 * 16 * 9, 1.0, flops_main=2.0 * 64 * 7 * 7 * 16 * 9,
                        output_shape=[1, 64, 7, 7], input_shapes=[[1, 64, 7, 7], [64, 16, 3, 3]])
    assert pr.kernel_class(grouped) == "grouped" and pr.conv_facts(grouped)["groups"] == 4
    assert pr.kernel_class(pr.Kernel("e", "MatMul", None, 1.0, 1.0)) == "gemm"
    assert pr.kernel_class(pr.Kernel("f", "ReorderInput", None, None, None)) == "data"
    assert pr.kernel_class(pr.Kernel("g", "max_pool2d", "pool", 1.0, 1.0)) == "pool"
    assert pr.kernel_class(k) in ("convkxk", "conv1x1", "depthwise")


def test_a_synthetic_device_is_recovered_for_models_calibration_never_saw():
    predictor = pr.Predictor(calibration())
    rng = np.random.default_rng(99)  # other networks than calibration's
    errors, inside = [], 0
    for i in range(20):
        kernels = network(rng, f"model-{i}", n=int(rng.integers(8, 30)))
        truth = whole_time(kernels, lambda: 1.0)
        p = predictor.predict_model(kernels)
        errors.append(p.seconds / truth - 1)
        inside += p.low <= truth <= p.high
    errors = np.abs(errors)
    assert np.mean(errors) < 0.05 and np.max(errors) < 0.10, errors
    assert inside >= 18  # the +-2 sd interval holds the truth
    # the learnt effects: the composition and the per-class corrections
    comp = predictor.composition
    assert comp["b"] == pytest.approx(1.02, rel=0.05) and comp["networks"] == 60
    assert predictor.class_error["depthwise"] < 0.05


def test_a_kernel_outside_the_calibrated_range_is_named():
    predictor = pr.Predictor(calibration(networks=20))
    huge = pr.Kernel("huge", "MatMul", "matmul", 2.0 * 4096 ** 3, 4.0 * 3 * 4096 ** 2, flops_main=2.0 * 4096 ** 3,
                     output_shape=[4096, 4096], input_shapes=[[4096, 4096], [4096, 4096]])
    p = predictor.predict_model([huge])
    assert p.warnings and "huge (gemm)" in p.warnings[0] and "log_flops" in p.warnings[0]


def test_a_calibration_from_elsewhere_is_refused_in_one_line(tmp_path):
    cal = calibration(networks=5)
    again = pr.Calibration.from_json(cal.to_json(), "cal.json")
    assert len(again.kernels) == len(cal.kernels) and again.networks[0] == cal.networks[0]
    pr.check_calibration(again, "cal.json", "test-cpu", "onnxruntime", "1.0", 1, "all")
    for kwargs, word in (({"device": "other-cpu"}, "device"), ({"framework_version": "2.0"}, "framework version"),
                         ({"threads": 2}, "threads"), ({"opt_level": "basic"}, "optimization level")):
        args = {"device": "test-cpu", "framework": "onnxruntime", "framework_version": "1.0", "threads": 1,
                "opt_level": "all", **kwargs}
        with pytest.raises(UsageError, match=f"calibrated for {word}"):
            pr.check_calibration(again, "cal.json", **args)
    with pytest.raises(UsageError, match="not a calibration file"):
        pr.Calibration.from_json({"kind": "snapshot"}, "profile.json")
    with pytest.raises(UsageError, match="too few"):
        pr.Predictor(pr.Calibration("d", "m", "onnxruntime", "1", 1, "all"))


def test_uncosted_kernels_are_predicted_from_their_output_size():
    k = pr.Kernel("lrn", "LRN", None, None, None, output_shape=[1, 64, 56, 56])
    assert not k.costed and pr.kernel_class(k) == "other"
    assert pr.roof_seconds(k, 1, SNAP) == pytest.approx(64 * 56 * 56 * 8 / 2e10)
    assert math.isfinite(pr.features(k, 1, SNAP)["log_roof_s"])
