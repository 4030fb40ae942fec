"""The four size metrics of a whole model (the first source document, Part 01): FLOPs,
parameters, memory access (访存量) and memory footprint (内存占用), with a per-layer table.

FLOPs and memory access: the cost model (`harness/cost.py`) applied to every op the model
runs. The ops are found by running one forward pass under a `torch.overrides.TorchFunctionMode`
that sees every call at the torch API level (F.conv2d, F.linear, F.batch_norm, torch.cat,
Tensor.__add__, Tensor.matmul, torch.softmax ...), with forward pre/post hooks on every
module keeping the stack of module names so each op is named after the module it ran in.
A module walk with forward hooks alone would miss the functional ops that matter: the
residual adds of ResNet and MobileNetV2, ShuffleNetV2's concat and channel shuffle, and the
ViT's attention matmuls, softmax and position-embedding add. torch.fx tracing was not
chosen because `b, c, h, w = x.shape` (ShuffleNetV2, the ViT) cannot be traced symbolically.
Calls nested inside a caught call (F.layer_norm calling torch.layer_norm) are not seen again:
the mode is off while its handler runs, so nothing is counted twice.

Columns. Each op's OpCost is what the cost model returns, except that the FLOPs of a
stand-alone BatchNorm/LayerNorm are moved into `flops_norm`, of an activation into
`flops_act`, of a residual add (two activations of the same shape) into `flops_residual`,
so the column sums over a model are the model's norm/act/residual FLOPs. `flops_main` then
holds the multiply-adds x 2 of conv/linear/matmul (their bias in `flops_bias`) plus the own
work of pools, softmax, reductions and other element-wise ops. torch's FlopCounterMode
counts only conv/linear/matmul/bmm multiply-adds x 2, so it equals the sum of flops_main over
the rows of category conv/linear/matmul exactly; our total is larger by the bias, norm, act,
residual, pool, softmax, eltwise columns of `flops_by_category`.

Memory access: each op moves its inputs, weights and output once (the document's
formula); the model's figure is the sum over ops, so a tensor written by one op and read by
the next counts twice, as the document counts it. View ops (view, flatten, transpose,
permute, chunk, expand, indexing that returns a view) move nothing; a data op that copies
(contiguous, reshape of a non-contiguous tensor, cat) reads and writes its tensors.

Parameters: sum(p.numel() for p in model.parameters()), exact. The per-layer params
(from the cost model, plus any Parameter used directly by an element-wise or data op, as
the ViT's pos_embed and cls_token) sum to the same figure unless a weight is shared.

Memory footprint, measured two ways:
- `activation_high_water`: a TorchDispatchMode tracks every tensor an aten op returns,
  keyed by storage, with a weakref finalizer per tensor; the live bytes of activation
  storages (parameters and buffers excluded, the input included) are summed after every
  op, and the maximum is the activation high-water mark. It sees what torch allocates as
  tensors, not a kernel's private scratch (oneDNN workspaces) or the allocator's slack.
- `memory_footprint`: peak resident memory of a fresh subprocess (one thread) that builds
  the model (or the ONNX Runtime session) and runs a forward pass: the kernel's peak-RSS
  counter (VmHWM) is reset through /proc/self/clear_refs before each phase, so the peak
  of each phase is exact; where that reset is refused, a thread samples RSS every 0.5 ms.

Ops the cost model does not know are listed by name with their count and their share of
the graph's op calls and output elements (`unknown`), never counted as zero silently.

The ONNX path, `onnx_model_cost`, takes shapes from onnx.shape_inference and applies the
same cost model per node; Reshape/Flatten/Transpose/Squeeze/Gather/Split/Slice/... are
zero-FLOP data movement that reads and writes their tensors (ONNX Runtime may alias some
of them, so this is an upper bound for those), Shape/Constant are free.

Units: decimal SI; a multiply-add is 2 FLOPs.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.cost import (
    CostError, OpCost, batchnorm_cost, concat_cost, conv2d_cost, conv_transpose2d_cost, dtype_bytes,
    eltwise_cost, layernorm_cost, linear_cost, matmul_cost, pool2d_cost, softmax_cost, UNARY_FLOPS,
)
from harness.errors import UsageError

CONTRACTIONS = ("conv", "linear", "matmul")
# Where each category's FLOPs go; categories not listed keep them in flops_main.
CATEGORY_COLUMN = {"norm": "flops_norm", "act": "flops_act", "residual": "flops_residual",
                   "bias": "flops_bias"}
CATEGORIES = ("conv", "linear", "matmul", "bias", "norm", "act", "residual", "pool", "softmax",
              "reduce", "eltwise", "data")
FLOP_COLUMNS = ("flops_main", "flops_bias", "flops_norm", "flops_act", "flops_residual")


@dataclass
class LayerCost:
    """One op of a model: where it ran, what it is, and its cost."""

    name: str
    op: str
    category: str
    cost: OpCost
    module: str = ""
    scope: str = ""

    def row(self) -> dict:
        c = self.cost
        return {"name": self.name, "op": self.op, "category": self.category, "module": self.module,
                "output_shape": tuple(c.output_shape), "flops": c.flops, "macs": c.macs, "params": c.params,
                "bytes": c.bytes, "intensity": c.intensity, "bytes_read": c.bytes_read,
                "bytes_written": c.bytes_written, **{k: getattr(c, k) for k in FLOP_COLUMNS}}


@dataclass
class ModelCost:
    """The cost of one forward pass: per-layer costs, totals, and what could not be costed.

    params is the model's own count (torch: sum of parameters(); ONNX: float initializers);
    params_layers the sum of the layer column. unknown: [{op, count, output_elements,
    share_of_ops, share_of_output_elements, reason}].
    """

    source: str
    input_shapes: dict
    dtype: str
    layers: list[LayerCost]
    params: int
    unknown: list[dict] = field(default_factory=list)
    n_ops: int = 0
    output_elements: int = 0
    torch_flop_counter: int | None = None
    activation_peak_bytes: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def flops(self) -> int:
        return sum(l.cost.flops for l in self.layers)

    @property
    def macs(self) -> int:
        return sum(l.cost.macs for l in self.layers)

    @property
    def bytes(self) -> int:
        return sum(l.cost.bytes for l in self.layers)

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def params_layers(self) -> int:
        return sum(l.cost.params for l in self.layers)

    @property
    def flops_main_contractions(self) -> int:
        """flops_main of conv/linear/matmul: what torch's FlopCounterMode counts."""
        return sum(l.cost.flops_main for l in self.layers if l.category in CONTRACTIONS)

    def flops_by_category(self) -> dict[str, int]:
        """The total split so it lines up with other counters: 'main' is conv/linear/matmul
        multiply-adds x 2; the rest are the extra work torch's flop counter does not count."""
        out = {"main": self.flops_main_contractions}
        out.update({c: 0 for c in CATEGORIES if c not in CONTRACTIONS})
        for layer in self.layers:
            c = layer.cost
            if layer.category in CONTRACTIONS:
                out["bias"] += c.flops_bias
                out["norm"] += c.flops_norm
                out["act"] += c.flops_act
                out["residual"] += c.flops_residual
            else:
                out[layer.category] = out.get(layer.category, 0) + c.flops
        return out

    def table(self):
        """The per-layer table as a pandas DataFrame, in execution order."""
        import pandas as pd

        return pd.DataFrame([l.row() for l in self.layers])

    def summary(self) -> dict:
        """The four metrics' first three and the counter comparison, JSON-serialisable."""
        d = {"source": self.source, "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
             "dtype": self.dtype, "flops": self.flops, "macs": self.macs, "params": self.params,
             "params_layers": self.params_layers, "bytes": self.bytes, "intensity": self.intensity,
             "layers": len(self.layers), "flops_by_category": self.flops_by_category(),
             "unknown_ops": self.unknown, "notes": self.notes}
        if self.torch_flop_counter is not None:
            d["torch_flop_counter"] = self.torch_flop_counter
            d["flop_counter_equal"] = self.torch_flop_counter == self.flops_main_contractions
        if self.activation_peak_bytes is not None:
            d["activation_peak_bytes"] = self.activation_peak_bytes
        return d


