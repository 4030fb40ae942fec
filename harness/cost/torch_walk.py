"""The cost of a torch model's forward pass, op by op: a TorchFunctionMode walk.

The ops are found by running one forward pass under a `torch.overrides.TorchFunctionMode`
that sees every call at the torch API level (F.conv2d, F.linear, F.batch_norm, torch.cat,
Tensor.__add__, Tensor.matmul, torch.softmax ...), with forward pre/post hooks on every
module keeping the stack of module names so each op is named after the module it ran in.
A module walk with forward hooks alone would miss the functional ops that matter: the
residual adds of ResNet and MobileNetV2, ShuffleNetV2's concat and channel shuffle, and the
ViT's attention matmuls, softmax and position-embedding add. torch.fx tracing was not
chosen because `b, c, h, w = x.shape` (ShuffleNetV2, the ViT) cannot be traced symbolically.
Calls nested inside a caught call (F.layer_norm calling torch.layer_norm) are not seen again:
the mode is off while its handler runs, so nothing is counted twice. The same walk, with
`timer=True`, times each op for the per-layer profile (kernels/layers.py). Every row also
keeps the shapes of the tensors the call was given (`input_shapes`, by row name: a conv's
input, weight and bias), so a latency predictor can read kernel size and groups from them.

View ops (view, flatten, transpose, permute, chunk, expand, indexing that returns a view)
move nothing; a data op that copies (contiguous, reshape of a non-contiguous tensor, cat)
reads and writes its tensors. Parameters: sum(p.numel() for p in model.parameters()),
exact; the per-layer params (from the cost model, plus any Parameter used directly by an
element-wise or data op, as the ViT's pos_embed and cls_token) sum to the same figure
unless a weight is shared.

`activation_high_water`: a TorchDispatchMode tracks every tensor an aten op returns, keyed
by storage, with a weakref finalizer per tensor; the live bytes of activation storages
(parameters and buffers excluded, the input included) are summed after every op, and the
maximum is the activation high-water mark. It sees what torch allocates as tensors, not a
kernel's private scratch (oneDNN workspaces) or the allocator's slack.

Ops the cost model does not know are listed by name with their count and their share of
the graph's op calls and output elements (`unknown`), never counted as zero silently.
torch is imported inside functions (deferred on purpose: validating a suite must not start it).
"""
from __future__ import annotations

import time
import weakref
from collections import Counter

from harness.core import registry
from harness.cost.model import LayerCost, ModelCost, data_cost, moved_to, summarise_unknown, with_changes
from harness.cost.ops import (CostError, OpCost, adaptive_pool_cost, batchnorm_cost, concat_cost, conv2d_cost,
                              conv2d_cost_padded, conv_transpose2d_cost, eltwise_cost, layernorm_cost, linear_cost,
                              matmul_cost, pair2, pairs, pool2d_cost, softmax_cost, window_pool_cost)
from harness.cost.ops_attention import attention_cost, einsum_cost
from harness.cost.ops_data import cumsum_cost
from harness.cost.ops_norm import group_norm_cost, instance_norm_cost, lrn_cost, resize_cost

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
# F.interpolate's modes as the resize formula names them ("area" is an adaptive average pool).
INTERPOLATE_MODES = {"nearest": "nearest", "nearest-exact": "nearest", "linear": "linear", "bilinear": "linear",
                     "trilinear": "linear", "bicubic": "cubic"}


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


