"""Where an ONNX graph's weights live, what its inputs must be fed, and how much memory one run
needs, all read from the graph without running it.

Weights (parameters) are the elements of every constant source tensor the graph computes
with: initializers of a floating or 8-bit dtype (quantized weights; the int32 bias of a
QLinearConv too), `Constant` nodes, and `ConstantOfShape` over a constant shape. A value
computed only from constants (Identity, Cast, Transpose, Reshape, DequantizeLinear, ... of a
weight) is constant too, and its sources count once, at the source. Not weights: integer
shape/axes tensors, and single-element scalars (an epsilon, an exponent, a quantization
scale), which torch's parameters() does not hold either; tensors no node reads. Counting
reads `dims` only, so a model loaded with load_external_data=False is counted in full.

The activation high-water mark is the largest sum of live non-constant tensors while the
nodes run in file order: a value lives from its producer to its last consumer, graph inputs
from the start, graph outputs to the end (ONNX Runtime's memory planner reuses freed buffers
the same way). onnx is imported inside functions (deferred on purpose: it is heavy).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from harness.core.errors import UsageError

# Values computed from constants that are kept as numpy arrays (shape tensors, axes, small
# weights); bigger ones (a ConstantOfShape of millions of zeros) are computed only on request.
SMALL_ELEMENTS = 4096
# Ops whose output is not a function of their inputs: never folded.
NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                "Bernoulli", "If", "Loop", "Scan"}
# An integer input reaches a Gather's indices through these unchanged in value.
INDEX_PASS = {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Expand", "Transpose"}
WEIGHT_INT_SLOTS = {("QLinearConv", 8)}  # the int32 bias of a quantized conv is a weight


def np_dtype(elem_type: int) -> np.dtype:
    """The numpy dtype of an ONNX element type (bfloat16/float8/int4 via ml_dtypes)."""
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


def is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f" or dtype.name.startswith(("bfloat16", "float8", "float4"))


def _is_weight_dtype(dtype: np.dtype) -> bool:
    return is_float(dtype) or dtype.name in ("int8", "uint8", "int4", "uint4")


def _nbytes(elements: int, dtype: np.dtype) -> int:
    if dtype.name in ("int4", "uint4", "float4_e2m1fn"):
        return (elements + 1) // 2  # two 4-bit values a byte, as ONNX stores them
    return elements * (dtype.itemsize if dtype.kind != "O" else 0)


def node_key(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


@dataclass(frozen=True)
class Source:
    """One stored or generated constant tensor: an initializer, a Constant, a ConstantOfShape."""

    name: str
    elements: int
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return _nbytes(self.elements, self.dtype)


@dataclass
class GraphConstants:
    """Every constant value of a graph: its shape (None if unknown), dtype and the sources it
    is computed from; `tensors` the TensorProto of initializers and Constant nodes."""

    shapes: dict = field(default_factory=dict)
    dtypes: dict = field(default_factory=dict)
    roots: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    thunks: dict = field(default_factory=dict)

    def __contains__(self, name) -> bool:
        return name in self.roots

    def value(self, name):
        """The constant's values as numpy, or None where they cannot be had cheaply (a tensor
        in an external file not loaded, an op this module does not evaluate)."""
        if name in self.arrays:
            return self.arrays[name]
        if name in self.tensors:
            from onnx import numpy_helper

            try:
                array = numpy_helper.to_array(self.tensors[name])
            except Exception:  # external data not loaded
                return None
            if array.size <= SMALL_ELEMENTS:
                self.arrays[name] = array
            return array
        thunk = self.thunks.get(name)
        if thunk is None:
            return None
        try:
            array = np.asarray(thunk())
        except Exception:  # an input not evaluated, or values numpy rejects
            self.thunks.pop(name)
            return None
        if array.size <= SMALL_ELEMENTS:  # keep shape tensors; recompute big ones on request
            self.arrays[name] = array
        return array


def _constant_attr(node):
    """(TensorProto or None, shape, dtype) of a Constant node's value attribute."""
    from onnx import TensorProto, helper

    for a in node.attribute:
        if a.name == "value":
            return a.t, tuple(a.t.dims), np_dtype(a.t.data_type)
        if a.name == "sparse_value":
            return None, tuple(a.sparse_tensor.dims), np_dtype(a.sparse_tensor.values.data_type)
        if a.name in ("value_float", "value_int"):
            t = helper.make_tensor("v", TensorProto.FLOAT if a.name == "value_float" else TensorProto.INT64, [],
                                   [helper.get_attribute_value(a)])
            return t, (), np_dtype(t.data_type)
        if a.name in ("value_floats", "value_ints"):
            vals = list(helper.get_attribute_value(a))
            t = helper.make_tensor("v", TensorProto.FLOAT if a.name == "value_floats" else TensorProto.INT64,
                                   [len(vals)], vals)
            return t, (len(vals),), np_dtype(t.data_type)
    return None, None, np.dtype("O")  # value_string(s): not numeric


