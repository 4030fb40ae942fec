"""The cost of the kernels ONNX Runtime runs: each profiled node costed from the node of the
optimized graph it is (ONNX Runtime saves that graph: SessionOptions.optimized_model_filepath),
its attributes, and the shapes the profiler's trace records for it (onnx's shape inference
does not know com.microsoft ops).

- A node that is still the original graph's node (same name, op, inputs and outputs) keeps
  the graph's cost.
- An NCHWc node computes an original node on channels padded to the vector width, so its
  trace shapes overstate the work: it is costed as that original node (harness.cost.ort_graph
  finds it: a Conv, or a BatchNormalization ONNX Runtime rewrote as a 1x1 conv, which keeps
  its label) plus what is fused into it: the activation attribute, the residual input, a bias.
  ReorderInput/ReorderOutput are data movement (read once, written once, padded as run).
- FusedConv, Gemm and FusedGemm (with or without initializers), the int8 contractions and
  the contrib ops (LayerNormalization variants, Attention, MultiHeadAttention, the Gelu
  family, BiasAdd, BiasSoftmax, EmbedLayerNormalization) have their formulas here;
  FusedMatMul (transA, transB, transBatchA, transBatchB, alpha), the fused activations and
  the quantized element-wise and pooling ops (QLinearAdd, QLinearSigmoid, ...) theirs in
  ort_contrib, which the graph side shares; other standard ops go to
  onnx_graph.onnx_node_cost with the trace's shapes.

Epilogue work a contraction kernel does on each output element (bias, FusedMatMul's alpha,
int8 requantisation) is booked in flops_bias; the multiply-adds x 2 stay in flops_main.
A node that cannot be costed says why: "no formula" for its op, or "shape not inferred".
onnx is imported inside functions (deferred on purpose: only model commands need it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

from harness.cost import ops as cm
from harness.cost.model import UNKNOWN_GROUPS, LayerCost, moved_to, with_changes
from harness.cost.onnx_graph import node_attrs, onnx_node_cost
from harness.cost.ort_contrib import QLINEAR_OPS, fused_activation, fused_matmul_cost, qlinear_cost
from harness.cost.ort_graph import NCHWC, REORDERS, GraphMatch

TRACE_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "bfloat16": "bfloat16",
                "int8": "int8", "uint8": "uint8", "int32": "int32", "int64": "int64", "bool": "bool"}
QUANTIZE_FLOPS = 2          # x / scale + zero point (rounding and saturation are not arithmetic)
DEQUANTIZE_FLOPS = 2        # (x - zero point) * scale
MIN_MAX_FLOPS = 2           # DynamicQuantizeLinear finds the range first: a compare for min, one for max
REQUANTIZE_FLOPS = 2        # int32 accumulator * combined scale + output zero point
QUICK_GELU_FLOPS = 6        # x * sigmoid(alpha x): mul, sigmoid (4), mul
RMS_FLOPS_PER_ELEMENT = 4   # square, sum, * 1/rms, * gamma
RMS_FLOPS_PER_ROW = 4       # / D, + eps, sqrt, reciprocal
NO_FORMULA, NO_SHAPE = UNKNOWN_GROUPS


def shape_list(entries) -> list[tuple[tuple, str]]:
    out = []
    for entry in entries or []:
        for type_name, dims in entry.items():
            out.append((tuple(dims), TRACE_DTYPES.get(type_name, type_name)))
    return out


def conv_kernel_cost(x, w, y, dtype, *, bias=False, residual=False, activation=None) -> cm.OpCost:
    """A conv of any rank from its shapes: every output element takes IC/G x kernel
    multiply-adds, which is the weight's dims after the first (N x OC x spatial x w[1:])."""
    macs = math.prod(y) * math.prod(w[1:])
    return cm.contraction_cost(f"conv{len(y) - 2}d", y, dtype, macs=macs, input_elems=math.prod(x),
                               weight_elems=math.prod(w), channels=w[0], bias=bias, batchnorm=False,
                               bn_folded=False, activation=activation, residual=residual)


