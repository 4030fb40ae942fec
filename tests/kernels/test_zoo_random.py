"""Random calibration networks: names, determinism, variety, limits, focus, and that every
kind builds them by name (torch, the ONNX export, ONNX Runtime, a suite case)."""
from __future__ import annotations

import collections
import math
import statistics

import numpy as np
import pytest

from harness.core.errors import UsageError
from harness.core.registry import get
from harness.core.suite import parse_suite
from harness.core.workload import Context
from kernels import zoo, zoo_random

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from kernels import layers  # noqa: E402
from kernels.conv_layers import distinct_conv_layers  # noqa: E402
from kernels.models import TOLERANCE, export_onnx  # noqa: E402

CNN_KINDS = set(zoo_random.BLOCK_WEIGHTS)
SEEDS = range(20)


def _kinds(name: str) -> list[str]:
    return [block["kind"] for block in zoo_random.spec(name)["blocks"]]


def _covering_seeds(family: str, wanted: set) -> list[int]:
    """The first seeds, in order, that together hold every feature in `wanted`."""
    seeds, seen = [], set()
    for seed in range(200):
        have = _features(zoo_random.spec(f"calib-{family}-{seed}")) & wanted
        if have - seen:
            seeds.append(seed)
            seen |= have
        if seen == wanted:
            return seeds
    raise AssertionError(f"not covered in 200 seeds: {wanted - seen}")


def _features(net: dict) -> set:
    if net["family"] == "vit":
        return {net["qkv"], f"patch{net['patch']}"}
    found = {block["kind"] for block in net["blocks"]}
    found |= {f"residual-{b['variant']}" for b in net["blocks"] if b["kind"] == "residual"}
    found |= {f"concat-{b['branch']}" for b in net["blocks"] if b["kind"] == "concat"}
    found |= {"softmax"} if net["head"]["softmax"] else set()
    return found


# --------------------------------------------------------------------------- plain Python

def test_names():
    assert zoo_random.parse_name("calib-cnn-17") == ("cnn", 17, "")
    assert zoo_random.parse_name("calib-vit-0-softmax") == ("vit", 0, "softmax")
    for bad in ("calib-cnn-017", "calib-cnn--1", "calib-rnn-3", "calib-cnn-3-", "calib-cnn-x", "calib-vit-3-depthwise",
                "calib-cnn-3-conv1x1-pool", "Calib-cnn-3"):
        assert not zoo.is_known(bad), bad
    assert zoo.is_known("calib-cnn-3") and zoo.is_known("calib-cnn-3-depthwise") and zoo.is_known("resnet18")
    assert "focus 'depthwise' is not one of gemm" in zoo.name_error("calib-vit-3-depthwise")
    assert "or a calibration network" in zoo.name_error("resnet19")
    assert not any(name.startswith("calib") for name in zoo.MODELS)  # MODELS: the real zoo only


def test_same_seed_same_recipe():
    for name in ("calib-cnn-5", "calib-vit-5", "calib-cnn-5-pool"):
        family, seed, focus = zoo_random.parse_name(name)
        sample = zoo_random.sample_cnn if family == "cnn" else zoo_random.sample_vit
        assert sample(seed, focus) == sample(seed, focus) == zoo_random.spec(name)
    assert zoo_random.spec("calib-cnn-5") != zoo_random.spec("calib-cnn-6")
    assert zoo_random.spec("calib-cnn-5") != zoo_random.spec("calib-cnn-5-pool")