def _moved(cost: OpCost, column: str) -> OpCost:
    """The same op with its own work (flops_main) booked under `column`."""
    if column == "flops_main":
        return cost
    return OpCost(op=cost.op, output_shape=cost.output_shape, dtype=cost.dtype, macs=cost.macs,
                  params=cost.params, bytes_read=cost.bytes_read, bytes_written=cost.bytes_written,
                  **{column: cost.flops_main})


def _with(cost: OpCost, **changes) -> OpCost:
    fields = {k: getattr(cost, k) for k in ("op", "output_shape", "dtype", "macs", "params", "bytes_read",
                                            "bytes_written", *FLOP_COLUMNS)}
    fields.update(changes)
    return OpCost(**fields)


def _data_cost(op: str, in_elems: int, out_shape, dtype: str) -> OpCost:
    size = dtype_bytes(dtype)
    return OpCost(op=op, output_shape=tuple(out_shape), dtype=dtype, bytes_read=in_elems * size,
                  bytes_written=math.prod(out_shape) * size)


def _summarise_unknown(unknown: Counter, unknown_elems: Counter, reasons: dict, n_ops: int,
                       out_elems: int) -> list[dict]:
    return [{"op": op, "count": count, "output_elements": unknown_elems[op],
             "share_of_ops": count / n_ops if n_ops else 0.0,
             "share_of_output_elements": unknown_elems[op] / out_elems if out_elems else 0.0,
             "reason": reasons.get(op, "no cost formula for this op")}
            for op, count in unknown.most_common()]


# ============================================================================ torch walk

# Calls that return no tensor (x.shape, x.dim(), x.size()) are metadata and never rows.
VIEW_OPS = {"view", "reshape", "flatten", "unflatten", "transpose", "permute", "contiguous", "chunk", "split",
            "expand", "expand_as", "getitem", "squeeze", "unsqueeze", "t", "narrow", "select", "view_as",
            "reshape_as", "detach", "clone", "to", "float", "movedim", "unbind", "split_with_sizes",
            "tensor_split", "swapaxes", "as_strided", "repeat", "pad"}
CREATION_OPS = {"zeros", "ones", "full", "empty", "zeros_like", "ones_like", "full_like", "empty_like"}
IDENTITY_OPS = {"dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout", "identity"}
ACTIVATIONS = {"relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu",
               "silu": "silu", "hardswish": "hardswish", "hardsigmoid": "hardsigmoid",
               "leaky_relu": "leaky_relu", "erf": "erf"}
UNARY_MATH = {"exp", "log", "sqrt", "abs", "neg", "rsqrt"}
BINARY = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "true_divide": "div",
          "maximum": "max", "minimum": "min", "rsub": "sub"}
