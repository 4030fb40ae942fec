"""The cost of an ONNX graph, node by node, from onnx.shape_inference and the cost model.

Reshape/Flatten/Transpose/Squeeze/Split/Slice/... are zero-FLOP data movement that
reads and writes their tensors (ONNX Runtime may alias some of them, so this is an upper
bound for those); Shape/Constant are free. Parameters: every weight tensor wherever it lives
(onnx_weights.py). onnx is imported inside functions (deferred on purpose: it is
heavy and only model commands need it).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from harness.core.errors import UsageError
from harness.cost.model import (NO_FORMULA_REASON, SHAPE_REASON, LayerCost, ModelCost, moved_to, summarise_unknown,
                                 with_changes)
from harness.cost.onnx_ops import MORE_OPS, const_array, more_node_cost
from harness.cost.onnx_weights import (SMALL_ELEMENTS, activation_peak, graph_constants, infer_onnx, onnx_params,
                                       value_types)
from harness.cost.ort_contrib import QLINEAR_OPS, fused_activation, fused_matmul_cost, qlinear_cost
from harness.cost.ops import (UNARY_FLOPS, CostError, OpCost, batchnorm_cost, concat_cost, conv2d_cost,
                              conv2d_cost_padded, conv_transpose2d_cost, dtype_bytes, eltwise_cost, layernorm_cost,
                              linear_cost, matmul_cost, pool2d_cost, softmax_cost, window_pool_cost)

ONNX_UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leaky_relu",
              "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish", "Gelu": "gelu", "Erf": "erf",
              "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": "neg", "Clip": "clip"}
ONNX_ACTIVATIONS = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Gelu", "Clip"}
ONNX_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "max", "Min": "min", "Sum": "add"}
ONNX_DATA = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Split", "Slice", "Identity", "Cast",
             "Dropout", "ReorderInput", "ReorderOutput", "DepthToSpace", "SpaceToDepth"}
# Gather, Pad, Where, Equal, Range... have their own formulas (onnx_ops.MORE_OPS).
ONNX_FREE = {"Shape", "Size", "Constant", "ConstantOfShape"}
ONNX_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"}
SHAPE_ARITHMETIC_ELEMENTS = 64


# Op types the cost model has a formula for: one missing its output shape is "shape not
# inferred", any other uncosted op "no formula".
COSTED_OPS = {*ONNX_UNARY, *ONNX_BINARY, *ONNX_DATA, *ONNX_FREE, *ONNX_REDUCE, *MORE_OPS, *QLINEAR_OPS, "Conv",
              "FusedConv", "ConvTranspose", "Gemm", "MatMul", "FusedMatMul", "MaxPool", "AveragePool",
              "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "LayerNormalization", "SkipLayerNormalization",
              "SimplifiedLayerNormalization", "Softmax", "Concat"}


def node_names(model) -> list[str]:
    """Each node's name as the cost model lists it: its own name, or op_index when it has
    none; a repeated name gets #2, #3... (the per-layer tables match kernels to these)."""
    seen: Counter = Counter()
    names = []
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return names