def test_variety_over_seeds():
    kinds = collections.Counter(k for seed in SEEDS for k in _kinds(f"calib-cnn-{seed}"))
    assert set(kinds) == CNN_KINDS, CNN_KINDS - set(kinds)
    nets = [zoo_random.spec(f"calib-cnn-{seed}") for seed in SEEDS]
    channels = [b["out"] for net in nets for b in net["blocks"] if "out" in b]
    assert 0.1 < sum(c % 8 != 0 for c in channels) / len(channels) < 0.6
    assert any(c % 16 == 8 for c in channels)
    assert len({net["image"] for net in nets}) >= 4
    assert {len(net["blocks"]) for net in nets} <= set(range(6, 17)) and len({len(n["blocks"]) for n in nets}) >= 5
    assert {b["k"] for net in nets for b in net["blocks"] if b["kind"] == "conv_kxk"} == {3, 5, 7}
    assert len({b["groups"] for net in nets for b in net["blocks"] if b["kind"] == "grouped"}) >= 3
    vits = [zoo_random.spec(f"calib-vit-{seed}") for seed in SEEDS]
    assert {v["qkv"] for v in vits} == {"fused", "separate"} and {v["patch"] for v in vits} == {8, 16}
    assert len({v["heads"] for v in vits}) >= 3 and {v["depth"] for v in vits} == {1, 2, 3, 4}
    assert all(v["dim"] % v["heads"] == 0 for v in vits)


@pytest.mark.parametrize("family", zoo_random.FAMILIES)
def test_limits_hold_for_every_draw(family):
    for seed in range(100):
        net = zoo_random.spec(f"calib-{family}-{seed}")
        assert zoo_random.MIN_FLOPS <= zoo_random.flops(net) <= zoo_random.MAX_FLOPS
        if family == "cnn":
            widest = max(b.get("out", 0) + b.get("expand", 0) for b in [net["stem"], *net["blocks"]])
            assert widest <= zoo_random.MAX_CHANNELS
            # The head sees at least 1x1 at the kinds' smallest image: any image works.
            assert zoo_random.cnn_walk(net, 32)[-2]["h"] >= 1


def test_focus_raises_the_share_of_its_blocks():
    def share(names, kinds):
        found = [k for name in names for k in _kinds(name)]
        return sum(k in kinds for k in found) / len(found)

    for focus, kinds in zoo_random.CNN_FOCUS.items():
        if kinds:
            base = share([f"calib-cnn-{s}" for s in SEEDS], kinds)
            assert share([f"calib-cnn-{s}-{focus}" for s in SEEDS], kinds) > 1.5 * base, focus
    assert all(zoo_random.spec(f"calib-cnn-{s}-softmax")["head"]["softmax"] for s in SEEDS)
    tokens = {focus: statistics.mean((zoo_random.spec(f"calib-vit-{s}{focus}")["patch"] == 8) for s in SEEDS)
              for focus in ("", "-softmax")}
    assert tokens["-softmax"] > tokens[""]
    dims = {focus: statistics.mean(zoo_random.spec(f"calib-vit-{s}{focus}")["dim"] for s in SEEDS)
            for focus in ("", "-gemm")}
    assert dims["-gemm"] > dims[""]


def test_memory_estimate_needs_no_published_count():
    small, large = (zoo.memory_estimate("calib-vit-3", 1, image) for image in (64, 512))
    assert zoo.RUNTIME_BYTES < small < large
    image = zoo_random.spec("calib-cnn-3")["image"]
    assert zoo.input_shape("calib-cnn-3", batch=2) == (2, 3, image, image)


def test_a_suite_can_name_calibration_networks():
    suite = parse_suite({"cases": [
        {"id": "l", "kind": "layers.onnxruntime", "params": {"model": "calib-cnn-3", "image": 64, "runs": 2, "warmup": 1}},
        {"id": "t", "kind": "layers.torch", "params": {"model": "calib-vit-4-softmax", "image": 96}},
        {"id": "m", "kind": "model.torch", "params": {"model": "calib-cnn-8-depthwise"}},
        {"id": "o", "kind": "model.onnxruntime", "params": {"model": "calib-vit-2"}}]}, "s.yaml")
    assert [c.params["model"] for c in suite.cases] == ["calib-cnn-3", "calib-vit-4-softmax", "calib-cnn-8-depthwise",
                                                       "calib-vit-2"]
    with pytest.raises(UsageError, match="focus 'blur' is not one of"):
        parse_suite({"cases": [{"kind": "model.torch", "params": {"model": "calib-cnn-3-blur"}}]}, "s.yaml")
    with pytest.raises(UsageError, match="unknown zoo model 'resnet19'"):
        parse_suite({"cases": [{"kind": "layers.torch", "params": {"model": "resnet19"}}]}, "s.yaml")