def epilogue(cost: cm.OpCost, *, flops: int = 0, act: str | None = None, extra_read: int = 0,
             params: int = 0) -> cm.OpCost:
    """`cost` with per-output work added: `flops` in flops_bias, an activation in flops_act."""
    size = cm.dtype_bytes(cost.dtype)
    act_flops = cm.UNARY_FLOPS[act] * math.prod(cost.output_shape) if act else 0
    return with_changes(cost, flops_bias=cost.flops_bias + flops, flops_act=cost.flops_act + act_flops,
                        bytes_read=cost.bytes_read + extra_read * size, params=cost.params + params)


def written_as(cost: cm.OpCost, dtype: str) -> cm.OpCost:
    """`cost` with its output written in `dtype` (an int8 kernel's int32 or float output)."""
    return with_changes(cost, bytes_written=math.prod(cost.output_shape) * cm.dtype_bytes(dtype))


@dataclass
class Operands:
    """A kernel's inputs and outputs: shapes and dtypes from the trace, initializers' from the
    optimized graph (the trace leaves out weights ONNX Runtime prepacked)."""

    names: list
    shapes: list
    dtypes: list
    outputs: list
    out_dtypes: list
    consts: set = field(default_factory=set)

    def shape(self, i):
        return self.shapes[i] if i < len(self.shapes) else None

    def given(self, i) -> bool:
        return i < len(self.names) and bool(self.names[i])

    def const(self, i) -> bool:
        return self.given(i) and self.names[i] in self.consts


def operands(node, input_shapes, output_shapes, inits: dict) -> Operands:
    trace = shape_list(input_shapes)
    shapes, dtypes, k = [], [], 0
    for name in node.input:
        if not name:
            shapes.append(None)
            dtypes.append(None)
            continue
        init = inits.get(name)
        if k < len(trace) and (init is None or trace[k][0] == tuple(init.dims)):
            shapes.append(trace[k][0])
            dtypes.append(trace[k][1])
            k += 1
        elif init is not None:
            from onnx import helper

            shapes.append(tuple(init.dims))
            dtypes.append(str(helper.tensor_dtype_to_np_dtype(init.data_type)))
        else:
            shapes.append(None)
            dtypes.append(None)
    outs = shape_list(output_shapes)
    return Operands(list(node.input), shapes, dtypes, [s for s, _ in outs], [d for _, d in outs], set(inits))


CONTRIB_OPS = {"Conv", "FusedConv", "FusedMatMul", "Gemm", "FusedGemm", "MatMul", "MatMulInteger", "QLinearMatMul",
               "MatMulIntegerToFloat", "QLinearConv", "ConvInteger", "QuantizeLinear", "DequantizeLinear",
               "DynamicQuantizeLinear", "LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
               "SkipSimplifiedLayerNormalization", "Attention", "MultiHeadAttention", "BiasGelu", "FastGelu", "Gelu",
               "QuickGelu", "BiasAdd", "BiasSoftmax", "EmbedLayerNormalization", *QLINEAR_OPS}


