"""ONNX files of every kind, costed and run: the table of the ONNX issue's closing note.

Files: zoo models through both torch exporters (torch.export-based, the default, and the
TorchScript one, dynamo=False), the model-zoo files the onnx package ships (their weights
are ConstantOfShape nodes), and files built here (weights as Constant nodes, weights in an
external-data file, int64 token ids into an embedding with a bool mask).

Per file: FLOPs and parameters from the harness's cost model (harness.cost.onnx_graph);
an independent parameter count (torch's numel for the zoo, minus the BatchNorm the
exporter folds; otherwise a plain walk over the proto written here, not the harness's);
the op types without a formula or whose shape was not inferred; then `harness model FILE
--layers` at 1 and all threads: the whole model's median latency and the sum of its
kernels' medians from ONNX Runtime's profiler over the whole model's (profiler on).

Usage: .venv/bin/python bench/onnx_table.py [--only TEXT] [--budget S] [--results DIR]
Takes about 10 minutes (a `harness model` run per file).
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.analysis.layers import layer_tables  # noqa: E402
from harness.core.records import final  # noqa: E402
from harness.core.store import find_runs, load_records  # noqa: E402
from harness.cost.onnx_graph import onnx_model_cost  # noqa: E402
from harness.core.text import fmt_si, fmt_time, format_table  # noqa: E402

LIGHT = ("densenet121", "inception_v1", "squeezenet", "shufflenet", "vgg19", "resnet50")


def proto_params(path: Path) -> int:
    """Weight elements counted straight from the proto: float/int8 initializers, Constant
    tensors, and ConstantOfShape outputs whose shape is a constant (initializer or Constant)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    const = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    const[n.output[0]] = a.t
    weight_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                    onnx.TensorProto.BFLOAT16, onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    total = sum(math.prod(t.dims) for t in const.values() if t.data_type in weight_types and math.prod(t.dims) > 1)
    for n in model.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in const:
            value = next((a.t for a in n.attribute if a.name == "value"), None)
            if value is None or value.data_type in weight_types:
                total += int(np.prod(numpy_helper.to_array(const[n.input[0]])))
    return total


def zoo_file(name: str, dynamo: bool, folder: Path) -> tuple[Path, int]:
    """The zoo model exported with one exporter, and torch's parameter count less the
    BatchNorm parameters and buffers the exporter folds into conv weights and biases."""
    import torch

    from kernels import zoo

    model = zoo.build(name)
    path = folder / f"{name}-{'export' if dynamo else 'torchscript'}.onnx"
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["output"], dynamo=dynamo,
                      **({"external_data": False} if dynamo else {}))
    params = sum(p.numel() for p in model.parameters())
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # folded: gamma and beta vanish, each conv before a BN gains a bias of C (if it had none)
    folded = sum(2 * m.num_features for m in bn) - sum(m.num_features for m in bn)
    return path, params - folded


def built_files(folder: Path) -> list[tuple[str, Path, int, str]]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    out = []
    # Weights as Constant nodes: a 2-layer MLP.
    w1, w2 = rng.standard_normal((256, 512)).astype(np.float32), rng.standard_normal((512, 10)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["w1"], value=numpy_helper.from_array(w1)),
             helper.make_node("Constant", [], ["w2"], value=numpy_helper.from_array(w2)),
             helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    g = helper.make_graph(nodes, "mlp_constants", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 10])])
    p = folder / "mlp_constants.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(p))
    out.append(("built: weights as Constant nodes", p, w1.size + w2.size, "as built"))
    # Weights in an external-data file: two convs.
    c1 = rng.standard_normal((64, 3, 3, 3)).astype(np.float32)
    c2 = rng.standard_normal((128, 64, 3, 3)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "c1"], ["a"], pads=[1, 1, 1, 1]),
                           helper.make_node("Relu", ["a"], ["b"]),
                           helper.make_node("Conv", ["b", "c2"], ["y"], pads=[1, 1, 1, 1])], "convs_external",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 112, 112])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128, 112, 112])],
                          [numpy_helper.from_array(c1, "c1"), numpy_helper.from_array(c2, "c2")])
    p = folder / "convs_external.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(p), save_as_external_data=True,
              all_tensors_to_one_file=True, location="convs_external.data", size_threshold=0)
    out.append(("built: weights in external data", p, c1.size + c2.size, "as built"))
    # int64 token ids into an embedding, a bool mask, attention-like matmuls.
    vocab, d, seq = 50000, 64, 16
    emb = rng.standard_normal((vocab, d)).astype(np.float32)
    wq = rng.standard_normal((d, d)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"]),
             helper.make_node("MatMul", ["e", "wq"], ["q"]),
             helper.make_node("Transpose", ["e"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Where", ["mask", "s", "neg"], ["sm"]),
             helper.make_node("Softmax", ["sm"], ["a"], axis=-1),
             helper.make_node("MatMul", ["a", "e"], ["y"])]
    g = helper.make_graph(nodes, "ids_and_mask",
                          [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, seq]),
                           helper.make_tensor_value_info("mask", TensorProto.BOOL, [1, seq, seq])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, d])],
                          [numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(wq, "wq"),
                           numpy_helper.from_array(np.array(-1e4, np.float32), "neg")])
    p = folder / "ids_and_mask.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(p))
    out.append(("built: int64 ids + bool mask", p, emb.size + wq.size, "as built"))
    return out