POOLS = {"max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"}
REDUCTIONS = {"mean", "sum", "amax", "amin"}


def _canonical(func) -> str:
    """A torch callable's op name: F.relu, torch.relu_, Tensor.__radd__ -> relu, relu, add."""
    import torch.nn.functional as F

    special = {id(F.max_pool2d): "max_pool2d", id(F.adaptive_max_pool2d): "adaptive_max_pool2d",
               id(F.max_pool1d): "max_pool1d", id(F.max_pool3d): "max_pool3d"}
    if id(func) in special:
        return special[id(func)]
    name = getattr(func, "__name__", None) or type(func).__name__
    if name == "__get__":  # a property such as x.shape or x.T
        return "attribute"
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name in ("radd", "rmul", "rsub", "rtruediv", "rdiv", "rmatmul", "iadd", "imul", "isub",
                    "itruediv", "idiv"):
            name = {"rsub": "rsub"}.get(name, name[1:])
        if name in ("truediv", "div"):
            name = "div"
    if name.endswith("_") and not name.startswith("_"):
        name = name[:-1]  # in-place variant: relu_ -> relu
    return {"matmul": "matmul", "mm": "matmul", "bmm": "matmul", "concat": "cat", "concatenate": "cat",
            "stack": "stack", "hardtanh": "hardtanh"}.get(name, name)


def _arg(args, kwargs, index, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _tensors(obj) -> list:
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _tensors(item)]
    return []


def _shape_of(value) -> tuple:
    import torch

    return tuple(value.shape) if isinstance(value, torch.Tensor) else ()


def _dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def _storage_ptr(t) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except Exception:  # tensors without storage (subclasses): treat as a fresh buffer
        return -id(t)


