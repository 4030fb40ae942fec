"""`harness fleet`: the routing and manifests with a fake transport (no Ray), then the real
thing on a local 3-node Ray cluster (ray.cluster_utils.Cluster, one CPU and one harness_node
each), started and stopped by a module fixture; every wait is bounded."""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.commands.cli import main as harness_main
from harness.core.records import Manifest, final
from harness.core.store import load_manifest, load_records
from harness.session import fleet, fleet_node
from harness.session.fleet_store import FleetRun, NodePart, exit_reason, fleet_runs, load_fleet
from support import ROOT, harness_cli, record
from synthetic_runs import FINGERPRINT, make_record, samples, write_run

TINY = """\
name: tiny
defaults: {budget: 0.05, min_samples: 3, warmup_max: 0.05, timeout: 60}
cases:
  - id: empty
    kind: diagnostic.empty
    threads: [1, all]
"""
# The main test's suite: a second and more a node, records spaced out.
MAIN = TINY + """\
  - id: nap
    kind: diagnostic.sleep
    params: {seconds: 0.01}
    budget: 0.3
"""
# A few seconds a node: long enough to see records arrive while the node is still running.
SLOW = """\
name: slow
defaults: {budget: 0.25, min_samples: 3, warmup_max: 0.05, timeout: 60}
cases:
  - id: nap
    kind: diagnostic.sleep
    matrix: {seconds: [0.010, 0.011, 0.012, 0.013]}
"""


# ---------------------------------------------------------------------- no Ray

def manifest(status="running"):
    return Manifest(run_id="node-dev/20260101-000000-tiny", status=status, fingerprint=FINGERPRINT,
                    suite={"name": "tiny"}, git_revision="abc", started_at=1.0).to_json()


def line(case_id):
    return json.dumps(record("diagnostic.empty", case_id=case_id, samples=(1e-6, 1.1e-6, 1.2e-6)).to_json())


def test_events_land_in_one_run_per_node_and_the_fleet_manifest_links_them(tmp_path):
    parts = [NodePart("aa" * 14, "10.0.0.1", "alpha", "alpha"), NodePart("bb" * 14, "10.0.0.2", "beta", "beta")]
    seen = []
    run = FleetRun(tmp_path, "tiny", parts, {"address": "fake"}, stamp="20260101-000000",
                   progress=lambda part, r: seen.append((part.label, r.case_id)))
    a, b = (p.node_id for p in parts)
    assert load_fleet(run.path)["status"] == "running"
    for node_id in (a, b):
        run.handle(node_id, {"event": "node", "hostname": "h", "started_at": 5.0,
                             "dropped_env": {"OMP_NUM_THREADS": "1"}})
        run.handle(node_id, {"event": "manifest", "data": manifest()})
        run.handle(node_id, {"event": "snapshot", "data": {"kind": "snapshot"}})
        run.handle(node_id, {"event": "record", "line": line("one")})
    assert seen == [("alpha", "one"), ("beta", "one")]
    run.handle(a, {"event": "record", "line": line("two")})
    run.handle(a, {"event": "manifest", "data": manifest("complete")})
    run.handle(a, {"event": "logs", "files": {"../escape.log": "x"}})
    run.handle(a, {"event": "exit", "code": 0, "duration_s": 2.0, "stderr": ""})
    run.end(a)
    run.fail(b, "the node or its Ray worker was lost: NodeDiedError: gone")
    run.end(b)
    assert run.finish() == "partial"

    data = load_fleet(run.path)
    assert data["status"] == "partial" and [n["status"] for n in data["nodes"]] == ["complete", "failed"]
    assert data["nodes"][1]["reason"].startswith("the node or its Ray worker was lost")
    assert data["nodes"][0]["dropped_env"] == {"OMP_NUM_THREADS": "1"}
    runs = fleet_runs(run.path)
    assert [p.name for p in runs] == ["20260101-000000-tiny-alpha", "20260101-000000-tiny-beta"]
    assert runs[0].parent.name == "test-cpu-9000-2cpu"
    assert [r.case_id for r in load_records(runs[0])] == ["one", "two"]
    assert [r.case_id for r in load_records(runs[1])] == ["one"]  # what arrived is kept
    first, second = load_manifest(runs[0]), load_manifest(runs[1])
    assert first.status == "complete" and first.run_id == f"test-cpu-9000-2cpu/{runs[0].name}"
    assert first.fleet["fleet_run"] == run.run_id and first.fleet["node_run_id"] == "node-dev/20260101-000000-tiny"
    assert second.status == "failed" and "NodeDiedError" in second.stop_reason
    assert (runs[0] / "profile.json").exists() and (runs[0] / "logs" / "escape.log").exists()