def measure(path: Path, results: Path, budget: float) -> dict:
    cmd = [sys.executable, "-m", "harness", "model", str(path), "--layers", "--threads", "1", "all",
           "--no-footprint", "--budget", str(budget), "--results", str(results), "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    if proc.returncode not in (0, 1):
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:100]}
    run = find_runs(results)[-1]
    records = final(load_records(run))
    out = {}
    for r in records:
        if r.kind == "model.onnxruntime":
            out[f"t{r.threads}"] = r.timing.median if r.measured else None
            if not r.measured:
                out["error"] = f"{r.status}: {(r.reason or '')[:80]}"
    for table in layer_tables(records):
        out[f"sum{table.case.threads}"] = table.sum_layers_s / table.whole_profiled_s
    for r in records:
        if r.kind == "layers.onnxruntime" and not r.measured:
            out["error"] = f"layers {r.status}: {(r.reason or '')[:80]}"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="only files whose label contains TEXT")
    ap.add_argument("--budget", type=float, default=0.3, help="seconds of sampling per timing case (default 0.3)")
    ap.add_argument("--results", default=None, help="where the runs go (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="onnx-table-") as tmp:
        folder = Path(tmp)
        results = Path(args.results) if args.results else folder / "results"
        files: list[tuple[str, Path, int, str]] = []
        for name in ("resnet18", "mobilenet_v2", "vit_tiny"):
            for dynamo in (True, False):
                if args.only and args.only not in name:
                    continue
                print(f"exporting {name} ({'torch.export' if dynamo else 'TorchScript'})", file=sys.stderr)
                try:
                    p, n = zoo_file(name, dynamo, folder)
                except Exception as exc:  # an exporter that cannot take the model: a row that says so
                    print(f"  export failed: {type(exc).__name__}: {str(exc)[:100]}", file=sys.stderr)
                    continue
                files.append((f"zoo {name} ({'torch.export' if dynamo else 'TorchScript'})", p, n,
                              "torch numel, BN folded"))
        pkg = Path(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/onnx/backend/test/data/light"))[0])
        for name in LIGHT:
            files.append((f"onnx package light_{name}", pkg / f"light_{name}.onnx", -1, "proto walk"))
        files += built_files(folder)
        files = [f for f in files if not args.only or args.only in f[0]]
        rows = []
        for i, (label, path, independent, how) in enumerate(files, 1):
            print(f"[{i}/{len(files)}] {label}", file=sys.stderr, flush=True)
            cost = onnx_model_cost(path)
            if independent < 0:
                independent = proto_params(path)
            unknown = ", ".join(f"{u['op']} x{u['count']}" for u in cost.unknown) or "-"
            m = measure(path, results, args.budget)
            t1, tall = m.get("t1"), m.get(f"t{os.cpu_count()}") if os.cpu_count() != 1 else None
            rows.append([label, fmt_si(cost.flops, "FLOP"), f"{cost.params:,}", f"{independent:,} ({how})",
                         "yes" if cost.params == independent else f"{cost.params / independent - 1:+.2%}",
                         unknown[:40], fmt_time(t1) if t1 else "-", fmt_time(tall) if tall else "-",
                         f"{m['sum1']:.0%}" if "sum1" in m else "-",
                         f"{m[f'sum{os.cpu_count()}']:.0%}" if f"sum{os.cpu_count()}" in m else "-",
                         m.get("error", "")])
    cols = ["file", "FLOPs", "params", "independent count", "equal", "unknown ops", "latency 1t",
            f"latency {os.cpu_count()}t", "layers/whole 1t", f"layers/whole {os.cpu_count()}t", "problem"]
    print(format_table(cols, rows, align_right={1, 2, 6, 7, 8, 9}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
