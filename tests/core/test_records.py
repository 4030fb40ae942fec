"""Typed records: one JSON form, and every run stored by the first schema still reads.

tests/data/v1-runs holds runs written by the harness before typed records (schema 1): a
quick run with roofline placements, a run pooled over two processes, and a model run with
per-layer records (trimmed to a few layers)."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from support import record
from harness.core.errors import UsageError
from harness.core.records import SCHEMA_VERSION, Manifest, Record, final, pooled
from harness.core.store import load_manifest, load_records, load_run
from harness.presentation.export import export_run
from harness.presentation.report import write_report

V1 = Path(__file__).resolve().parent.parent / "data" / "v1-runs" / "intel-r-xeon-r-processor-2cpu"
V1_RUNS = sorted(p for p in V1.iterdir() if p.is_dir())


def test_a_record_round_trips_through_json_exactly():
    r = record("conv", {"dtype": "float32"}, 2, flops=1e9, nbytes=1e6, samples=(1e-3, 1.1e-3, 0.9e-3),
               suspect=["noisy: coefficient of variation 30%"])
    data = r.to_json()
    assert set(data) == {f.name for f in dataclasses.fields(Record)}  # the schema: exactly the fields
    assert data["schema_version"] == SCHEMA_VERSION and data["status"] == "suspect"
    back = Record.from_json(json.loads(json.dumps(data)))
    assert back == r


def test_readers_refuse_what_they_cannot_read():
    base = record("conv", {}, 1, flops=1.0, nbytes=1.0).to_json()
    with pytest.raises(UsageError, match="newer harness"):
        Record.from_json({**base, "schema_version": SCHEMA_VERSION + 1}, "x")
    with pytest.raises(UsageError, match="is not a version number"):
        Record.from_json({**base, "schema_version": "2"}, "x")
    with pytest.raises(UsageError, match="not a record"):
        Record.from_json([1, 2], "x")
    with pytest.raises(UsageError, match="unknown status"):
        Record.from_json({**base, "status": "great"}, "x")
    with pytest.raises(UsageError, match="not a manifest"):
        Manifest.from_json("x")


def test_final_keeps_the_last_attempt_of_each_case():
    first = record("conv", {}, 1, case_id="c", suspect=["loaded"])
    again = dataclasses.replace(record("conv", {}, 1, case_id="c"), attempt=2)
    other = record("conv", {}, 1, case_id="d")
    assert final([first, other, again]) == [again, other]  # the last attempt, where the case first ran


def test_pooled_records_keep_each_process():
    a = record("conv", {}, 1, flops=1e6, nbytes=1e3, samples=(1.0, 1.0, 1.0), case_id="c")
    b = record("conv", {}, 1, flops=1e6, nbytes=1e3, samples=(2.0, 2.0, 2.0), case_id="c")
    a.worker_pid, b.worker_pid = 11, 12
    p = pooled([a, b])
    assert p.timing.processes == 2 and p.timing.n == 6 and p.timing.median == 1.5
    assert [x["worker_pid"] for x in p.timing.per_process] == [11, 12]
    assert p.metrics["flops_per_s"] == 1e6 / 1.5


@pytest.mark.parametrize("run", V1_RUNS, ids=lambda p: p.name)
def test_every_v1_run_loads_renders_and_exports(run, tmp_path):
    copy = tmp_path / run.parent.name / run.name
    shutil.copytree(run, copy)
    records = load_records(copy)
    assert records and all(r.schema_version == SCHEMA_VERSION for r in records)
    assert load_manifest(copy).run_id.endswith(run.name)
    assert len(load_run(copy)) == len(records)
    html, md = write_report(copy)
    assert html.exists() and "Where the time goes" in md.read_text()
    assert export_run(copy, "csv").exists() and export_run(copy, "pytest-benchmark").exists()


def test_v1_fields_are_migrated():
    quick = load_records(V1 / "20261201-205536-quick")
    gemm = next(r for r in quick if r.case_id == "gemm[t=1]")
    assert gemm.roofline.source == "datasheet" and gemm.roofline.efficiency > 0  # v1 said "theoretical"
    assert gemm.roofline.datasheet_efficiency == gemm.roofline.efficiency
    pooled_run = load_records(V1 / "20261201-210138-quick")
    two = [r for r in pooled_run if r.measured]
    assert all(r.timing.processes == 2 and len(r.timing.per_process) == 2 for r in two)
    assert all(isinstance(r.timing.first_call_s, float) for r in two)
    model = load_records(V1 / "20261201-210122-model-resnet18")
    layer = next(r for r in model if r.kind == "layer.torch")
    assert layer.timing.samples == [layer.timing.median]  # v1 kept only the median of a layer
    assert layer.cost.breakdown and "flops_main" in layer.cost.breakdown