def contrib_cost(op: str, attrs: dict, o: Operands):
    """(category, OpCost) of an ONNX Runtime kernel from its operands, or None (not one of
    CONTRIB_OPS). LookupError where a shape it needs is missing."""
    if op not in CONTRIB_OPS:
        return None
    x, y = o.shape(0), o.outputs[0] if o.outputs else None
    if x is None or y is None:
        raise LookupError(NO_SHAPE)
    dtype = o.dtypes[0]
    elems, size = math.prod(y), cm.dtype_bytes(dtype) if dtype in cm.DTYPE_BYTES else 4
    if op in ("Conv", "FusedConv"):
        w = o.shape(1)
        return "conv", conv_kernel_cost(x, w, y, dtype, bias=o.given(2), residual=o.given(3),
                                        activation=fused_activation(attrs))
    if op == "FusedMatMul":
        if o.shape(1) is None:
            raise LookupError(NO_SHAPE)
        return fused_matmul_cost(x, o.shape(1), attrs, o.const(1), dtype)
    if op in QLINEAR_OPS:
        found = qlinear_cost(op, attrs, o.shapes, o.dtypes, [o.const(i) for i in range(len(o.names))], y,
                             o.out_dtypes[0])
        if found is None:
            raise LookupError(NO_SHAPE)
        return found
    if op in ("Gemm", "FusedGemm", "MatMul"):
        if op == "MatMul" and (len(x) != 2 or not o.const(1)):
            return "matmul", cm.matmul_cost(x, o.shape(1), dtype=dtype)
        m, k = (x[1], x[0]) if attrs.get("transA") else (x[-2] if len(x) > 1 else 1, x[-1])
        n, act = y[-1], fused_activation(attrs)
        if o.const(1):
            return "linear", cm.linear_cost((m, k), n, bias=o.given(2), activation=act, dtype=dtype)
        bias = o.shape(2) if o.given(2) else None
        cost = cm.matmul_cost((m, k), (k, n), dtype=dtype)
        return "matmul", epilogue(cost, flops=elems if bias else 0, act=act,
                                  extra_read=math.prod(bias) if bias else 0,
                                  params=math.prod(bias) if bias and o.const(2) else 0)
    if op in ("MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat"):
        b_index = 3 if op == "QLinearMatMul" else 1
        b = o.shape(b_index)
        if o.const(b_index) and len(b) == 2:
            category, cost = "linear", cm.linear_cost(x, b[1], dtype=dtype)
        else:
            category, cost = "matmul", cm.matmul_cost(x, b, dtype=dtype)
        work = {"MatMulInteger": 0, "QLinearMatMul": REQUANTIZE_FLOPS, "MatMulIntegerToFloat": DEQUANTIZE_FLOPS}[op]
        bias = op == "MatMulIntegerToFloat" and o.given(6)
        return category, written_as(epilogue(cost, flops=(work + bias) * elems), o.out_dtypes[0])
    if op in ("QLinearConv", "ConvInteger"):
        w = o.shape(3 if op == "QLinearConv" else 1)
        bias = op == "QLinearConv" and o.given(8)
        cost = conv_kernel_cost(x, w, y, dtype, bias=bias)
        requant = REQUANTIZE_FLOPS * elems if op == "QLinearConv" else 0
        return "conv", written_as(epilogue(cost, flops=requant), o.out_dtypes[0])
    if op in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
        flops = {"QuantizeLinear": QUANTIZE_FLOPS, "DequantizeLinear": DEQUANTIZE_FLOPS,
                 "DynamicQuantizeLinear": QUANTIZE_FLOPS + MIN_MAX_FLOPS}[op]
        read = math.prod(x) * size
        written = math.prod(y) * cm.dtype_bytes(o.out_dtypes[0])
        return "eltwise", cm.OpCost(op=op, output_shape=y, dtype=dtype if op != "DequantizeLinear" else o.out_dtypes[0],
                                    bytes_read=read, bytes_written=written, flops_main=flops * math.prod(x))
    if op in ("LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
              "SkipSimplifiedLayerNormalization"):
        axis = attrs.get("axis", -1) % len(x)
        norm = x[axis:]
        if "Simplified" in op:
            d, rows = math.prod(norm), math.prod(x) // math.prod(norm)
            cost = cm.OpCost(op="rmsnorm", output_shape=x, dtype=dtype, params=d,
                             bytes_read=(math.prod(x) + d) * size, bytes_written=math.prod(x) * size,
                             flops_main=RMS_FLOPS_PER_ELEMENT * math.prod(x) + RMS_FLOPS_PER_ROW * rows)
        else:
            cost = cm.layernorm_cost(x, norm, elementwise_affine=True, dtype=dtype)
        cost = moved_to(cost, "flops_norm")
        if op.startswith("Skip"):  # input + skip (+ bias), then the norm
            bias_index = 3 if "Simplified" in op else 4
            bias = o.given(bias_index)
            d = math.prod(norm)
            cost = with_changes(cost, flops_residual=math.prod(x), flops_bias=math.prod(x) if bias else 0,
                                bytes_read=cost.bytes_read + (math.prod(x) + (d if bias else 0)) * size,
                                params=cost.params + (d if bias else 0))
        return "norm", cost
    if op in ("Attention", "MultiHeadAttention"):
        return "attention", attention_cost(op, attrs, o)
    if op in ("BiasGelu", "FastGelu", "Gelu", "QuickGelu", "BiasAdd", "BiasSoftmax"):
        per = {"BiasGelu": "gelu", "FastGelu": "gelu_tanh", "Gelu": "gelu"}.get(op)
        bias = o.given(1)  # BiasGelu, FastGelu, BiasAdd, BiasSoftmax: input 1 is the bias
        read = sum(math.prod(s) for s in o.shapes if s is not None)
        cost = cm.OpCost(op=op, output_shape=y, dtype=dtype, bytes_read=read * size, bytes_written=elems * size,
                         flops_bias=elems if bias else 0)
        if op == "BiasAdd":  # x + bias + skip
            return "residual", with_changes(cost, flops_residual=elems)
        if op == "BiasSoftmax":
            return "softmax", with_changes(cost, flops_main=cm.SOFTMAX_FLOPS_PER_ELEMENT * elems)
        act_flops = QUICK_GELU_FLOPS if op == "QuickGelu" else cm.UNARY_FLOPS[per]
        return "act", with_changes(cost, flops_act=act_flops * elems)
    if op == "EmbedLayerNormalization":
        return "norm", embed_layernorm_cost(o)
    return None