class _Walk:
    """A TorchFunctionMode plus module hooks: one row per torch-level call that returns a tensor."""

    def __init__(self, model, cost: bool = True, timer: bool = False):
        import torch

        self.model = model
        self.cost = cost
        self.timer = timer
        self.names = {id(m): n for n, m in model.named_modules()}
        self.leaf = {id(m) for m in model.modules() if not any(True for _ in m.children())}
        self.params = {id(p) for p in model.parameters()}
        self.stack: list = []
        self.layers: list[LayerCost] = []
        self.times: list[float] = []
        self.ops: list[tuple[str, str]] = []  # (name, op) per row, for timing runs
        self.unknown: Counter = Counter()
        self.unknown_elems: Counter = Counter()
        self.reasons: dict = {}
        self.n_ops = 0
        self.out_elems = 0
        self._name_count: Counter = Counter()
        self._handles = []
        self._torch = torch

    # -- module scope
    def _pre(self, module, args):
        self.stack.append(module)

    def _post(self, module, args, output):
        if self.stack and self.stack[-1] is module:
            self.stack.pop()

    def __enter__(self):
        from torch.overrides import TorchFunctionMode

        walk = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if walk.timer:
                    t0 = time.perf_counter()
                    out = func(*args, **kwargs)
                    dt = time.perf_counter() - t0
                else:
                    out = func(*args, **kwargs)
                    dt = 0.0
                if _tensors(out):
                    walk._record(func, args, kwargs, out, dt)
                elif args and getattr(func, "__name__", "") == "__setitem__":
                    walk._record(func, args, kwargs, args[0], dt)  # an in-place write: listed, never dropped
                return out

        for module in self.model.modules():
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post))
        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.stack.clear()

    # -- one call
    def _name(self, op: str) -> tuple[str, str, str]:
        module = self.stack[-1] if self.stack else self.model
        scope = self.names.get(id(module), "")
        leaf = id(module) in self.leaf and module is not self.model
        name = scope if leaf else (f"{scope}.{op}" if scope else op)
        self._name_count[name] += 1
        if self._name_count[name] > 1:
            name = f"{name}#{self._name_count[name]}"
        return name, type(module).__name__, scope

    def _record(self, func, args, kwargs, out, dt):
        op = _canonical(func)
        if op == "attribute":
            return
        outs = _tensors(out)
        self.n_ops += 1
        elems = sum(t.numel() for t in outs)
        self.out_elems += elems
        name, module, scope = self._name(op)
        if self.timer:
            self.times.append(dt)
            self.ops.append((name, op))
        if not self.cost:
            return
        try:
            found = self._cost(op, args, kwargs, outs)
        except CostError as exc:
            found = None
            self.reasons[op] = str(exc)
        except (AttributeError, TypeError, IndexError, ValueError) as exc:
            # Arguments in a form the formulas do not read (an input passed by keyword...):
            # listed with the reason rather than guessed.
            found = None
            self.reasons[op] = f"arguments not understood: {type(exc).__name__}: {exc}"
        if found is None:
            self.unknown[op] += 1
            self.unknown_elems[op] += elems
            return
        category, cost = found
        self.layers.append(LayerCost(name, cost.op, category, cost, module=module, scope=scope))

    def _param_elems(self, values) -> int:
        """Elements of Parameters passed directly to an element-wise or data op (the ViT's
        pos_embed, cls_token); a view of a Parameter is not counted again."""
        return sum(t.numel() for t in values if id(t) in self.params)

    def _cost(self, op, args, kwargs, outs):
        """(category, OpCost) for one call, or None when the op has no formula."""
        torch = self._torch
        out = outs[0]
        dtype = _dtype_name(out)
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if op == "conv2d":
            w = _arg(args, kwargs, 1, "weight")
            bias = _arg(args, kwargs, 2, "bias")
            stride = _arg(args, kwargs, 3, "stride", 1)
            padding = _arg(args, kwargs, 4, "padding", 0)
            dilation = _arg(args, kwargs, 5, "dilation", 1)
            groups = _arg(args, kwargs, 6, "groups", 1)
            if x.dim() != 4:
                return None
            if isinstance(padding, str):
                cost = _conv_padded(tuple(x.shape), tuple(w.shape), tuple(out.shape), stride, dilation,
                                    groups, bias is not None, dtype)
            else:
                cost = conv2d_cost(tuple(x.shape), w.shape[0], tuple(w.shape[2:]), _pairs(stride),
                                   _pairs(padding), _pairs(dilation), groups, bias=bias is not None,
                                   dtype=dtype)
            return "conv", cost
        if op == "conv_transpose2d":
            w = _arg(args, kwargs, 1, "weight")
            bias = _arg(args, kwargs, 2, "bias")
            groups = _arg(args, kwargs, 6, "groups", 1)
            if x.dim() != 4:
                return None
            cost = conv_transpose2d_cost(
                tuple(x.shape), w.shape[1] * groups, tuple(w.shape[2:]), _pairs(_arg(args, kwargs, 3, "stride", 1)),
                _pairs(_arg(args, kwargs, 4, "padding", 0)), _pairs(_arg(args, kwargs, 5, "output_padding", 0)),
                _pairs(_arg(args, kwargs, 7, "dilation", 1)), groups, bias=bias is not None, dtype=dtype)
            return "conv", cost
        if op == "linear":
            w = _arg(args, kwargs, 1, "weight")
            bias = _arg(args, kwargs, 2, "bias")
            return "linear", linear_cost(tuple(x.shape), w.shape[0], bias=bias is not None, dtype=dtype)
        if op == "addmm":  # bias + a @ b
            bias, a, b = args[0], args[1], args[2]
            cost = linear_cost(tuple(a.shape), b.shape[-1], bias=True, dtype=dtype)
            return "linear", cost
        if op == "matmul":
            a, b = args[0], args[1]
            if id(b) in self.params and b.dim() == 2:  # x @ W: a linear layer written by hand
                return "linear", linear_cost(tuple(a.shape), b.shape[-1], dtype=dtype)
            return "matmul", matmul_cost(tuple(a.shape), tuple(b.shape), dtype=dtype)
        if op == "batch_norm":
            weight = _arg(args, kwargs, 3, "weight")
            cost = batchnorm_cost(tuple(x.shape), dtype=dtype)
            if weight is None:
                cost = _with(cost, params=0)
            return "norm", _moved(cost, "flops_norm")
        if op == "layer_norm":
            normalized = _arg(args, kwargs, 1, "normalized_shape")
            weight = _arg(args, kwargs, 2, "weight")
            cost = layernorm_cost(tuple(x.shape), tuple(normalized), elementwise_affine=weight is not None,
                                  dtype=dtype)
            return "norm", _moved(cost, "flops_norm")
        if op == "hardtanh":
            lo, hi = _arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0)
            act = "relu6" if (lo, hi) == (0.0, 6.0) else "clip"
            return "act", _moved(eltwise_cost(act, tuple(x.shape), dtype=dtype), "flops_act")
        if op in ACTIVATIONS:
            act = ACTIVATIONS[op]
            if op == "gelu" and _arg(args, kwargs, 1, "approximate", "none") == "tanh":
                act = "gelu_tanh"
            category = "eltwise" if op == "erf" else "act"
            cost = eltwise_cost(act, tuple(x.shape), dtype=dtype)
            return category, _moved(cost, "flops_act" if category == "act" else "flops_main")
        if op in UNARY_MATH and x is not None:
            act = "sqrt" if op == "rsqrt" else op
            return "eltwise", eltwise_cost(act, tuple(x.shape), dtype=dtype)
        if op in BINARY:
            a, b = args[0], (args[1] if len(args) > 1 else _arg(args, kwargs, 1, "other"))
            shapes = [_shape_of(a), _shape_of(b)]
            cost = eltwise_cost(BINARY[op], *shapes, dtype=dtype)
            params = self._param_elems([v for v in (a, b) if isinstance(v, torch.Tensor)])
            if params:
                cost = _with(cost, params=params)
            residual = (op == "add" and all(isinstance(v, torch.Tensor) for v in (a, b)) and shapes[0] == shapes[1]
                        and not params)
            if residual:
                return "residual", _moved(cost, "flops_residual")
            return "eltwise", cost
        if op in ("softmax", "log_softmax"):
            dim = _arg(args, kwargs, 1, "dim", -1)
            cost = softmax_cost(tuple(x.shape), -1 if dim is None else dim, dtype=dtype)
            return "softmax", cost
        if op in ("max_pool2d", "avg_pool2d"):
            if x.dim() != 4:
                return None
            k = _arg(args, kwargs, 1, "kernel_size")
            return "pool", _window_pool(op.split("_")[0], tuple(x.shape), tuple(out.shape), _pair2(k), dtype)
        if op in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
            if x.dim() != 4:
                return None
            return "pool", _adaptive_pool(op.split("_")[1], tuple(x.shape), tuple(out.shape), dtype)
        if op in REDUCTIONS and x is not None:
            dims = _arg(args, kwargs, 1, "dim")
            dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
            if op == "mean" and x.dim() == 4 and sorted(d % 4 for d in dims) == [2, 3]:
                cost = pool2d_cost(tuple(x.shape), mode="global_avg", dtype=dtype)
                return "pool", OpCost(op=cost.op, output_shape=tuple(out.shape), dtype=dtype,
                                      bytes_read=cost.bytes_read, bytes_written=cost.bytes_written,
                                      flops_main=cost.flops_main)
            return "reduce", OpCost(op=op, output_shape=tuple(out.shape), dtype=dtype,
                                    bytes_read=x.numel() * x.element_size(),
                                    bytes_written=out.numel() * out.element_size(), flops_main=x.numel())
        if op in ("cat", "stack"):
            tensors = list(args[0]) if args else list(kwargs.get("tensors"))
            dim = _arg(args, kwargs, 1, "dim", 0)
            if op == "stack":
                cost = _data_cost("stack", sum(t.numel() for t in tensors), tuple(out.shape), dtype)
            else:
                cost = concat_cost([tuple(t.shape) for t in tensors], dim, dtype=dtype)
            params = self._param_elems(tensors)
            return "data", _with(cost, params=params) if params else cost
        if op in CREATION_OPS:  # a new tensor filled with a constant: written once (empty: untouched)
            written = 0 if op.startswith("empty") else out.numel() * out.element_size()
            return "data", OpCost(op=op, output_shape=tuple(out.shape), dtype=dtype, bytes_written=written)
        if op in ("copy", "fill", "zero") and x is not None:  # in-place copy_/fill_/zero_
            src = args[1] if op == "copy" and len(args) > 1 and isinstance(args[1], torch.Tensor) else None
            return "data", _data_cost(op, src.numel() if src is not None else 0, tuple(x.shape), dtype)
        if op in IDENTITY_OPS:
            return "data", OpCost(op=op, output_shape=tuple(out.shape), dtype=dtype)
        if op in VIEW_OPS and x is not None:
            copied = all(_storage_ptr(t) != _storage_ptr(x) for t in outs)
            params = self._param_elems([x])
            if copied:
                cost = _data_cost(op, x.numel(), tuple(out.shape), dtype)
            else:
                cost = OpCost(op=op, output_shape=tuple(out.shape), dtype=dtype)
            return "data", _with(cost, params=params) if params else cost
        return None