def test_a_node_that_cannot_start_has_no_run_and_an_interrupt_marks_the_rest(tmp_path):
    parts = [NodePart("cc" * 14, "10.0.0.3", "gamma", "gamma"), NodePart("dd" * 14, "10.0.0.4", "delta", "delta")]
    run = FleetRun(tmp_path, "tiny", parts, {})
    c, d = (p.node_id for p in parts)
    run.handle(c, {"event": "error", "reason": "the project is not installed on gamma"})
    run.end(c)
    run.handle(d, {"event": "manifest", "data": manifest()})
    run.handle(d, {"event": "record", "line": line("one")})
    run.interrupt()
    data = load_fleet(run.path)
    assert data["status"] == "interrupted"
    assert data["nodes"][0] == {**data["nodes"][0], "status": "failed", "run": None,
                                "reason": "the project is not installed on gamma"}
    assert data["nodes"][1]["status"] == "interrupted"
    assert load_manifest(fleet_runs(run.path)[0]).status == "interrupted"


def test_exit_reasons_are_one_line():
    assert exit_reason(2, "running\nerror: suite.yaml: threads: 64 CPUs asked, 2 available\n") == \
        "suite.yaml: threads: 64 CPUs asked, 2 available"
    assert "stopped" in exit_reason(143, "")
    assert exit_reason(1, "Traceback\nValueError: x") == "harness run exited with code 1: ValueError: x"


def test_the_node_side_checks_the_project_and_drops_what_ray_sets(monkeypatch):
    folder, version = fleet_node.project_version()
    assert folder == ROOT / "harness" and version
    assert fleet_node.check_project(version) == (ROOT, None)
    _, reason = fleet_node.check_project(version, package="no_such_package_for_fleet")
    assert "not installed" in reason and "no_such_package_for_fleet" in reason and "\n" not in reason
    _, reason = fleet_node.check_project("0.0.0-other")
    assert "the driver 0.0.0-other" in reason
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    env = fleet_node.clean_env(fleet.DROP_ENV)
    assert "OMP_NUM_THREADS" not in env and env["OPENBLAS_CORETYPE"] == "Haswell"


def test_the_tail_streams_complete_lines_only(tmp_path):
    run = tmp_path / "dev" / "run"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"status": "running"}))
    tail = fleet_node.Tail(tmp_path)
    with open(run / "records.jsonl", "w") as fh:
        fh.write('{"a": 1}\n{"b"')
        fh.flush()
        events = list(tail.events())
        assert [e["event"] for e in events] == ["manifest", "record"] and events[1]["line"] == '{"a": 1}'
        fh.write(': 2}\n')
        fh.flush()
        assert [e.get("line") for e in tail.events()] == ['{"b": 2}']  # the manifest did not change


