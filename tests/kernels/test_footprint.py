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