def _pairs(v):
    """torch's int-or-sequence argument as the cost model takes it: an int or an (h, w) pair."""
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1]))
    return int(v)


def _pair2(v) -> tuple[int, int]:
    v = _pairs(v)
    return (v, v) if isinstance(v, int) else v


def _conv_padded(x, w, y, stride, dilation, groups, bias, dtype) -> OpCost:
    """A conv whose padding is given as a rule ('same', auto_pad, asymmetric pads): the cost
    of the same conv on the input padded to what the output needs, reading only the real input."""
    (sh, sw), (dh, dw) = _pair2(stride), _pair2(dilation)
    kh, kw = w[2], w[3]
    ph = max((y[2] - 1) * sh + dh * (kh - 1) + 1 - x[2], 0)
    pw = max((y[3] - 1) * sw + dw * (kw - 1) + 1 - x[3], 0)
    cost = conv2d_cost((x[0], x[1], x[2] + ph, x[3] + pw), w[0], (kh, kw), (sh, sw), 0, (dh, dw), groups,
                       bias=bias, dtype=dtype)
    pad_bytes = x[0] * x[1] * ((x[2] + ph) * (x[3] + pw) - x[2] * x[3]) * dtype_bytes(dtype)
    return _with(cost, bytes_read=cost.bytes_read - pad_bytes)


def _window_pool(mode: str, x, y, kernel, dtype) -> OpCost:
    """A KH x KW window per output element (the cost model's convention), the output shape as run."""
    kh, kw = _pair2(kernel)
    size = dtype_bytes(dtype)
    return OpCost(op=f"{mode}_pool2d", output_shape=tuple(y), dtype=dtype, bytes_read=math.prod(x) * size,
                  bytes_written=math.prod(y) * size, flops_main=kh * kw * math.prod(y))


