"""The cost of the kernels ONNX Runtime runs, from its profiler's trace and the graph.

ONNX Runtime's optimisations rename and fuse nodes (level extended or all: FusedConv, NCHWc
nodes, MatMul+Add -> Gemm). A profiled node that keeps its graph name is costed from the
graph node; a renamed one from the op type and the shapes its trace records, or, for an
NCHWc node (named after the tensor it writes, its shapes padded to the vector width), from
the graph: the conv it grew from plus the activation and residual add fused into it.
"""
from __future__ import annotations

import math

from harness.cost import ops as cm
from harness.cost.model import LayerCost, with_changes
from harness.cost.onnx_graph import node_attrs, onnx_node_cost

TRACE_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "int8": "int8", "uint8": "uint8",
                "int32": "int32", "int64": "int64", "bool": "bool"}


def shape_list(entries) -> list[tuple[tuple, str]]:
    out = []
    for entry in entries or []:
        for type_name, dims in entry.items():
            out.append((tuple(dims), TRACE_DTYPES.get(type_name, type_name)))
    return out


def trace_cost(op: str, input_shapes, output_shapes, attrs: dict | None = None):
    """(category, OpCost) for a profiled ONNX Runtime node from the op type and the shapes its
    trace records (`input_type_shape` / `output_type_shape`), or None.

    Contractions need no attributes: conv MACs are N x OC x OH x OW x (IC/G) x KH x KW with
    IC/G from the weight's shape, a Gemm/MatMul's from A and Y (ONNX Runtime prepacks
    constant weights, so the trace may omit them). A fused activation is not in the trace
    and is not counted."""
    ins, outs = shape_list(input_shapes), shape_list(output_shapes)
    if not ins or not outs:
        return None
    (x, dtype), (y, _) = ins[0], outs[0]
    if dtype not in cm.DTYPE_BYTES:
        return None
    if op in ("Conv", "FusedConv", "NchwcConv") and len(ins) >= 2 and len(ins[1][0]) == 4 and len(x) == 4:
        w = ins[1][0]
        bias = len(ins) > 2 and len(ins[2][0]) == 1
        macs = y[0] * y[1] * y[2] * y[3] * w[1] * w[2] * w[3]
        cost = cm.contraction_cost("conv2d", y, dtype, macs=macs, input_elems=math.prod(x),
                               weight_elems=math.prod(w), channels=w[0], bias=bias, batchnorm=False,
                               bn_folded=False, activation=None, residual=False)
        return "conv", cost
    if op in ("Gemm", "MatMul", "FusedMatMul", "FusedGemm"):
        k, n = x[-1], y[-1]
        others = [s for s, _ in ins[1:]]
        full = [s for s in others if len(s) >= 2]
        if full and op != "Gemm":
            b = full[0]
            if b[-2] != k:
                b = (*b[:-2], b[-1], b[-2])
            a = x
            if a[-1] != b[-2]:
                a = (*a[:-2], a[-1], a[-2])
            return "matmul", cm.matmul_cost(a, b, dtype=dtype)
        if op == "Gemm" and full:
            b = full[0]
            k = x[0] if (attrs or {}).get("transA") else x[1]
        rows = math.prod(y[:-1])
        bias = any(len(s) == 1 and s[0] == n for s in others)
        return "linear", cm.linear_cost((rows, k), n, bias=bias, dtype=dtype)
    names_in = [f"in{i}" for i in range(len(ins))]
    names_out = [f"out{i}" for i in range(len(outs))]
    shapes = {**{nm: s for nm, (s, _) in zip(names_in, ins)}, **{nm: s for nm, (s, _) in zip(names_out, outs)}}
    dtypes = {**{nm: d for nm, (_, d) in zip(names_in, ins)}, **{nm: d for nm, (_, d) in zip(names_out, outs)}}
    if op in ("ReorderInput", "ReorderOutput"):
        op = "Identity"  # NCHW <-> NCHWc layout change: read once, write once
    try:
        return onnx_node_cost(op, names_in, names_out, attrs or {}, shapes, dtypes, set())
    except cm.CostError:
        return None


