"""The memory footprint runs as a case in a fresh worker, supervised like every measurement."""
import yaml

from harness.core.runner import run_cases
from harness.core.store import RunStore
from harness.core.suite import parse_suite
from kernels import zoo


def _run(tmp_path, text):
    suite = parse_suite(yaml.safe_load(text), "test.yaml")
    store = RunStore.create(tmp_path, "dev", "test")
    try:
        return {r.case_id: r for r in run_cases(suite.cases, store)}
    finally:
        store.close()


def test_footprint_in_a_fresh_worker(tmp_path):
    by_id = _run(tmp_path, """
defaults: {budget: 0.0, min_samples: 1, warmup_max: 0.0, timeout: 300}
cases:
  - {id: before, kind: diagnostic.empty}
  - {id: fp, kind: model.footprint, params: {model: shufflenet_v2_x1_0, image: 64}}
""")
    r = by_id["fp[t=1]"]
    assert r.measured, r.error
    assert r.worker_pid != by_id["before[t=1]"].worker_pid  # a worker of its own
    f = r.info["footprint"]
    model = zoo.build("shufflenet_v2_x1_0")
    assert f["weights_bytes"] == sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    assert f["footprint_bytes"] >= f["weights_bytes"] * 0.9
    assert f["rss_runtime_bytes"] > 0 and f["steady_run_peak_bytes"] >= f["loaded_bytes"] * 0.9


def test_a_footprint_that_cannot_fit_is_refused_before_it_allocates(tmp_path):
    import pytest

    from harness.core.errors import UsageError

    with pytest.raises(UsageError, match=r"params: the case needs about .* GB .*memory_limit_gb"):
        _run(tmp_path, """
cases:
  - {id: fp, kind: model.footprint, params: {model: vgg16}, memory_limit_gb: 1.0}
""")


def test_onnx_footprint_weights_are_the_tensors_not_the_file(tmp_path):
    # Weights in an external file: the .onnx holds only the graph, the footprint's weights are
    # the tensors' bytes (from their dims), and int64 ids are fed within the table's rows.
    import numpy as np
    import onnx
    from onnx import TensorProto as T, helper, numpy_helper

    table = numpy_helper.from_array(np.ones((50000, 16), np.float32), "table")
    vi = helper.make_tensor_value_info
    model = helper.make_model(helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"])], "t",
                                                [vi("ids", T.INT64, [1, 16])], [vi("y", T.FLOAT, [1, 16, 16])],
                                                [table]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "emb.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="emb.bin", size_threshold=0)
    by_id = _run(tmp_path, f"""
defaults: {{budget: 0.0, min_samples: 1, warmup_max: 0.0, timeout: 300}}
cases:
  - {{id: fp, kind: model.footprint, params: {{onnx: "{path}"}}}}
""")
    r = by_id["fp[t=1]"]
    assert r.measured, r.error
    f = r.info["footprint"]
    assert f["weights_bytes"] == (tmp_path / "emb.bin").stat().st_size == 50000 * 16 * 4
    assert path.stat().st_size < 1000 and f["runtime"].startswith("onnxruntime")