def _adaptive_pool(mode: str, x, y, dtype) -> OpCost:
    """Adaptive pooling: output cell i covers input rows floor(i H / OH) .. ceil((i + 1) H / OH),
    as torch; each output element costs its window's size (a 1x1 output is a global pool)."""
    n, c, ih, iw = x
    oh, ow = y[-2], y[-1]
    rows = sum(math.ceil((i + 1) * ih / oh) - (i * ih) // oh for i in range(oh))
    cols = sum(math.ceil((j + 1) * iw / ow) - (j * iw) // ow for j in range(ow))
    size = dtype_bytes(dtype)
    op = f"global_{mode}_pool2d" if (oh, ow) == (1, 1) else f"adaptive_{mode}_pool2d"
    return OpCost(op=op, output_shape=tuple(y), dtype=dtype, bytes_read=math.prod(x) * size,
                  bytes_written=math.prod(y) * size, flops_main=n * c * rows * cols)


class _LiveBytes:
    """TorchDispatchMode bookkeeping of live activation storages; see the module docstring."""

    def __init__(self, exclude_ptrs: set[int]):
        self.exclude = exclude_ptrs
        self.owners: dict[int, set[int]] = {}
        self.size: dict[int, int] = {}
        self.live = 0
        self.peak = 0

    def track(self, t) -> None:
        import weakref

        ptr = _storage_ptr(t)
        if ptr in self.exclude or ptr == 0:
            return
        owners = self.owners.setdefault(ptr, set())
        if id(t) in owners:
            return
        if not owners:
            self.size[ptr] = t.untyped_storage().nbytes()
            self.live += self.size[ptr]
            self.peak = max(self.peak, self.live)
        owners.add(id(t))
        weakref.finalize(t, self._release, ptr, id(t))

    def _release(self, ptr, ident) -> None:
        owners = self.owners.get(ptr)
        if owners is None or ident not in owners:
            return
        owners.discard(ident)
        if not owners:
            self.live -= self.size.pop(ptr)
            del self.owners[ptr]

    def mode(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        live = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in _tensors(out):
                    live.track(t)
                return out

        return Mode()


def _example_input(input_shape, dtype="float32", seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(input_shape), generator=g, dtype=getattr(torch, dtype))


def model_cost(model, input_shape=(1, 3, 224, 224), *, example=None, flop_counter: bool = True,
               activations: bool = True, source: str = "") -> ModelCost:
    """The cost of one forward pass of `model` (a torch.nn.Module, run in eval mode, no grad)
    on a random input of `input_shape` (or on `example`). One pass does it all: the
    TorchFunctionMode walk, torch's FlopCounterMode (torch_flop_counter) and the
    activation high-water mark (activation_peak_bytes)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = example if example is not None else _example_input(input_shape)
    walk = _Walk(model, cost=True)
    counter = FlopCounterMode(display=False) if flop_counter else None
    exclude = {_storage_ptr(t) for t in (*model.parameters(), *model.buffers())}
    live = _LiveBytes(exclude) if activations else None
    with torch.no_grad():
        if counter is not None:
            counter.__enter__()
        live_mode = live.mode() if live is not None else None
        try:
            if live is not None:
                live_mode.__enter__()
                live.track(x)
            with walk:
                model(x)
        finally:
            if live_mode is not None:
                live_mode.__exit__(None, None, None)
            if counter is not None:
                counter.__exit__(None, None, None)
    result = ModelCost(
        source=source or type(model).__name__, input_shapes={"input": tuple(x.shape)},
        dtype=_dtype_name(x), layers=walk.layers, params=sum(p.numel() for p in model.parameters()),
        unknown=_summarise_unknown(walk.unknown, walk.unknown_elems, walk.reasons, walk.n_ops, walk.out_elems),
        n_ops=walk.n_ops, output_elements=walk.out_elems,
        torch_flop_counter=int(counter.get_total_flops()) if counter is not None else None,
        activation_peak_bytes=live.peak if live is not None else None)
    if result.params_layers != result.params:
        result.notes.append(f"per-layer params sum to {result.params_layers:,}, the model has {result.params:,}: "
                            "a shared weight counts in every layer that uses it; a Parameter never "
                            "passed to a torch op is in no layer")
    return result


def zoo_model_cost(name: str, batch: int = 1, image: int = 224, **kwargs) -> ModelCost:
    from kernels import zoo

    return model_cost(zoo.build(name), (batch, 3, image, image), source=name, **kwargs)


def flop_counter_comparison(cost: ModelCost) -> dict:
    """Our count beside torch's FlopCounterMode, with the difference explained column by column."""
    by = cost.flops_by_category()
    extra = {k: v for k, v in by.items() if k != "main" and v}
    return {
        "torch_flop_counter": cost.torch_flop_counter,
        "ours_flops_main_conv_linear_matmul": by["main"],
        "equal": cost.torch_flop_counter == by["main"],
        "ours_total": cost.flops,
        "difference": cost.flops - (cost.torch_flop_counter or 0),
        "difference_by_category": extra,
        "explanation": ("torch counts conv/linear/matmul multiply-adds x 2 only; our total adds "
                        + ", ".join(f"{k} {v / 1e6:.2f} MFLOP" for k, v in extra.items())),
    }


# ============================================================================ ONNX

ONNX_UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leaky_relu",
              "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish", "Gelu": "gelu", "Erf": "erf",
              "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": "neg", "Clip": "clip"}
ONNX_ACTIVATIONS = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Gelu", "Clip"}
ONNX_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "max", "Min": "min", "Sum": "add"}
ONNX_DATA = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Split", "Slice", "Gather", "Expand",
             "Pad", "Tile", "Identity", "Cast", "Dropout", "ReorderInput", "ReorderOutput", "DepthToSpace",
             "SpaceToDepth", "GatherElements", "Where"}
ONNX_FREE = {"Shape", "Size", "Constant", "ConstantOfShape", "Range", "Equal", "NonZero"}
ONNX_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"}
SHAPE_ARITHMETIC_ELEMENTS = 64
ONNX_FUSED_ACT = {"Relu": "relu", "Clip": "clip", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leaky_relu",
                  "HardSigmoid": "hardsigmoid"}


