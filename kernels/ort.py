"""ONNX Runtime sessions as every case builds them: the one place session options are set.

A case runs ONNX Runtime with intra-op threads = the case's threads, one inter-op thread
and sequential execution (so the case's thread count is what runs), at a named graph
optimization level, and creates the session with its pool spawned on the case's CPUs
(conditions.spawning_threads_on: after any torch work, libgomp has bound the creating
thread to one CPU and the pool would inherit it). onnxruntime is imported inside
functions (deferred on purpose: validating a suite must not start it).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from harness.core.conditions import spawning_threads_on
from harness.core.workload import Skip

OPT_LEVELS = ("disable", "basic", "extended", "all")


def session_options(threads: int, opt_level: str = "all", *, profile_prefix: str | None = None,
                    optimized_model_path: str | None = None, quiet: bool = False):
    """SessionOptions for a case at `threads` intra-op threads and graph level `opt_level`."""
    import onnxruntime as ort

    member = "ORT_DISABLE_ALL" if opt_level == "disable" else f"ORT_ENABLE_{opt_level.upper()}"
    if not hasattr(ort.GraphOptimizationLevel, member):
        raise Skip(f"opt_level {opt_level}: onnxruntime {ort.__version__} has no {member}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, member)
    if quiet:
        so.log_severity_level = 3  # expected warnings (NCHWc serialisation) hidden; errors still show
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_model_path is not None:
        so.optimized_model_filepath = optimized_model_path
    return so


@dataclass
class Session:
    """An InferenceSession and the graph ONNX Runtime optimized it into (the kernels it runs)."""

    session: object
    optimized_nodes: list[str] = field(default_factory=list)  # "domain:OpType" per node
    optimized_model: object | None = None  # the onnx ModelProto of the optimized graph


def create_session(model, threads: int, cpus: list[int], opt_level: str = "all", *,
                   providers: list[str] | None = None, profile_prefix: str | None = None,
                   keep_optimized: bool = False, quiet: bool = True) -> Session:
    """A session for `model` (a path or serialised bytes), its optimized graph read back.

    ONNX Runtime writes the optimized graph to a file it is given; it is read once, so
    callers know which kernels run (FusedConv, NCHWc convs between reorders, Gemm...)."""
    import onnx
    import onnxruntime as ort

    handle = tempfile.NamedTemporaryFile(suffix=".onnx", prefix="harness-ort-", delete=False)
    handle.close()
    try:
        so = session_options(threads, opt_level, profile_prefix=profile_prefix,
                             optimized_model_path=handle.name, quiet=quiet)
        with spawning_threads_on(cpus):
            session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), so,
                                           providers=providers or ["CPUExecutionProvider"])
        try:
            optimized = onnx.load(handle.name, load_external_data=False)
        except Exception:  # an optimized graph ORT could not serialise (some NCHWc graphs): say so
            optimized = None
        nodes = [f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in optimized.graph.node] if optimized else []
    finally:
        for leftover in (handle.name, handle.name + ".data"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return Session(session, nodes, optimized if keep_optimized else None)