def test_suite_files_carry_their_includes(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yaml").write_text(TINY.replace("name: tiny", "name: base"))
    (tmp_path / "sub" / "top.yaml").write_text("name: top\ninclude: [../base.yaml]\n")
    files, top = fleet.suite_files(tmp_path / "sub" / "top.yaml")
    assert top == "sub/top.yaml" and set(files) == {"base.yaml", "sub/top.yaml"}


def test_without_ray_fleet_is_one_line_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert harness_main(["fleet", "run", str(ROOT / "suites" / "quick.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'roofline-harness[fleet]'" in err[0]
    assert harness_main(["fleet", "status"]) == 2
    assert harness_main(["fleet"]) == 2


def test_compare_takes_a_fleet_folder_with_ceilings_and_roof_side_by_side(tmp_path, capsys):
    def placed(median, efficiency):
        roof = {"source": "measured", "bound": "compute", "theoretical_time_s": median * efficiency,
                "efficiency": efficiency, "intensity": 80.0, "attained_flops_per_s": 1e11,
                "attained_bytes_per_s": 1e9, "peak_flops_per_s": 2e11, "threads": 1}
        return make_record("gemm[t=1]", "numpy.matmul", {"n": 256, "dtype": "float32"}, 1, samples(median),
                           flops=2 * 256 ** 3, nbytes=3 * 256 * 256 * 4, roofline=roof)

    a = write_run(tmp_path, "20260101-000000-tiny-alpha", [placed(1e-3, 0.5)])
    b = write_run(tmp_path, "20260101-000000-tiny-beta", [placed(2e-3, 0.25)])
    folder = tmp_path / "fleet" / "20260101-000000-tiny"
    folder.mkdir(parents=True)
    (folder / "fleet.json").write_text(json.dumps({"kind": "fleet", "nodes": [
        {"node_id": "a", "run": f"{a.parent.name}/{a.name}"}, {"node_id": "b", "run": f"{b.parent.name}/{b.name}"},
        {"node_id": "c", "run": None, "status": "failed"}]}))
    out = tmp_path / "cmp"
    assert harness_main(["compare", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "% of roof" in printed and "50% compute" in printed and "25% compute" in printed
    assert "fp32 compute ceiling, every CPU" in printed and "test-cpu-9000-2cpu" in printed
    html = (out / "comparison.html").read_text()
    assert "% of roof" in html and "Roofline per run" in html


# ---------------------------------------------------------------------- a local 3-node cluster

@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # Node failures detected within about two seconds (the default waits much longer).
    config = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_timeout_ms": 500,
              "health_check_failure_threshold": 3}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"harness_node": 1},
                                                      "object_store_memory": 80 * 1024 ** 2, "_system_config": config})
    try:
        for _ in range(2):
            c.add_node(num_cpus=1, resources={"harness_node": 1}, object_store_memory=80 * 1024 ** 2)
        c.wait_for_nodes(timeout=60)
        ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_one_run_per_node_streamed_exclusive_and_with_its_own_thread_settings(cluster, tmp_path):
    import ray

    suite = tmp_path / "main.yaml"
    suite.write_text(MAIN)
    events, holds = [], {}

    def on_event(part, event):
        events.append((time.time(), part.node_id, event))
        if event["event"] == "record" and part.node_id not in holds:
            # Another harness job for this node, asked for while the fleet's holds it: it must wait.
            holds[part.node_id] = ray.remote(fleet_node.hold).options(
                num_cpus=0, resources={"harness_node": 1}, scheduling_strategy=pinned(part.node_id)).remote()

    outcome = fleet.run_fleet(str(suite), tmp_path / "results", progress=False, on_event=on_event)
    assert outcome.fleet.status == "complete", load_fleet(outcome.fleet.path)
    parts = list(outcome.fleet.parts.values())
    assert len(parts) == 3 and len({p.node_id for p in parts}) == 3
    runs = fleet_runs(outcome.fleet.path)
    assert len(runs) == 3
    for part, run in zip(parts, runs):
        records = load_records(run)  # a case the other nodes' load made suspect is measured again: both kept
        assert part.status == "complete" and part.records == len(records) >= 3
        assert len(final(records)) == 3
        m = load_manifest(run)
        assert m.status == "complete" and m.fleet["node_id"] == part.node_id and (run / "report.html").exists()
        # Ray set OMP_NUM_THREADS for its task; the harness process never saw it, its workers used their own
        assert part.dropped_env.get("OMP_NUM_THREADS") == "1"
        assert "OMP_NUM_THREADS" not in m.fingerprint["env"]
        for r in records:
            assert r.conditions.library_threads.get("blas_threads", {}).get("openblas", r.threads) == r.threads
        # streamed: the first record reached the driver before the node's harness process finished its run
        first = min(t for t, node_id, e in events if node_id == part.node_id and e["event"] == "record")
        assert first < m.finished_at
        # exclusive: the other job on this node started only once the fleet's task had ended there
        exit_event = next(e for _, node_id, e in events if node_id == part.node_id and e["event"] == "exit")
        assert ray.get(holds[part.node_id], timeout=30) >= exit_event["ended_at"]


def pinned(node_id):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def test_the_command_line_status_run_and_compare(cluster, tmp_path, tiny):
    results = tmp_path / "results"
    status = harness_cli("fleet", "status", "--address", cluster.address, "--results", results, "--json",
                         timeout=120)
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    assert len(rows) == 3 and {r["harness_node"] for r in rows} == {"free"}
    assert all(r["cpu"] and r["device"] for r in rows), rows
    out = harness_cli("fleet", "run", tiny, "--address", cluster.address, "--nodes", "2", "--results", results,
                      "--no-progress", timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fleet complete: 2 node(s)" in out.stdout
    folder = next((results / "fleet").iterdir())
    assert harness_main(["compare", str(folder), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "comparison.html").exists()


def test_a_driver_of_another_version_gets_one_line_per_node(cluster, tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(fleet, "driver_version", lambda: "0.0.0-test")
    outcome = fleet.run_fleet(str(tiny), tmp_path / "results", progress=False, count=2)
    assert outcome.fleet.status == "failed"
    for part in outcome.fleet.parts.values():
        assert part.status == "failed" and "the driver 0.0.0-test" in part.reason and part.run is None


def test_ctrl_c_cancels_every_node_and_keeps_what_arrived(cluster, tmp_path):
    import ray

    suite = tmp_path / "slow.yaml"
    suite.write_text(SLOW)

    def on_event(part, event):
        if event["event"] == "record" and not stopped:
            stopped.append(part.node_id)
            raise KeyboardInterrupt  # as Ctrl-C does: once (the command line ignores a second)

    stopped = []
    with pytest.raises(KeyboardInterrupt):
        fleet.run_fleet(str(suite), tmp_path / "results", progress=False, count=2, on_event=on_event)
    data = load_fleet(next((tmp_path / "results" / "fleet").iterdir()))
    assert data["status"] == "interrupted" and {n["status"] for n in data["nodes"]} == {"interrupted"}
    runs = fleet_runs(next((tmp_path / "results" / "fleet").iterdir()))
    assert sum(len(load_records(r)) for r in runs) >= 1
    assert all(load_manifest(r).status == "interrupted" for r in runs)
    deadline = time.time() + 30  # the nodes' harness slots come back
    while ray.available_resources().get("harness_node", 0) < 3 and time.time() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("harness_node", 0) == 3


def test_a_node_lost_mid_run_keeps_its_records_and_the_rest_go_on(cluster, tmp_path):
    """Last in the module: it takes a node away."""
    suite = tmp_path / "slow.yaml"
    suite.write_text(SLOW)
    workers = {n.node_id: n for n in cluster.worker_nodes}
    victim = []

    def on_event(part, event):
        if event["event"] == "record" and not victim and part.node_id in workers:
            victim.append(part.node_id)
            threading.Thread(target=cluster.remove_node, args=(workers[part.node_id], False), daemon=True).start()

    outcome = fleet.run_fleet(str(suite), tmp_path / "results", progress=False, count=2, on_event=on_event)
    assert victim
    lost = outcome.fleet.parts[victim[0]]
    assert lost.status == "failed" and lost.reason and lost.records >= 1, lost
    run = Path(tmp_path / "results" / lost.run)
    assert len(load_records(run)) == lost.records
    m = load_manifest(run)
    assert m.status == "failed" and m.stop_reason == lost.reason
    other, = [p for p in outcome.fleet.parts.values() if p.node_id != victim[0]]
    assert other.status == "complete" and len(final(load_records(tmp_path / "results" / other.run))) == 4
    assert load_fleet(outcome.fleet.path)["status"] == "partial"


def test_without_an_address_it_starts_and_stops_a_local_instance(tmp_path, tiny):
    pytest.importorskip("ray")
    out = harness_cli("fleet", "run", tiny, "--results", tmp_path / "results", "--no-progress", timeout=180,
                      cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fleet complete: 1 node(s)" in out.stdout
    data = load_fleet(next((tmp_path / "results" / "fleet").iterdir()))
    assert data["address"].startswith("local")