FUSABLE_ACTIVATIONS = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "Tanh", "HardSwish"}


def base_name(name: str) -> str:
    """The graph name a renamed node grew from: 'relu_3_nchwc' -> 'relu_3',
    'node_MatMul_11/MatMulAddFusion' -> 'node_MatMul_11'."""
    name = name.removesuffix("_nchwc").rstrip("/")
    head, _, last = name.rpartition("/")
    return head if head and last.endswith("Fusion") else name


def fused_conv_cost(tensor: str, by_output: dict, graph_layers: list):
    """(category, OpCost) of the conv that ONNX Runtime fused with the activations and the
    residual add which end in `tensor`, from their graph costs; None if `tensor` is not
    written by such a chain. Bytes: the conv's, plus the residual input read once."""
    by_node = {layer.name: layer for layer in graph_layers}
    node, act_flops, residual_bytes, residual_flops = by_output.get(tensor), 0, 0, 0
    for _ in range(8):  # conv -> add -> relu chains are 2-3 long
        if node is None or node.op_type == "Conv":
            break
        layer = by_node.get(node.name)
        if layer is None:
            return None
        if node.op_type in FUSABLE_ACTIVATIONS:
            act_flops += layer.cost.flops
            node = by_output.get(node.input[0])
        elif node.op_type in ("Add", "Sum") and len(node.input) == 2:
            producers = [by_output.get(i) for i in node.input]
            main = next((i for i, p in zip(node.input, producers)
                         if p is not None and (p.op_type == "Conv" or p.op_type in FUSABLE_ACTIVATIONS)), None)
            if main is None:
                return None
            residual_flops += layer.cost.flops
            residual_bytes += layer.cost.bytes_read // 2
            node = by_output.get(main)
        else:
            return None
    if node is None or node.op_type != "Conv" or node.name not in by_node:
        return None
    conv = by_node[node.name].cost
    return "conv", with_changes(conv, flops_act=conv.flops_act + act_flops,
                         flops_residual=conv.flops_residual + residual_flops,
                         bytes_read=conv.bytes_read + residual_bytes)




def cost_profiled_nodes(nodes: dict, graph, graph_cost) -> tuple[dict, dict]:
    """({node name: LayerCost}, {node name: how it was costed}) for the profiled `nodes`
    ({name: {op, input_shapes, output_shapes}}) of `graph` (the ONNX model as given), whose
    graph-level cost is `graph_cost` (onnx_model_cost). Nodes that cannot be costed are left
    out, with the cost model's reason in node["cost_error"] where it gave one."""
    costs = {layer.name: layer for layer in graph_cost.layers}
    by_name = {n.name: n for n in graph.graph.node}
    by_output = {o: n for n in graph.graph.node for o in n.output}
    found_costs, sources = {}, {}
    for node_name, node in nodes.items():
        if node_name in costs:
            found_costs[node_name], sources[node_name] = costs[node_name], "graph node"
            continue
        base = base_name(node_name)
        original = by_name.get(base) or by_output.get(base)
        found = None
        source = "trace shapes"
        if node_name.endswith("_nchwc"):
            found = fused_conv_cost(base, by_output, graph_cost.layers) if node["op"] == "Conv" else None
            if found is None and original is not None and original.op_type == node["op"]:
                layer = costs.get(original.name)
                found = (layer.category, layer.cost) if layer is not None else None
            source = "graph (fused group)"
        if found is None:
            attrs = node_attrs(original) if original is not None and original.op_type == node["op"] else {}
            try:
                found = trace_cost(node["op"], node["input_shapes"], node["output_shapes"], attrs)
            except cm.CostError as exc:  # shapes the cost model rejects: listed as uncosted, with why
                node.setdefault("cost_error", str(exc))
            source = "trace shapes"
        if found is not None:
            category, c = found
            found_costs[node_name] = LayerCost(node_name, c.op, category, c, module=node["op"])
            sources[node_name] = source
    return found_costs, sources