# --------------------------------------------------------------------------- torch and ONNX

def test_stage_channels_come_from_the_zoo():
    for name in ("resnet18", "mobilenet_v2"):
        for layer in distinct_conv_layers(name):
            ho = (layer["h"] + 2 * layer["pad"] - layer["kh"]) // layer["stride"] + 1
            assert layer["oc"] in zoo_random.STAGE_CHANNELS[round(math.log2(224 / ho))], (name, layer)


def test_same_seed_same_network_and_output():
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for name, other in (("calib-cnn-1", "calib-cnn-2"), ("calib-vit-1", "calib-vit-2")):
        a, b = zoo.build(name), zoo.build(name)
        assert str(a) == str(b) and not a.training
        with torch.inference_mode():
            assert torch.equal(a(x), b(x))
            assert not torch.equal(zoo.build(name, seed=1)(x), a(x))
        assert str(zoo.build(name, seed=1)) == str(a)  # the weight seed changes weights only
        assert str(zoo.build(other)) != str(a)


def test_recipe_flops_and_weights_are_the_built_networks():
    for name in ("calib-cnn-0", "calib-vit-0"):
        net, model = zoo_random.spec(name), zoo.build(name)
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            model(torch.zeros(1, 3, 64, 64))
        assert counter.get_total_flops() == zoo_random.flops(net, 64)
        stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
        assert sum(p.numel() for p in model.parameters()) + stats == zoo_random.weights(net)


def _onnxruntime_output(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


def _assert_same_output(model, path, image=64):
    x = torch.randn(1, 3, image, image, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(x).numpy()
    got = _onnxruntime_output(path, x)
    # Relative to the output's scale, as kernels.models checks a zoo export.
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE * np.abs(expected).max()


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter's: chosen for speed here
def test_every_block_kind_exports_and_matches_in_onnxruntime(tmp_path):
    """The TorchScript exporter (well under a second a net here) over the first seeds that
    together hold every block kind and variant; the default exporter in the next test."""
    wanted = {"cnn": CNN_KINDS | {"residual-basic", "residual-inverted", "concat-conv", "concat-pool", "softmax"},
              "vit": {"fused", "separate", "patch8", "patch16"}}
    names = [f"calib-{family}-{seed}" for family in wanted for seed in _covering_seeds(family, wanted[family])]
    assert len(names) <= 10, names
    for name in names:
        model, path = zoo.build(name), tmp_path / f"{name}.onnx"
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(path), input_names=["input"],
                          output_names=["output"], dynamo=False)
        _assert_same_output(model, path)


@pytest.mark.parametrize("name", ["calib-cnn-1", "calib-vit-1"])
def test_the_kinds_cached_export_runs_in_onnxruntime(name, onnx_cache):
    # calib-cnn-1 holds a BatchNorm with no conv before it, a shuffle, an SE gate and a concat.
    path = export_onnx(name, 1, 64, cache_dir=onnx_cache)
    assert export_onnx(name, 1, 64, cache_dir=onnx_cache) == path  # cached
    _assert_same_output(zoo.build(name), path)


def test_a_calibration_network_profiles_layer_by_layer(onnx_cache, monkeypatch):
    monkeypatch.setenv("HARNESS_ONNX_CACHE", str(onnx_cache))
    params, problems = get("layers.onnxruntime").resolve_params({"model": "calib-cnn-1", "image": 64, "runs": 2,
                                                                 "warmup": 1})
    assert not problems
    work = layers.ort_layers(params, Context("test", 1, [0]))
    work.fn()
    profiled = work.layers()
    convs = [lt for lt in profiled.layers if lt.op in ("Conv", "FusedConv")]
    assert convs and all(len(lt.samples) == 2 for lt in profiled.layers)
    assert all(len(lt.info["input_shapes"][0]) == 4 and len(lt.info["input_shapes"][1]) == 4 for lt in convs)
    assert work.info["input_shapes"] == {"input": [1, 3, 64, 64]}