def load_onnx(path, load_weights: bool = True):
    """An ONNX ModelProto from a file, or UsageError (one line) for a missing or non-ONNX file."""
    import onnx

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a file")
    try:
        model = onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:
        raise UsageError(f"{path}: not an ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'unreadable'})") from None
    if not model.graph.node:
        raise UsageError(f"{path}: not an ONNX model (no graph nodes in it)")
    return model


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
    """Shapes, element types and constant-ness of every value in an inferred ONNX graph."""

    def __init__(self, model):
        import numpy as np
        from onnx import helper, numpy_helper

        self.shapes: dict[str, tuple] = {}
        self.dtypes: dict[str, str] = {}
        self.constants: dict[str, object] = {}
        for init in model.graph.initializer:
            self.shapes[init.name] = tuple(init.dims)
            self.dtypes[init.name] = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).name
            self.constants[init.name] = init
        for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
            t = vi.type.tensor_type
            if t.elem_type:
                try:
                    self.dtypes.setdefault(vi.name, np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name)
                except Exception:
                    pass
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            if t.HasField("shape") and all(d is not None for d in dims):
                self.shapes.setdefault(vi.name, tuple(dims))
        for node in model.graph.node:
            if node.op_type == "Constant" and node.output:
                for a in node.attribute:
                    if a.name == "value":
                        self.shapes[node.output[0]] = tuple(a.t.dims)
                        self.dtypes[node.output[0]] = np.dtype(helper.tensor_dtype_to_np_dtype(a.t.data_type)).name
                        self.constants[node.output[0]] = a.t
        self._numpy_helper = numpy_helper

    def value(self, name):
        """A constant's values as numpy, or None."""
        t = self.constants.get(name)
        return None if t is None else self._numpy_helper.to_array(t)


def _attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def onnx_node_cost(op_type: str, inputs: list, outputs: list, attrs: dict, shapes: dict, dtypes: dict,
                   constants: set) -> tuple[str, OpCost] | None:
    """(category, OpCost) for one ONNX node given its value shapes; None if no formula applies.
    Also used for ONNX Runtime's fused nodes (FusedConv, FusedMatMul) found in profiles."""
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
        act = ONNX_FUSED_ACT.get(attrs.get("activation", "")) if op_type == "FusedConv" else None
        if attrs.get("activation") and act is None:
            return None
        if act == "clip" and list(attrs.get("activation_params", [])) == [0.0, 6.0]:
            act = "relu6"
        if attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID") and pads[:2] == pads[2:]:
            cost = conv2d_cost(x, w[0], (w[2], w[3]), strides, (pads[0], pads[1]), dilations, group, bias=bias,
                               activation=act, dtype=dtype)
            if tuple(cost.output_shape) == tuple(y):
                return "conv", cost
        return "conv", _with(_conv_padded(x, w, y, strides, dilations, group, bias, dtype),
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
            bias = len(inputs) > 2 and bool(inputs[2])
            if inputs[1] in constants or len(inputs) < 2:
                return "linear", linear_cost((m, k), n, bias=bias, dtype=dtype)
            cost = matmul_cost((m, k), (k, n), dtype=dtype)
            return "matmul", cost
        if b is None:
            return None
        if op_type == "FusedMatMul":
            if attrs.get("transA"):
                a = (*a[:-2], a[-1], a[-2])
            if attrs.get("transB"):
                b = (*b[:-2], b[-1], b[-2])
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
        if op_type == "Add" and len(present) == 2 and not consts and in_shapes[0] == in_shapes[1]:
            return "residual", _moved(cost, "flops_residual")
        if op_type == "Add" and len(consts) == 1 and _is_channel_vector(shapes[consts[0]], y):
            return "bias", _with(_moved(cost, "flops_bias"), params=params)
        return "eltwise", _with(cost, params=params) if params else cost
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
            return "act", _moved(cost, "flops_act")
        return "eltwise", cost
    if op_type in ("MaxPool", "AveragePool"):
        if len(x) != 4:
            return None
        mode = "max" if op_type == "MaxPool" else "avg"
        return "pool", _window_pool(mode, x, y, tuple(attrs.get("kernel_shape", (1, 1))), dtype)
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
        return "norm", _moved(batchnorm_cost(x, dtype=dtype), "flops_norm")
    if op_type in ("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization"):
        axis = attrs.get("axis", -1) % len(x)
        affine = op_type != "SimplifiedLayerNormalization"
        cost = _moved(layernorm_cost(x, x[axis:], elementwise_affine=affine, dtype=dtype), "flops_norm")
        if op_type == "SkipLayerNormalization":  # x + skip, then LayerNorm
            elems = math.prod(x)
            cost = _with(cost, flops_residual=elems, bytes_read=cost.bytes_read + elems * dtype_bytes(dtype))
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
    if len(inputs) > index and inputs[index] and isinstance(constants, dict) and inputs[index] in constants:
        import numpy as np
        from onnx import numpy_helper

        return float(np.asarray(numpy_helper.to_array(constants[inputs[index]])).reshape(-1)[0])
    return None


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
    import numpy as np
    import onnx

    if isinstance(path_or_model, (str, Path)):
        model = load_onnx(path_or_model)
        source = str(path_or_model)
    else:
        model = path_or_model
        source = model.graph.name or "onnx model"
    given = parse_shapes(input_shapes) if isinstance(input_shapes, str) else input_shapes
    shapes = resolve_onnx_shapes(model, given, source)
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for inp in fixed.graph.input:
        if inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, shapes[inp.name]):
                d.Clear()
                d.dim_value = v
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception as exc:  # a graph onnx's checker rejects: keep the shapes we have
        inferred = fixed
        note = f"shape inference failed ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})"
    else:
        note = None
    graph = _OnnxGraph(inferred)
    layers, unknown, unknown_elems, reasons = [], Counter(), Counter(), {}
    n_ops, out_elems = 0, 0
    names = Counter()
    for i, node in enumerate(inferred.graph.node):
        attrs = _attrs(node)
        y = graph.shapes.get(node.output[0]) if node.output else None
        elems = math.prod(y) if y else 0
        n_ops += 1
        out_elems += elems
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        try:
            found = onnx_node_cost(node.op_type, list(node.input), list(node.output), attrs, graph.shapes,
                                   graph.dtypes, graph.constants)
        except CostError as exc:
            found = None
            reasons[key] = str(exc)
        name = node.name or f"{node.op_type}_{i}"
        names[name] += 1
        if names[name] > 1:
            name = f"{name}#{names[name]}"
        if found is None:
            unknown[key] += 1
            unknown_elems[key] += elems
            if y is None:
                reasons.setdefault(key, "output shape not inferred")
            continue
        category, cost = found
        layers.append(LayerCost(name, cost.op, category, cost, module=node.op_type, scope=_scope(node)))
    params = sum(math.prod(t.dims) for t in model.graph.initializer
                 if np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).kind == "f")
    result = ModelCost(source=source, input_shapes=shapes,
                       dtype=graph.dtypes.get(next(iter(shapes), ""), "float32"), layers=layers, params=params,
                       unknown=_summarise_unknown(unknown, unknown_elems, reasons, n_ops, out_elems),
                       n_ops=n_ops, output_elements=out_elems)
    if note:
        result.notes.append(note)
    result.notes.append("params: elements of floating-point initializers as stored (an exporter that folds "
                        "BatchNorm leaves a conv bias instead of gamma/beta; identical initializers it merged "
                        "count once)")
    return result