def _fold(node, consts: GraphConstants, attrs: dict):
    """A thunk computing the node's first output from its constant inputs, for the ops whose
    output a weight or shape tensor passes through; None for others."""
    op, ins = node.op_type, list(node.input)
    v = consts.value
    if op in ("Identity", "Dropout"):
        return lambda: v(ins[0])
    if op == "Cast":
        return lambda: v(ins[0]).astype(np_dtype(attrs["to"]))
    if op == "Transpose":
        return lambda: np.transpose(v(ins[0]), attrs.get("perm"))
    if op == "Reshape":
        def reshape():
            x, shape = v(ins[0]), [int(d) for d in v(ins[1])]
            shape = [x.shape[i] if d == 0 and not attrs.get("allowzero") else d for i, d in enumerate(shape)]
            return x.reshape(shape)
        return reshape
    if op in ("Unsqueeze", "Squeeze"):
        def axes_op():
            x = v(ins[0])
            axes = attrs.get("axes") if "axes" in attrs else (v(ins[1]) if len(ins) > 1 and ins[1] else None)
            if op == "Squeeze":
                return np.squeeze(x, None if axes is None else tuple(int(a) for a in axes))
            for a in sorted(int(a) % (x.ndim + len(axes)) for a in axes):
                x = np.expand_dims(x, a)
            return x
        return axes_op
    if op == "Flatten":
        def flatten():
            x = v(ins[0])
            axis = attrs.get("axis", 1) % max(x.ndim, 1)
            return x.reshape(math.prod(x.shape[:axis]), -1)
        return flatten
    if op == "DequantizeLinear":
        def dequantize():
            x, scale = v(ins[0]), v(ins[1])
            zero = v(ins[2]) if len(ins) > 2 and ins[2] else np.zeros_like(scale)
            axis = attrs.get("axis", 1) % max(x.ndim, 1)
            shape = [1] * x.ndim
            if scale.ndim == 1 and x.ndim:
                shape[axis] = -1
            return ((x.astype(np.float32) - zero.reshape(shape).astype(np.float32))
                    * scale.reshape(shape).astype(np.float32))
        return dequantize
    return None


def graph_constants(model) -> GraphConstants:
    """The constant values of a graph (initializers, Constant nodes, ConstantOfShape over a
    constant shape, and every node whose inputs are all constant), in one pass in node order."""
    from onnx import helper

    consts = GraphConstants()
    shapes, dtypes = value_types(model)
    for init in model.graph.initializer:
        dtype = np_dtype(init.data_type)
        consts.shapes[init.name], consts.dtypes[init.name] = tuple(init.dims), dtype
        consts.roots[init.name] = frozenset([init.name])
        consts.sources[init.name] = Source(init.name, math.prod(init.dims), dtype)
        consts.tensors[init.name] = init
    for node in model.graph.node:
        if not node.output or not node.output[0]:
            continue
        out = node.output[0]
        present = [i for i in node.input if i]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            tensor, shape, dtype = _constant_attr(node)
            consts.shapes[out], consts.dtypes[out], consts.roots[out] = shape, dtype, frozenset([out])
            consts.sources[out] = Source(out, math.prod(shape), dtype)
            if tensor is not None:
                consts.tensors[out] = tensor
            continue
        if node.op_type in NOT_FOLDABLE or not present or not all(i in consts for i in present):
            continue
        if node.op_type == "ConstantOfShape":
            fill = attrs.get("value")
            dtype = np_dtype(fill.data_type) if fill is not None else np.dtype(np.float32)
            dims = consts.value(present[0])
            shape = tuple(int(d) for d in dims) if dims is not None else shapes.get(out)
            consts.shapes[out], consts.dtypes[out], consts.roots[out] = shape, dtype, frozenset([out])
            consts.sources[out] = Source(out, math.prod(shape) if shape is not None else 0, dtype)
            fill_value = 0 if fill is None else helper.tensor_dtype_to_np_dtype(fill.data_type).type(
                _first(fill))
            if shape is not None:
                consts.thunks[out] = lambda s=shape, f=fill_value, d=dtype: np.full(s, f, d)
            continue
        roots = frozenset().union(*(consts.roots[i] for i in present))
        for o in node.output:
            if o:
                consts.roots[o], consts.shapes[o], consts.dtypes[o] = roots, shapes.get(o), dtypes.get(o)
        thunk = _fold(node, consts, attrs)
        if thunk is None:
            continue
        consts.thunks[out] = thunk
        in_shape = consts.shapes.get(present[0])
        if in_shape is not None and math.prod(in_shape) <= SMALL_ELEMENTS:
            got = consts.value(out)  # shape tensors and small weights: computed now, cheaply
            if got is not None:
                consts.shapes[out] = consts.shapes[out] or got.shape
                consts.dtypes[out] = consts.dtypes[out] or got.dtype
    return consts