def load_onnx(path, load_weights: bool = True):
    """An ONNX ModelProto from a file, or UsageError (one line) for a missing or non-ONNX file.

    load_weights=False: tensors kept in external data files stay there (costs, parameter
    counts and memory estimates read their dims only), except small ones (shape tensors,
    axes, scalars: up to SMALL_ELEMENTS elements), whose values shape inference and the
    formulas read; an external file that is missing or shorter than a tensor it holds is a
    UsageError naming both."""
    import onnx

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a file")
    try:
        model = onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:
        raise UsageError(f"{path}: not an ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None
    if not model.graph.node:
        raise UsageError(f"{path}: not an ONNX model (no graph nodes in it)")
    if not load_weights:
        _load_small_external(model, path)
    return model


def _first_line(exc) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else "unreadable"


def _load_small_external(model, path: Path) -> None:
    """Checks every tensor the graph keeps in an external file (the file there, long enough)
    and loads the small ones (SMALL_ELEMENTS) into the model."""
    from onnx import TensorProto, external_data_helper

    tensors = [*model.graph.initializer,
               *(a.t for node in model.graph.node for a in node.attribute if a.HasField("t"))]
    sizes: dict[Path, int] = {}
    for t in tensors:
        if t.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        where = path.parent / location
        if where not in sizes:
            try:
                sizes[where] = where.stat().st_size if location else -1
            except OSError as exc:
                raise UsageError(f"{path}: weight {t.name!r} is stored in {location!r}, which cannot be read "
                                 f"({exc.strerror or type(exc).__name__})") from None
        end = int(info.get("offset") or 0) + int(info.get("length") or 0)
        if sizes[where] < 0 or end > sizes[where]:
            raise UsageError(f"{path}: weight {t.name!r} is stored in {location!r} up to byte {end}, "
                             f"but that file holds {max(sizes[where], 0)} bytes")
        if math.prod(t.dims) <= SMALL_ELEMENTS:
            try:
                external_data_helper.load_external_data_for_tensor(t, str(path.parent))
            except Exception as exc:
                raise UsageError(f"{path}: weight {t.name!r} in {location!r}: {_first_line(exc)}") from None
            t.data_location = TensorProto.DEFAULT
            del t.external_data[:]


def parse_shapes(text: str | None) -> dict[str, tuple[int, ...]]:
    """'input=1x3x224x224,mask=1x16' -> {'input': (1, 3, 224, 224), 'mask': (1, 16)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    if not text:
        return shapes
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, dims = part.partition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not eq or not name or not shape or any(d <= 0 for d in shape):
            raise UsageError(f"--shape {part!r}: expected NAME=DxDx... with positive sizes, e.g. input=1x3x224x224")
        shapes[name.strip()] = shape
    return shapes


def format_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def onnx_inputs(model) -> list[tuple[str, list]]:
    """The graph's real inputs (not initializers) with dims: ints, or the dim's name (or '?')."""
    inits = {i.name for i in model.graph.initializer}
    out = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in inp.type.tensor_type.shape.dim]
        out.append((inp.name, dims))
    return out


def resolve_onnx_shapes(model, given: dict | None = None, source: str = "model") -> dict[str, tuple[int, ...]]:
    """A fixed shape for every graph input, from the file or from `given`; UsageError names
    the first input whose dims are dynamic and not given."""
    given = dict(given or {})
    inputs = onnx_inputs(model)
    names = [n for n, _ in inputs]
    for name in given:
        if name not in names:
            raise UsageError(f"--shape {name}=...: {source} has no input {name!r} (inputs: {', '.join(names)})")
    shapes = {}
    for name, dims in inputs:
        if name in given:
            if len(given[name]) != len(dims):
                raise UsageError(f"--shape {name}={format_shape(given[name])}: input {name!r} has {len(dims)} dims "
                                 f"{_dims_text(dims)}")
            fixed = [d for d, g in zip(dims, given[name]) if isinstance(d, int) and d > 0 and d != g]
            if fixed:
                raise UsageError(f"--shape {name}={format_shape(given[name])}: input {name!r} is fixed at "
                                 f"{_dims_text(dims)} in {source}")
            shapes[name] = tuple(given[name])
            continue
        if not all(isinstance(d, int) and d > 0 for d in dims):
            example = format_shape(_example_dims(dims))
            raise UsageError(f"input {name!r} has dynamic dims {_dims_text(dims)}; give --shape {name}={example}")
        shapes[name] = tuple(dims)
    return shapes


def _dims_text(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _example_dims(dims):
    # The usual image layout: N=1, C as given, H=W=224.
    out = []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d > 0:
            out.append(d)
        else:
            out.append(1 if i == 0 else 224)
    return out


class _OnnxGraph:
    """Shapes, element types and constant-ness of every value in an inferred ONNX graph.

    constants: every constant value (initializers, Constant outputs, ConstantOfShape over a
    constant shape, and values computed from constants only: Transpose(initializer), ...)
    -> its TensorProto, or None where its values are not computed (a big folded tensor)."""

    def __init__(self, model):
        from onnx import numpy_helper

        found = graph_constants(model)
        shapes, dtypes = value_types(model)
        self.shapes: dict[str, tuple] = {k: v for k, v in found.shapes.items() if v is not None}
        self.shapes.update(shapes)
        self.dtypes: dict[str, str] = {k: v.name for k, v in dtypes.items()}
        for name, dtype in found.dtypes.items():
            if dtype is not None:
                self.dtypes.setdefault(name, dtype.name)
        self.constants: dict[str, object] = {}
        for name in found.roots:
            tensor = found.tensors.get(name)
            if tensor is None and name in found.arrays:
                tensor = numpy_helper.from_array(found.arrays[name], name)
            self.constants[name] = tensor
        self.folded = found

    def value(self, name):
        """A constant's values as numpy, or None (not a constant, or not computed cheaply)."""
        return self.folded.value(name)


def node_attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def onnx_node_cost(op_type: str, inputs: list, outputs: list, attrs: dict, shapes: dict, dtypes: dict,
                   constants, norm_outputs=frozenset()) -> tuple[str, OpCost] | None:
    """(category, OpCost) for one ONNX node given its value shapes; None if no formula applies.
    Also used for ONNX Runtime's fused nodes (FusedConv, FusedMatMul) found in profiles.
    constants: the names of constant values (a set, or a dict name -> tensor); norm_outputs:
    the outputs of the Mul and Add a decomposed BatchNorm left (decomposed_batchnorm)."""
    present = [i for i in inputs if i]
    x = shapes.get(present[0]) if present else None
    y = shapes.get(outputs[0]) if outputs else None
    dtype = dtypes.get(outputs[0]) if outputs else None
    if dtype not in ("float32", "float64", "float16", "bfloat16", "int8", "uint8", "int32"):
        dtype = None
    if op_type in ONNX_FREE:
        return "data", OpCost(op=op_type, output_shape=y or (), dtype=dtype or "float32")
    out_type = dtypes.get(outputs[0]) if outputs else None
    if out_type in ("int64", "bool") and y is not None and math.prod(y) <= SHAPE_ARITHMETIC_ELEMENTS:
        # Shape arithmetic (Shape -> Gather -> Mul -> Concat -> Reshape): a few integers, free.
        return "data", OpCost(op=f"{op_type} (shape arithmetic)", output_shape=y, dtype="float32")
    if op_type in MORE_OPS:
        return more_node_cost(op_type, inputs, outputs, attrs, shapes, dtypes, constants)
    if op_type in QLINEAR_OPS:  # com.microsoft: costed where the file or the trace gives the shapes
        return qlinear_cost(op_type, attrs, [shapes.get(i) if i else None for i in inputs],
                            [dtypes.get(i) if i else None for i in inputs], [bool(i) and i in constants for i in inputs],
                            y, dtypes.get(outputs[0]) if outputs else None)
    if x is None or y is None or dtype is None:
        return None
    if op_type in ("Conv", "FusedConv"):
        w = shapes.get(inputs[1])
        if w is None or len(x) not in (3, 4):
            return None
        if len(x) == 3:  # Conv1d as a 2-D conv of height 1
            x, y, w = (x[0], x[1], 1, x[2]), (y[0], y[1], 1, y[2]), (w[0], w[1], 1, w[2])
            attrs = {k: ([1, *v] if k in ("strides", "dilations") else v) for k, v in attrs.items()}
            if "pads" in attrs:
                p = attrs["pads"]
                attrs["pads"] = [0, p[0], 0, p[1]]
            if "kernel_shape" in attrs:
                attrs["kernel_shape"] = [1, *attrs["kernel_shape"]]
        bias = len(inputs) > 2 and bool(inputs[2])
        group = attrs.get("group", 1)
        strides = tuple(attrs.get("strides", (1, 1)))
        dilations = tuple(attrs.get("dilations", (1, 1)))
        pads = list(attrs.get("pads", (0, 0, 0, 0)))
        act = fused_activation(attrs) if op_type == "FusedConv" else None
        if attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID") and pads[:2] == pads[2:]:
            cost = conv2d_cost(x, w[0], (w[2], w[3]), strides, (pads[0], pads[1]), dilations, group, bias=bias,
                               activation=act, dtype=dtype)
            if tuple(cost.output_shape) == tuple(y):
                return "conv", cost
        return "conv", with_changes(conv2d_cost_padded(x, w, y, strides, dilations, group, bias, dtype),
                             flops_act=UNARY_FLOPS[act] * math.prod(y) if act else 0)
    if op_type == "ConvTranspose":
        w = shapes.get(inputs[1])
        if w is None or len(x) != 4:
            return None
        group = attrs.get("group", 1)
        pads = list(attrs.get("pads", (0, 0, 0, 0)))
        if pads[:2] != pads[2:] or attrs.get("auto_pad", "NOTSET") != "NOTSET" or "output_shape" in attrs:
            return None
        cost = conv_transpose2d_cost(x, w[1] * group, (w[2], w[3]), tuple(attrs.get("strides", (1, 1))),
                                     (pads[0], pads[1]), tuple(attrs.get("output_padding", (0, 0))),
                                     tuple(attrs.get("dilations", (1, 1))), group,
                                     bias=len(inputs) > 2 and bool(inputs[2]), dtype=dtype)
        return "conv", cost
    if op_type in ("Gemm", "MatMul", "FusedMatMul"):
        b = shapes.get(inputs[1]) if len(inputs) > 1 else None
        a = x
        if op_type == "Gemm":
            if b is None:  # B prepacked away (ONNX Runtime profiles): K from A, N from Y
                k = a[0] if attrs.get("transA") else a[1]
                b = (k, y[-1])
            m, k = (a[1], a[0]) if attrs.get("transA") else (a[0], a[1])
            n = b[0] if attrs.get("transB") else b[1]
            # A constant B (initializer, Constant node, folded chain) is a weight: a linear layer.
            if len(inputs) < 2 or inputs[1] in constants:
                category, cost = "linear", linear_cost((m, k), n, dtype=dtype)
            else:
                category, cost = "matmul", matmul_cost((m, k), (k, n), dtype=dtype)
            if len(inputs) > 2 and inputs[2]:
                cost = _with_gemm_bias(cost, inputs[2], n, shapes, constants, dtype)
            return category, cost
        if b is None:
            return None
        if op_type == "FusedMatMul":
            return fused_matmul_cost(a, b, attrs, inputs[1] in constants, dtype)
        if inputs[1] in constants and len(b) == 2:
            return "linear", linear_cost(a, b[1], dtype=dtype)
        return "matmul", matmul_cost(a, b, dtype=dtype)
    if op_type in ONNX_BINARY:
        in_shapes = [shapes.get(i) for i in present]
        if any(s is None for s in in_shapes):
            return None
        cost = eltwise_cost(ONNX_BINARY[op_type], *in_shapes, dtype=dtype)
        consts = [i for i in present if i in constants]
        params = sum(math.prod(shapes[i]) for i in consts if math.prod(shapes[i]) > 1)
        if outputs[0] in norm_outputs and op_type in ("Mul", "Add"):
            return "norm", with_changes(moved_to(cost, "flops_norm"), params=params)
        # A residual: two (Sum: two or more) activations of one shape, n - 1 adds per element.
        pair = len(present) == 2 if op_type == "Add" else (op_type == "Sum" and len(present) >= 2)
        if pair and not consts and all(s == in_shapes[0] for s in in_shapes):
            return "residual", moved_to(cost, "flops_residual")
        if op_type == "Add" and len(consts) == 1 and _is_channel_vector(shapes[consts[0]], y):
            return "bias", with_changes(moved_to(cost, "flops_bias"), params=params)
        return "eltwise", with_changes(cost, params=params) if params else cost
    if op_type in ONNX_UNARY:
        act = ONNX_UNARY[op_type]
        if op_type == "Clip":
            lo = _const_scalar(inputs, 1, attrs, "min", constants)
            hi = _const_scalar(inputs, 2, attrs, "max", constants)
            act = "relu6" if (lo, hi) == (0.0, 6.0) else ("relu" if (lo, hi) == (0.0, None) else "clip")
        if op_type == "Gelu" and attrs.get("approximate") == "tanh":
            act = "gelu_tanh"
        cost = eltwise_cost(act, x, dtype=dtype)
        if op_type in ONNX_ACTIVATIONS:
            return "act", moved_to(cost, "flops_act")
        return "eltwise", cost
    if op_type in ("MaxPool", "AveragePool"):
        if len(x) != 4:
            return None
        mode = "max" if op_type == "MaxPool" else "avg"
        return "pool", window_pool_cost(mode, x, y, tuple(attrs.get("kernel_shape", (1, 1))), dtype)
    if op_type in ("GlobalAveragePool", "GlobalMaxPool"):
        if len(x) != 4:
            return None
        mode = "global_avg" if op_type == "GlobalAveragePool" else "global_max"
        return "pool", pool2d_cost(x, mode=mode, dtype=dtype)
    if op_type in ONNX_REDUCE:
        # A reduction reads R values per output element: input elements in all.
        elems = math.prod(x)
        size = dtype_bytes(dtype)
        spatial = len(x) == 4 and math.prod(y) == x[0] * x[1] and op_type == "ReduceMean"
        op = "global_avg_pool2d" if spatial else op_type
        return ("pool" if spatial else "reduce"), OpCost(op=op, output_shape=y, dtype=dtype, bytes_read=elems * size,
                                                         bytes_written=math.prod(y) * size, flops_main=elems)
    if op_type == "BatchNormalization":
        return "norm", moved_to(batchnorm_cost(x, dtype=dtype), "flops_norm")
    if op_type in ("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization"):
        axis = attrs.get("axis", -1) % len(x)
        affine = op_type != "SimplifiedLayerNormalization"
        cost = moved_to(layernorm_cost(x, x[axis:], elementwise_affine=affine, dtype=dtype), "flops_norm")
        if op_type == "SkipLayerNormalization":  # x + skip, then LayerNorm
            elems = math.prod(x)
            cost = with_changes(cost, flops_residual=elems, bytes_read=cost.bytes_read + elems * dtype_bytes(dtype))
        return "norm", cost
    if op_type == "Softmax":
        return "softmax", softmax_cost(x, attrs.get("axis", -1), dtype=dtype)
    if op_type == "Concat":
        in_shapes = [shapes.get(i) for i in present]
        if any(s is None for s in in_shapes):
            return None
        return "data", concat_cost(in_shapes, attrs.get("axis", 0), dtype=dtype)
    if op_type in ONNX_DATA:
        data_inputs = [i for i in present if i not in constants or op_type in ("Expand", "Tile", "Gather")][:1]
        elems = sum(math.prod(shapes[i]) for i in data_inputs if i in shapes)
        outs = [shapes.get(o) for o in outputs if o]
        out_elems = sum(math.prod(s) for s in outs if s is not None)
        size = dtype_bytes(dtype)
        return "data", OpCost(op=op_type, output_shape=y, dtype=dtype, bytes_read=elems * size,
                              bytes_written=out_elems * size)
    return None


def _is_channel_vector(shape, y) -> bool:
    """A per-channel vector broadcast over y: (C,) on the last dim, or (1, C, 1, 1) on dim 1."""
    if not y:
        return False
    n = math.prod(shape)
    if n == y[-1] and (len(shape) == 1 or all(d == 1 for d in shape[:-1])):
        return True
    return len(y) >= 2 and n == y[1] and n > 1 and shape[-1] == 1 and n in shape


def _const_scalar(inputs, index, attrs, name, constants):
    # Clip's bounds: attributes before opset 11, optional constant inputs after.
    if name in attrs:
        return float(attrs[name])
    value = const_array(constants, inputs[index]) if len(inputs) > index else None
    return None if value is None or value.size == 0 else float(np.asarray(value).reshape(-1)[0])


def _with_gemm_bias(cost: OpCost, c: str, n: int, shapes: dict, constants, dtype: str) -> OpCost:
    """A Gemm's C added to its product: one add per output element, C read at its own size
    (N for a bias vector), and a parameter when C is constant."""
    elems = math.prod(shapes[c]) if c in shapes else n
    return with_changes(cost, flops_bias=math.prod(cost.output_shape),
                        bytes_read=cost.bytes_read + elems * dtype_bytes(dtype),
                        params=cost.params + (elems if c in constants else 0))


def decomposed_batchnorm(nodes, shapes: dict, constants) -> set[str]:
    """The outputs of each Mul by a per-channel constant whose only reader is an Add of a
    per-channel constant: x * scale + shift, what an exporter leaves of an unfused BatchNorm."""
    readers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def channel_const(node):
        y = shapes.get(node.output[0]) if node.output else None
        consts = [i for i in node.input if i in constants and i in shapes]
        return len(node.input) == 2 and len(consts) == 1 and y is not None and _is_channel_vector(shapes[consts[0]], y)

    found = set()
    for node in nodes:
        if node.op_type != "Mul" or not channel_const(node):
            continue
        after = readers.get(node.output[0], [])
        if len(after) == 1 and after[0].op_type == "Add" and channel_const(after[0]):
            found.update((node.output[0], after[0].output[0]))
    return found


def _scope(node) -> str:
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = json.loads(p.value.replace("'", '"'))
            except ValueError:
                return ""
            return scopes[-2] if len(scopes) >= 2 else ""
    return ""


def onnx_model_cost(path_or_model, input_shapes: dict | str | None = None) -> ModelCost:
    """The cost of one run of an ONNX graph: shapes from onnx.shape_inference (inputs fixed
    to `input_shapes`, e.g. {'input': (1, 3, 224, 224)} or 'input=1x3x224x224'), the cost
    model per node. UsageError for a missing file, a non-ONNX file, or dynamic dims not given."""
    if isinstance(path_or_model, (str, Path)):
        model = load_onnx(path_or_model, load_weights=False)  # the cost needs the weights' dims only
        source = str(path_or_model)
    else:
        model = path_or_model
        source = model.graph.name or "onnx model"
    given = parse_shapes(input_shapes) if isinstance(input_shapes, str) else input_shapes
    shapes = resolve_onnx_shapes(model, given, source)
    inferred, note = infer_onnx(model, shapes)
    graph = _OnnxGraph(inferred)
    norm_outputs = decomposed_batchnorm(inferred.graph.node, graph.shapes, graph.constants)
    # Uncosted nodes counted by (op, reason): nodes of one op type that fail for different
    # reasons (one without an inferred shape, one with a config no formula takes) stay apart.
    layers, unknown, unknown_elems = [], Counter(), Counter()
    n_ops, out_elems = 0, 0
    for node, name in zip(inferred.graph.node, node_names(inferred)):
        attrs = node_attrs(node)
        y = graph.shapes.get(node.output[0]) if node.output else None
        elems = math.prod(y) if y else 0
        n_ops += 1
        out_elems += elems
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        reason = NO_FORMULA_REASON
        try:
            found = onnx_node_cost(node.op_type, list(node.input), list(node.output), attrs, graph.shapes,
                                   graph.dtypes, graph.constants, norm_outputs)
        except CostError as exc:
            found, reason = None, str(exc)
        if found is None:
            if reason == NO_FORMULA_REASON and y is None and node.op_type in COSTED_OPS:
                reason = SHAPE_REASON
            unknown[key, reason] += 1
            unknown_elems[key, reason] += elems
            continue
        category, cost = found
        layers.append(LayerCost(name, cost.op, category, cost, module=node.op_type, scope=_scope(node)))
    params = onnx_params(inferred, graph.folded)
    peak, without_shape = activation_peak(inferred, graph.folded)
    result = ModelCost(source=source, input_shapes=shapes,
                       dtype=graph.dtypes.get(next(iter(shapes), ""), "float32"), layers=layers, params=params.total,
                       params_by_op=params.by_op_type,
                       unknown=summarise_unknown(unknown, unknown_elems, {}, n_ops, out_elems),
                       n_ops=n_ops, output_elements=out_elems, activation_peak_bytes=peak)
    if note:
        result.notes.append(note)
    result.notes.append("params: elements of every weight tensor (initializers incl. external data, Constant "
                        "nodes, ConstantOfShape), each once, under the op type that reads it; not shape tensors or "
                        "scalars (an exporter that folds BatchNorm leaves a conv bias instead of gamma/beta)")
    if without_shape:
        result.notes.append(f"activation high-water: {without_shape} values of no inferred shape left out")
    return result
