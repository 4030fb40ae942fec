"""Per-layer profiling as case kinds: the torch walk and ONNX Runtime's profiler, each layer
with its own samples and cost, run in a worker like every measurement."""
from __future__ import annotations

import math
import os

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from harness.analysis.layers import layer_tables  # noqa: E402
from harness.analysis.placement import placer  # noqa: E402
from harness.analysis.snapshot import Snapshot, SnapshotCeiling  # noqa: E402
from harness.core.registry import get  # noqa: E402
from harness.core.runner import run_cases  # noqa: E402
from harness.core.store import RunStore  # noqa: E402
from harness.core.suite import parse_suite  # noqa: E402
from harness.core.workload import Context  # noqa: E402
from harness.cost.ort_kernels import trace_cost  # noqa: E402
from harness.presentation.model_text import format_layer_table  # noqa: E402
from kernels import layers  # noqa: E402

CTX = Context("test", 1, [0])


def _params(kind, **given):
    params, problems = get(kind).resolve_params(given)
    assert not problems, problems
    return params


def test_torch_layers_join_cost_and_time():
    w = layers.torch_layers(_params("layers.torch", model="mobilenet_v2", image=64, runs=3, warmup=1), CTX)
    w.fn()
    profiled = w.layers()
    assert len(profiled.layers) > 100 and profiled.runs == 3
    assert all(len(lt.samples) == 3 and min(lt.samples) > 0 for lt in profiled.layers)
    assert all(lt.cost is not None for lt in profiled.layers)  # every op costed
    ops = [lt.op for lt in profiled.layers]
    # 52 convs (17 of them depthwise) and the 10 residual adds, found as layers.
    assert ops.count("conv2d") == 52
    assert sum(lt.info.get("category") == "residual" for lt in profiled.layers) == 10
    assert profiled.whole_profiled_s > 0
    assert sum(lt.cost.flops for lt in profiled.layers) == w.flops


@pytest.mark.parametrize("level", ["disable", "all"])
def test_onnxruntime_layers_on_a_tiny_model(dynamic_onnx, level):
    w = layers.ort_layers(_params("layers.onnxruntime", onnx=str(dynamic_onnx), shape="x=2x3x16x16", opt_level=level,
                                      runs=4, warmup=2), CTX)
    w.fn()
    profiled = w.layers()
    convs = [lt for lt in profiled.layers if lt.cost is not None and lt.cost.breakdown and lt.op in ("Conv", "FusedConv")]
    assert len(profiled.layers) >= 3 and all(len(lt.samples) == 4 for lt in profiled.layers)
    assert len(convs) == 1
    # With the bias; at level all ONNX Runtime fuses the relu into the conv: the cost is the model's.
    extra = 2 * 4 * 16 * 16 if level == "all" else 0
    assert int(convs[0].cost.flops) == 2 * 4 * 16 * 16 * 27 * 2 + 2 * 4 * 16 * 16 + extra
    assert convs[0].info["cost_source"]


def test_parse_ort_profile_drops_warmup_and_splits_runs():
    def run(ts, dur):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}

    def node(name, ts, dur, op="Conv"):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
                "args": {"op_name": op, "provider": "CPUExecutionProvider",
                         "input_type_shape": [{"float": [1, 3, 8, 8]}, {"float": [4, 3, 3, 3]}],
                         "output_type_shape": [{"float": [1, 4, 8, 8]}]}}

    events = [run(0, 100), node("a", 10, 90),  # warm-up run: dropped
              run(200, 100), node("a", 210, 40), node("b", 260, 30, "Relu"),
              run(400, 100), node("a", 410, 60), node("b", 470, 20, "Relu"),
              {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 5}]
    nodes, whole = layers.parse_ort_profile(events, warmup=1)
    assert whole == pytest.approx([100e-6, 100e-6])
    assert nodes["a"]["durations"] == pytest.approx([40e-6, 60e-6])
    assert nodes["b"]["op"] == "Relu"
    found = trace_cost("Conv", nodes["a"]["input_shapes"], nodes["a"]["output_shapes"])
    assert found[0] == "conv" and found[1].macs == 4 * 8 * 8 * 27


def test_a_layers_case_runs_in_a_worker_and_writes_placed_layer_records(tmp_path, dynamic_onnx):
    os.environ.setdefault("HARNESS_ONNX_CACHE", str(tmp_path / "cache"))
    suite = parse_suite(yaml.safe_load(f"""
defaults: {{budget: 0.05, min_samples: 3, warmup_max: 0.1, timeout: 300}}
cases:
  - {{id: tiny, kind: layers.onnxruntime, params: {{onnx: {dynamic_onnx}, shape: x=2x3x16x16, runs: 5, warmup: 1}}}}
  - {{id: after, kind: diagnostic.empty}}
"""), "test.yaml")
    snap = Snapshot(ceilings=[SnapshotCeiling("compute", "avx2", 1e11, "float32", 1),
                              SnapshotCeiling("bandwidth", "DRAM", 1e10, None, 1)])
    store = RunStore.create(tmp_path, "dev", "test")
    try:
        records = run_cases(suite.cases, store, enrich=placer(snap))
    finally:
        store.close()
    case = next(r for r in records if r.kind == "layers.onnxruntime")
    children = [r for r in records if r.kind == "layer.onnxruntime"]
    assert case.measured and case.info["layers"]["count"] == len(children) >= 3
    assert all(r.info["parent_case"] == case.case_id and r.timing.n == 5 for r in children)
    costed = [r for r in children if r.cost is not None]
    assert costed and all(r.roofline is not None and r.roofline.efficiency > 0 for r in costed)
    assert any(r.case_id == "after[t=1]" and r.measured for r in records)  # the run went on after it
    (table,) = layer_tables(records)
    assert table.sum_layers_s > 0 and table.whole_s > 0 and math.isfinite(table.overhead)
    assert table.layers["time_share"].sum() == pytest.approx(1.0)
    text = format_layer_table(table, top=5)
    assert "sum of layers" in text and "bottlenecks:" in text