class TorchWalk:
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
        self.input_shapes: dict[str, list[list[int]]] = {}  # row name -> its tensor arguments' shapes
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
        self.input_shapes[name] = [list(t.shape) for t in _tensors(args) + _tensors(list(kwargs.values()))]
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
                cost = conv2d_cost_padded(tuple(x.shape), tuple(w.shape), tuple(out.shape), stride, dilation,
                                    groups, bias is not None, dtype)
            else:
                cost = conv2d_cost(tuple(x.shape), w.shape[0], tuple(w.shape[2:]), pairs(stride),
                                   pairs(padding), pairs(dilation), groups, bias=bias is not None,
                                   dtype=dtype)
            return "conv", cost
        if op == "conv_transpose2d":
            w = _arg(args, kwargs, 1, "weight")
            bias = _arg(args, kwargs, 2, "bias")
            groups = _arg(args, kwargs, 6, "groups", 1)
            if x.dim() != 4:
                return None
            cost = conv_transpose2d_cost(
                tuple(x.shape), w.shape[1] * groups, tuple(w.shape[2:]), pairs(_arg(args, kwargs, 3, "stride", 1)),
                pairs(_arg(args, kwargs, 4, "padding", 0)), pairs(_arg(args, kwargs, 5, "output_padding", 0)),
                pairs(_arg(args, kwargs, 7, "dilation", 1)), groups, bias=bias is not None, dtype=dtype)
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
                cost = with_changes(cost, params=0)
            return "norm", moved_to(cost, "flops_norm")
        if op == "layer_norm":
            normalized = _arg(args, kwargs, 1, "normalized_shape")
            weight = _arg(args, kwargs, 2, "weight")
            cost = layernorm_cost(tuple(x.shape), tuple(normalized), elementwise_affine=weight is not None,
                                  dtype=dtype)
            return "norm", moved_to(cost, "flops_norm")
        if op in ("group_norm", "instance_norm", "local_response_norm", "scaled_dot_product_attention",
                  "interpolate", "upsample", "cumsum", "einsum"):
            return self._cost_more(op, args, kwargs, x, out, dtype)
        if op == "hardtanh":
            lo, hi = _arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0)
            act = "relu6" if (lo, hi) == (0.0, 6.0) else "clip"
            return "act", moved_to(eltwise_cost(act, tuple(x.shape), dtype=dtype), "flops_act")
        if op in ACTIVATIONS:
            act = ACTIVATIONS[op]
            if op == "gelu" and _arg(args, kwargs, 1, "approximate", "none") == "tanh":
                act = "gelu_tanh"
            category = "eltwise" if op == "erf" else "act"
            cost = eltwise_cost(act, tuple(x.shape), dtype=dtype)
            return category, moved_to(cost, "flops_act" if category == "act" else "flops_main")
        if op in UNARY_MATH and x is not None:
            act = "sqrt" if op == "rsqrt" else op
            return "eltwise", eltwise_cost(act, tuple(x.shape), dtype=dtype)
        if op in BINARY:
            a, b = args[0], (args[1] if len(args) > 1 else _arg(args, kwargs, 1, "other"))
            shapes = [_shape_of(a), _shape_of(b)]
            cost = eltwise_cost(BINARY[op], *shapes, dtype=dtype)
            params = self._param_elems([v for v in (a, b) if isinstance(v, torch.Tensor)])
            if params:
                cost = with_changes(cost, params=params)
            residual = (op == "add" and all(isinstance(v, torch.Tensor) for v in (a, b)) and shapes[0] == shapes[1]
                        and not params)
            if residual:
                return "residual", moved_to(cost, "flops_residual")
            return "eltwise", cost
        if op in ("softmax", "log_softmax"):
            dim = _arg(args, kwargs, 1, "dim", -1)
            cost = softmax_cost(tuple(x.shape), -1 if dim is None else dim, dtype=dtype)
            return "softmax", cost
        if op in ("max_pool2d", "avg_pool2d"):
            if x.dim() != 4:
                return None
            k = _arg(args, kwargs, 1, "kernel_size")
            return "pool", window_pool_cost(op.split("_")[0], tuple(x.shape), tuple(out.shape), pair2(k), dtype)
        if op in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
            if x.dim() != 4:
                return None
            return "pool", adaptive_pool_cost(op.split("_")[1], tuple(x.shape), tuple(out.shape), dtype)
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
                cost = data_cost("stack", sum(t.numel() for t in tensors), tuple(out.shape), dtype)
            else:
                cost = concat_cost([tuple(t.shape) for t in tensors], dim, dtype=dtype)
            params = self._param_elems(tensors)
            return "data", with_changes(cost, params=params) if params else cost
        if op in CREATION_OPS:  # a new tensor filled with a constant: written once (empty: untouched)
            written = 0 if op.startswith("empty") else out.numel() * out.element_size()
            return "data", OpCost(op=op, output_shape=tuple(out.shape), dtype=dtype, bytes_written=written)
        if op in ("copy", "fill", "zero") and x is not None:  # in-place copy_/fill_/zero_
            src = args[1] if op == "copy" and len(args) > 1 and isinstance(args[1], torch.Tensor) else None
            return "data", data_cost(op, src.numel() if src is not None else 0, tuple(x.shape), dtype)
        if op in IDENTITY_OPS:
            return "data", OpCost(op=op, output_shape=tuple(out.shape), dtype=dtype)
        if op in VIEW_OPS and x is not None:
            copied = all(_storage_ptr(t) != _storage_ptr(x) for t in outs)
            params = self._param_elems([x])
            if copied:
                cost = data_cost(op, x.numel(), tuple(out.shape), dtype)
            else:
                cost = OpCost(op=op, output_shape=tuple(out.shape), dtype=dtype)
            return "data", with_changes(cost, params=params) if params else cost
        return None


    def _cost_more(self, op, args, kwargs, x, out, dtype):
        """The ops whose formulas live in ops_norm, ops_attention and ops_data."""
        torch = self._torch
        if op in ("group_norm", "instance_norm"):
            index = 2 if op == "group_norm" else 3  # instance_norm(input, running_mean, running_var, weight, bias)
            weight, bias = _arg(args, kwargs, index, "weight"), _arg(args, kwargs, index + 1, "bias")
            if op == "group_norm":
                cost = group_norm_cost(tuple(x.shape), _arg(args, kwargs, 1, "num_groups"),
                                       affine=weight is not None, dtype=dtype)
            else:
                cost = instance_norm_cost(tuple(x.shape), affine=weight is not None, dtype=dtype)
            elems = sum(t.numel() for t in (weight, bias) if t is not None)
            cost = with_changes(cost, params=elems, bytes_read=(x.numel() + elems) * x.element_size())
            return "norm", moved_to(cost, "flops_norm")
        if op == "local_response_norm":
            return "norm", moved_to(lrn_cost(tuple(x.shape), _arg(args, kwargs, 1, "size"), dtype=dtype), "flops_norm")
        if op == "scaled_dot_product_attention":
            q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
            mask = _arg(args, kwargs, 3, "attn_mask")
            cost = attention_cost(tuple(q.shape), tuple(k.shape), tuple(v.shape),
                                  mask_shape=tuple(mask.shape) if mask is not None else None,
                                  causal=bool(_arg(args, kwargs, 5, "is_causal", False)), dtype=dtype,
                                  mask_dtype=_dtype_name(mask) if mask is not None else None)
            return "attention", cost
        if op in ("interpolate", "upsample"):
            mode = _arg(args, kwargs, 3, "mode", "nearest")
            if mode == "area" and x.dim() == 4:
                return "pool", adaptive_pool_cost("avg", tuple(x.shape), tuple(out.shape), dtype)
            if mode not in INTERPOLATE_MODES:
                raise CostError(f"mode: interpolate mode {mode!r} has no formula; known: {', '.join(INTERPOLATE_MODES)}")
            if _arg(args, kwargs, 6, "antialias", False) and any(b < a for a, b in zip(x.shape, out.shape)):
                raise CostError("antialias: a downscale with antialias widens the filter; not modelled")
            cost = resize_cost(tuple(x.shape), tuple(out.shape), INTERPOLATE_MODES[mode], dtype=dtype)
            return ("data" if INTERPOLATE_MODES[mode] == "nearest" else "eltwise"), cost
        if op == "cumsum":
            return "reduce", cumsum_cost(tuple(x.shape), dtype=dtype)
        # einsum(equation, *operands) or einsum(equation, [operands])
        operands = [t for t in _tensors(list(args[1:])) if isinstance(t, torch.Tensor)]
        cost = einsum_cost(args[0], *[tuple(t.shape) for t in operands], dtype=dtype)
        params = self._param_elems(operands)
        if params and cost.macs:
            return "linear", with_changes(cost, params=params)
        return ("matmul" if cost.macs else "reduce" if cost.flops else "data"), cost