# ============================================================================ footprint

def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class _Peak:
    """Peak RSS over a phase: the kernel's VmHWM after a reset through /proc/self/clear_refs,
    or, where that is refused, a thread sampling RSS every 0.5 ms."""

    def __init__(self):
        self.method = "VmHWM reset via /proc/self/clear_refs"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self._hwm()
        except OSError:
            self.method = "psutil RSS sampled every 0.5 ms"

    @staticmethod
    def _hwm() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise OSError("no VmHWM")

    def measure(self, fn):
        """(result of fn(), peak RSS in bytes during it)."""
        if self.method.startswith("VmHWM"):
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            result = fn()
            return result, self._hwm()
        peak = [_rss()]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], _rss())
                time.sleep(0.0005)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            result = fn()
        finally:
            stop.set()
            t.join()
        return result, max(peak[0], _rss())


def _trim() -> None:
    """Hands memory the process freed back to the OS (glibc malloc_trim), so RSS after a
    phase counts what is still in use, not what the allocator kept (building a zoo model
    calibrates BatchNorm on a float64 batch and frees it)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _footprint_here(spec: dict) -> dict:
    """Runs in the fresh subprocess: load, then two forward passes, each phase's peak RSS."""
    peak = _Peak()
    if spec.get("onnx"):
        import numpy as np
        import onnxruntime as ort

        _trim()
        baseline = _rss()
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        session, load_peak = peak.measure(lambda: ort.InferenceSession(spec["onnx"], so,
                                                                      providers=["CPUExecutionProvider"]))
        rng = np.random.default_rng(0)
        feed = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in spec["shapes"].items()}
        weights = os.path.getsize(spec["onnx"])
        run = lambda: session.run(None, feed)
        runtime = f"onnxruntime {ort.__version__}"
    else:
        import torch

        torch.set_num_threads(1)
        from kernels import zoo

        _trim()
        baseline = _rss()
        model, load_peak = peak.measure(lambda: zoo.build(spec["model"]))
        weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        x = _example_input(spec["shape"])

        def run():
            with torch.inference_mode():
                return model(x)
        runtime = f"torch {torch.__version__} eager"
    _trim()
    loaded = _rss()
    out, first_peak = peak.measure(run)
    del out
    _trim()
    before_second = _rss()
    out, steady_peak = peak.measure(run)
    return {"method": peak.method + "; malloc_trim between phases", "runtime": runtime, "threads": 1,
            "weights_bytes": weights, "rss_runtime_bytes": baseline, "load_peak_bytes": load_peak - baseline,
            "loaded_bytes": loaded - baseline, "first_run_peak_bytes": first_peak - baseline,
            "steady_run_peak_bytes": steady_peak - baseline,
            "first_run_growth_bytes": first_peak - loaded, "run_growth_bytes": steady_peak - before_second,
            "footprint_bytes": steady_peak - baseline}


def memory_footprint(model: str | None = None, input_shape=(1, 3, 224, 224), *, onnx_path=None,
                     shapes: dict | None = None, timeout: float = 300) -> dict:
    """Memory footprint measured in a fresh process (one thread): a zoo `model` in torch eager
    on a random input of `input_shape`, or the ONNX file `onnx_path` in ONNX Runtime with
    inputs of `shapes`. Bytes above the runtime's own RSS (interpreter and library loaded,
    rss_runtime_bytes): peak while loading, resident once loaded, peak during the first
    and during a second forward pass; footprint_bytes is the second pass's peak, the
    memory the loaded model occupies at its highest while it runs (weights, activations,
    the runtime's workspaces and caches)."""
    if onnx_path is not None:
        spec = {"onnx": str(onnx_path), "shapes": {k: list(v) for k, v in (shapes or {}).items()}}
    else:
        spec = {"model": model, "shape": list(input_shape)}
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "harness.model_cost", "footprint", json.dumps(spec)],
                          capture_output=True, text=True, cwd=root, env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"footprint subprocess failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "footprint":
        print(json.dumps(_footprint_here(json.loads(argv[1]))))
        return 0
    print("usage: python -m harness.model_cost footprint SPEC_JSON", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