def _first(tensor):
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor).reshape(-1)[0]


def value_types(model) -> tuple[dict, dict]:
    """(shapes, dtypes) of every value the file or shape inference states fully: initializers,
    Constant outputs, inputs, value_info and outputs. Shapes are tuples of ints; dtypes numpy."""
    shapes: dict = {}
    dtypes: dict = {}
    for init in model.graph.initializer:
        shapes[init.name], dtypes[init.name] = tuple(init.dims), np_dtype(init.data_type)
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        t = vi.type.tensor_type
        if t.elem_type:
            try:
                dtypes.setdefault(vi.name, np_dtype(t.elem_type))
            except Exception:
                pass
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if t.HasField("shape") and all(d is not None for d in dims):
            shapes.setdefault(vi.name, tuple(dims))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            _, shape, dtype = _constant_attr(node)
            if shape is not None:
                shapes[node.output[0]], dtypes[node.output[0]] = shape, dtype
    return shapes, dtypes


# --------------------------------------------------------------------------- parameters

@dataclass
class ParamCount:
    """Weight elements of a graph: total, by the op type that reads them, and their bytes."""

    total: int
    by_op_type: dict[str, int]
    bytes: int


def onnx_params(model, consts: GraphConstants | None = None) -> ParamCount:
    """Counts each weight source once, at the first node outside the constant subgraphs that
    reads it (directly or through a folded chain); a constant graph output counts under
    '(graph output)'."""
    consts = consts or graph_constants(model)
    by_op: dict[str, int] = defaultdict(int)
    counted: set = set()
    nbytes = 0

    def book(name, key, slot=None):
        nonlocal nbytes
        for root in consts.roots.get(name, ()):
            src = consts.sources.get(root)
            if root in counted or src is None:
                continue
            weight = _is_weight_dtype(src.dtype) or (slot in WEIGHT_INT_SLOTS and src.dtype.kind == "i")
            if not weight or src.elements <= 1:
                continue
            counted.add(root)
            by_op[key] += src.elements
            nbytes += src.nbytes

    for node in model.graph.node:
        if node.output and node.output[0] in consts:
            continue  # folded: its weights count where its output is read
        for slot, name in enumerate(node.input):
            if name in consts:
                book(name, node_key(node), (node.op_type, slot))
    for out in model.graph.output:
        book(out.name, "(graph output)")
    ordered = dict(sorted(by_op.items(), key=lambda kv: -kv[1]))
    return ParamCount(total=sum(ordered.values()), by_op_type=ordered, bytes=nbytes)


def weights_bytes(consts: GraphConstants) -> int:
    """Bytes of every constant source tensor (shape tensors too): what a session holds as
    initializers once ONNX Runtime has folded ConstantOfShape into one."""
    return sum(s.nbytes for s in consts.sources.values())


# --------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class InputSpec:
    """How to feed one graph input: values in [low, high) for integer and bool inputs
    (a float input is drawn from a standard normal); `why` says where the range comes from."""

    name: str
    shape: tuple
    dtype: np.dtype
    low: int | None = None
    high: int | None = None
    why: str = ""