def attention_cost(op: str, attrs: dict, o: Operands) -> cm.OpCost:
    """Attention: the QKV projection (Attention only: input x weights + bias), then per head
    Q.K^T, the scale, softmax and A.V; MultiHeadAttention takes Q, K, V projected (bias
    optional). Bytes: inputs, weights and output once (the scores stay in the kernel)."""
    heads = int(attrs["num_heads"])
    x, y = o.shape(0), o.outputs[0]
    batch, seq = x[0], x[1]
    size = cm.dtype_bytes(o.dtypes[0])
    proj_macs, bias_elems, params = 0, 0, 0
    if op == "Attention":
        w = o.shape(1)
        sizes = list(attrs.get("qkv_hidden_sizes") or [w[1] // 3] * 3)
        dq, dv = sizes[0], sizes[2]
        kv_len = seq
        proj_macs = batch * seq * x[2] * w[1]
        bias_elems = batch * seq * w[1] if o.given(2) else 0
        params = math.prod(w) + (w[1] if o.given(2) else 0)
    else:
        k = o.shape(1)
        dq = x[2]
        kv_len = k[1] if k is not None and len(k) == 3 else (k[2] if k is not None else seq)
        dv = y[-1]
        bias_elems = batch * (seq + 2 * kv_len) * dq if o.given(3) else 0
    scores = batch * heads * seq * kv_len
    attn_macs = scores * (dq // heads) + scores * (dv // heads)
    read = sum(math.prod(s) for s in o.shapes if s is not None)
    return cm.OpCost(op=op.lower(), output_shape=y, dtype=o.dtypes[0], macs=proj_macs + attn_macs, params=params,
                     bytes_read=read * size, bytes_written=math.prod(y) * size,
                     flops_main=2 * (proj_macs + attn_macs) + (cm.SOFTMAX_FLOPS_PER_ELEMENT + 1) * scores,
                     flops_bias=bias_elems)


def embed_layernorm_cost(o: Operands) -> cm.OpCost:
    """EmbedLayerNormalization: a row of each embedding table per token (word, position,
    segment: only those rows are read), their sum, then LayerNorm over the hidden size."""
    ids, word = o.shape(0), o.shape(2)
    tokens, d = math.prod(ids), word[1]
    tables = 2 + o.given(4)  # word and position, segment if given
    size = cm.dtype_bytes(o.dtypes[2])
    norm = cm.layernorm_cost((tokens, d), d, elementwise_affine=True, dtype=o.dtypes[2])
    id_bytes = tokens * (1 + o.given(1)) * 4  # int32 ids
    return with_changes(moved_to(norm, "flops_norm"), op="embed_layernorm", output_shape=o.outputs[0],
                        bytes_read=norm.bytes_read + tables * tokens * d * size + id_bytes,
                        flops_residual=(tables - 1) * tokens * d,
                        params=norm.params + sum(math.prod(o.shape(i)) for i in (2, 3, 4) if o.given(i)))


def trace_cost(op: str, input_shapes, output_shapes, attrs: dict | None = None):
    """(category, OpCost) for a profiled node from its op type and trace shapes alone (no
    optimized graph), or None. Weights absent from the trace are not known."""
    ins, outs = shape_list(input_shapes), shape_list(output_shapes)
    if not ins or not outs:
        return None
    names = [f"in{i}" for i in range(len(ins))]
    o = operands(SimpleNamespace(input=names), input_shapes, output_shapes, {})
    if op in ("Gemm", "MatMul") and len(ins) < 2:
        o.names.insert(1, "prepacked")
        o.consts.add("prepacked")
    if op in REORDERS:
        return "data", reorder_cost(op, o)
    try:
        found = contrib_cost(op, attrs or {}, o)
    except LookupError:
        return None
    if found is not None:
        return found
    shapes = {**dict(zip(names, (s for s, _ in ins))), **{f"out{i}": s for i, (s, _) in enumerate(outs)}}
    dtypes = {**dict(zip(names, (d for _, d in ins))), **{f"out{i}": d for i, (_, d) in enumerate(outs)}}
    return onnx_node_cost(op, names, [f"out{i}" for i in range(len(outs))], attrs or {}, shapes, dtypes, set())


def reorder_cost(op: str, o: Operands) -> cm.OpCost:
    """An NCHW <-> NCHWc layout change: the input read once, the output written once, with
    the channel padding the trace shows."""
    size = cm.dtype_bytes(o.dtypes[0])
    y = o.outputs[0]
    return cm.OpCost(op=op, output_shape=y, dtype=o.dtypes[0], bytes_read=math.prod(o.shape(0)) * size,
                     bytes_written=math.prod(y) * size)


@dataclass
class KernelCost:
    """One profiled kernel: its cost (None where there is none, with the group and reason),
    how it was costed, and the original graph's nodes it came from."""

    layer: LayerCost | None
    how: str
    kernel: str
    op: str
    source_nodes: list[str] = field(default_factory=list)
    uncosted: str = ""
    reason: str = ""


def nchwc_cost(node, attrs: dict, o: Operands, gm: GraphMatch, graph_costs: dict):
    """An NCHWc kernel as the original node it computes plus what is fused into it."""
    main = gm.main_node(node, gm.match.get(node.output[0]))
    layer = graph_costs.get(gm.names[main]) if main is not None else None
    if layer is None:
        return None, node.op_type
    original = gm.original.graph.node[main]
    cost = layer.cost
    if node.op_type != "Conv":
        return (layer.category, cost), original.op_type
    out = math.prod(cost.output_shape)
    act = fused_activation(attrs)
    if original.op_type in ("BatchNormalization", "Mul"):  # rewritten as a 1x1 depthwise conv
        return (layer.category if original.op_type == "Mul" else "norm", epilogue(cost, act=act)), original.op_type
    bias = o.given(2) and not cost.flops_bias
    cost = epilogue(cost, flops=out if bias else 0, act=act, extra_read=cost.output_shape[1] if bias else 0,
                    params=cost.output_shape[1] if bias else 0)
    if o.given(3):  # the residual add, read from memory
        cost = with_changes(cost, flops_residual=cost.flops_residual + out,
                            bytes_read=cost.bytes_read + out * cm.dtype_bytes(cost.dtype))
    return ("conv", cost), "Conv"


def cost_kernel(name: str, prof: dict, node, gm: GraphMatch | None, graph_costs: dict, sources: dict) -> KernelCost:
    """The cost of profiled kernel `name` (prof: its op and trace shapes), `node` its node in
    the optimized graph (None if that graph could not be read)."""
    kernel = f"{node.domain or 'ai.onnx'}:{node.op_type}" if node is not None else prof["op"]
    found_sources = sources.get(name, [name] if name in graph_costs else [])
    result = KernelCost(None, "", kernel, prof["op"], found_sources)
    try:
        if node is None:
            found, result.how = trace_cost(prof["op"], prof["input_shapes"], prof["output_shapes"]), "trace shapes"
        else:
            found = _from_node(name, prof, node, gm, graph_costs, result)
    except LookupError:
        result.uncosted, result.reason = NO_SHAPE, "shapes not in the trace"
        return result
    except cm.CostError as exc:  # shapes the cost model rejects: listed as uncosted, with why
        result.uncosted, result.reason = NO_FORMULA, str(exc)
        return result
    if found is None:
        result.uncosted = NO_FORMULA
        result.reason = result.reason or f"no cost formula for {kernel}"
        return result
    category, c = found
    result.layer = LayerCost(name, c.op, category, c, module=result.op)
    return result


def _from_node(name, prof, node, gm, graph_costs, result: KernelCost):
    inits = {t.name: t for t in gm.optimized.graph.initializer}
    idx = gm.index_of.get(name)
    if idx is not None and name in graph_costs:
        orig = gm.original.graph.node[idx]
        if (orig.op_type, orig.domain, list(orig.input), list(orig.output)) == (
                node.op_type, node.domain, list(node.input), list(node.output)):
            result.how = "graph node"
            layer = graph_costs[name]
            return layer.category, layer.cost
    o = operands(node, prof["input_shapes"], prof["output_shapes"], inits)
    attrs = node_attrs(node)
    if node.op_type in REORDERS:
        result.how = "trace shapes (layout change)"
        return "data", reorder_cost(node.op_type, o)
    if node.domain == NCHWC:
        found, label = nchwc_cost(node, attrs, o, gm, graph_costs)
        if found is not None:
            result.how, result.op = "original node + fused epilogue (NCHWc)", label
            return found
    result.how = "optimized graph + trace shapes"
    found = contrib_cost(node.op_type, attrs, o)
    if found is not None or node.domain not in ("", "ai.onnx"):
        return found
    shapes = {n: s for n, s in zip(o.names, o.shapes) if n and s is not None}
    dtypes = {n: d for n, d in zip(o.names, o.dtypes) if n and d is not None}
    shapes.update({n: s for n, s in zip(node.output, o.outputs)})
    dtypes.update({n: d for n, d in zip(node.output, o.out_dtypes)})
    if any(i and i not in shapes for i in node.input) or not o.outputs:
        raise LookupError(NO_SHAPE)
    return onnx_node_cost(node.op_type, list(node.input), list(node.output), attrs, shapes, dtypes, inits)


def cost_profiled_nodes(nodes: dict, graph, graph_cost, optimized=None) -> dict[str, KernelCost]:
    """{node name: KernelCost} for the profiled `nodes` ({name: {op, input_shapes,
    output_shapes}}) of `graph` (the ONNX model as given; graph_cost: onnx_model_cost of it),
    run by ONNX Runtime as `optimized` (the graph it saved; None: trace shapes only)."""
    graph_costs = {layer.name: layer for layer in graph_cost.layers}
    gm = GraphMatch(graph, optimized) if optimized is not None else None
    sources = gm.source_nodes() if gm is not None else {}
    by_name = {n.name: n for n in optimized.graph.node} if optimized is not None else {}
    return {name: cost_kernel(name, prof, by_name.get(name), gm if name in by_name else None, graph_costs, sources)
            for name, prof in nodes.items()}