class _LiveBytes:
    """TorchDispatchMode bookkeeping of live activation storages; see the module docstring."""

    def __init__(self, exclude_ptrs: set[int]):
        self.exclude = exclude_ptrs
        self.owners: dict[int, set[int]] = {}
        self.size: dict[int, int] = {}
        self.live = 0
        self.peak = 0

    def track(self, t) -> None:
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


def example_input(input_shape, dtype="float32", seed: int = 0):
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

    x = example if example is not None else example_input(input_shape)
    walk = TorchWalk(model, cost=True)
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
        unknown=summarise_unknown(walk.unknown, walk.unknown_elems, walk.reasons, walk.n_ops, walk.out_elems),
        n_ops=walk.n_ops, output_elements=walk.out_elems,
        torch_flop_counter=int(counter.get_total_flops()) if counter is not None else None,
        activation_peak_bytes=live.peak if live is not None else None)
    if result.params_layers != result.params:
        result.notes.append(f"per-layer params sum to {result.params_layers:,}, the model has {result.params:,}: "
                            "a shared weight counts in every layer that uses it; a Parameter never "
                            "passed to a torch op is in no layer")
    return result


def zoo_model_cost(name: str, batch: int = 1, image: int = 224, **kwargs) -> ModelCost:
    zoo = registry.model_zoo()
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