def onnx_input_specs(model, shapes: dict) -> list[InputSpec]:
    """A valid feed for each graph input, from its ONNX element type and how the graph uses it.

    - float types (float16/32/64, bfloat16): standard normal values of that type;
    - an integer input that reaches a Gather's indices (through Cast/Reshape/Unsqueeze/...):
      [0, rows of the table), the smallest such range when it indexes several tables;
    - another integer or a bool input: all ones (True). An attention mask of ones attends to
      every token, which is valid for any mask, count or divisor; random zeros could mask a
      whole row and turn its softmax into NaN;
    - int8/uint8 not used as indices: the type's full range (quantized data).
    UsageError for a type no random data can stand for (strings)."""
    inferred, _ = infer_onnx(model, shapes)
    consts = graph_constants(inferred)
    vshapes, _ = value_types(inferred)
    consumers = defaultdict(list)
    for node in inferred.graph.node:
        for slot, name in enumerate(node.input):
            if name:
                consumers[name].append((node, slot))
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for inp in model.graph.input:
        if inp.name in inits or inp.name not in shapes:
            continue
        dtype = np_dtype(inp.type.tensor_type.elem_type)
        shape = tuple(shapes[inp.name])
        if dtype.kind == "O" or dtype.kind == "V" and not is_float(dtype):
            raise UsageError(f"input {inp.name!r} is of type {dtype.name}: the harness cannot make data for it")
        if is_float(dtype):
            specs.append(InputSpec(inp.name, shape, dtype, why="standard normal"))
            continue
        rows = _index_rows(inp.name, consumers, vshapes, consts)
        if rows:
            specs.append(InputSpec(inp.name, shape, dtype, 0, min(rows), why="indices of a Gather table"))
        elif dtype.name in ("int8", "uint8"):
            info = np.iinfo(dtype)
            specs.append(InputSpec(inp.name, shape, dtype, int(info.min), int(info.max) + 1, why="full range"))
        else:
            specs.append(InputSpec(inp.name, shape, dtype, 1, 2, why="ones (a mask that keeps every element)"))
    return specs


def _index_rows(name, consumers, shapes, consts) -> list[int]:
    """Rows of every table this value indexes, following INDEX_PASS ops."""
    rows, todo, seen = [], [name], set()
    while todo:
        value = todo.pop()
        if value in seen:
            continue
        seen.add(value)
        for node, slot in consumers.get(value, ()):
            if node.op_type == "Gather" and slot == 1:
                table = shapes.get(node.input[0]) or consts.shapes.get(node.input[0])
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                if table:
                    rows.append(table[axis % len(table)])
            elif node.op_type in INDEX_PASS and slot == 0:
                todo.extend(o for o in node.output if o)
    return rows


# --------------------------------------------------------------------------- memory

def infer_onnx(model, shapes: dict | None = None):
    """(model with `shapes` fixed on its inputs and shapes inferred, note or None). A graph
    onnx's shape inference rejects keeps the shapes it has, with the reason in the note."""
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for inp in fixed.graph.input:
        if shapes and inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, shapes[inp.name]):
                d.Clear()
                d.dim_value = v
    try:
        return onnx.shape_inference.infer_shapes(fixed, data_prop=True), None
    except Exception as exc:
        return fixed, f"shape inference failed ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})"


@dataclass
class MemoryEstimate:
    """Bytes one run of a graph needs, from the graph alone: the constant tensors, and the
    activation high-water mark; values of no inferred shape are left out and counted."""

    weights_bytes: int
    activation_peak_bytes: int
    values_without_shape: int = 0


def activation_peak(inferred, consts: GraphConstants | None = None) -> tuple[int, int]:
    """(largest bytes of live non-constant tensors over the nodes in file order, values of no
    inferred shape left out)."""
    consts = consts or graph_constants(inferred)
    shapes, dtypes = value_types(inferred)
    nodes = list(inferred.graph.node)
    end = len(nodes)
    born, last = {}, {}
    for inp in inferred.graph.input:
        if inp.name not in consts:
            born[inp.name] = last[inp.name] = 0
    for i, node in enumerate(nodes):
        for name in node.input:
            if name in born:
                last[name] = i
        for name in node.output:
            if name and name not in consts:
                born[name], last[name] = i, i
    for out in inferred.graph.output:
        if out.name in born:
            last[out.name] = end
    delta = [0] * (end + 2)
    missing = 0
    for name, start in born.items():
        shape, dtype = shapes.get(name), dtypes.get(name)
        if shape is None or dtype is None:
            missing += 1
            continue
        size = _nbytes(math.prod(shape), dtype)
        delta[start] += size
        delta[last[name] + 1] -= size
    peak = live = 0
    for d in delta:
        live += d
        peak = max(peak, live)
    return peak, missing


def onnx_memory_estimate(model, shapes: dict) -> MemoryEstimate:
    """Weights (every constant tensor, external data included, counted from dims) and the
    activation high-water mark from shape inference at `shapes`."""
    inferred, _ = infer_onnx(model, shapes)
    consts = graph_constants(inferred)
    peak, missing = activation_peak(inferred, consts)
    return MemoryEstimate(weights_bytes(consts), peak, missing)
