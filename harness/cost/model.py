"""A model's cost as the cost model counts it: per-layer costs (LayerCost), their totals and
what could not be costed (ModelCost), and the column conventions they follow.

Columns. Each op's OpCost is what the cost model returns, except that the FLOPs of a
stand-alone BatchNorm/LayerNorm are moved into `flops_norm`, of an activation into
`flops_act`, of a residual add (two activations of the same shape) into `flops_residual`,
so the column sums over a model are the model's norm/act/residual FLOPs. `flops_main` then
holds the multiply-adds x 2 of conv/linear/matmul (their bias in `flops_bias`) plus the own
work of pools, softmax, reductions and other element-wise ops. torch's FlopCounterMode
counts only conv/linear/matmul/bmm multiply-adds x 2, so it equals the sum of flops_main over
the rows of category conv/linear/matmul exactly; our total is larger by the bias, norm, act,
residual, pool, softmax, eltwise columns of `flops_by_category`.

Memory access: each op moves its inputs, weights and output once (the first source
document's formula); the model's figure is the sum over ops, so a tensor written by one op
and read by the next counts twice, as the document counts it.

The torch walk (`torch_walk.py`) and the ONNX graph (`onnx_graph.py`) both produce a
ModelCost. Units: decimal SI; a multiply-add is 2 FLOPs.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from harness.cost.ops import OpCost, dtype_bytes

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

    params is the model's own count (torch: sum of parameters(); ONNX: every weight tensor,
    wherever the file keeps it: onnx_weights.onnx_params), params_by_op its split by the op
    type that reads each weight (ONNX);
    params_layers the sum of the layer column. unknown: [{op, count, output_elements,
    share_of_ops, share_of_output_elements, reason, group}] (summarise_unknown).
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
    params_by_op: dict[str, int] = field(default_factory=dict)

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


def moved_to(cost: OpCost, column: str) -> OpCost:
    """The same op with its own work (flops_main) booked under `column`."""
    if column == "flops_main":
        return cost
    return OpCost(op=cost.op, output_shape=cost.output_shape, dtype=cost.dtype, macs=cost.macs,
                  params=cost.params, bytes_read=cost.bytes_read, bytes_written=cost.bytes_written,
                  **{column: cost.flops_main})


def with_changes(cost: OpCost, **changes) -> OpCost:
    fields = {k: getattr(cost, k) for k in ("op", "output_shape", "dtype", "macs", "params", "bytes_read",
                                            "bytes_written", *FLOP_COLUMNS)}
    fields.update(changes)
    return OpCost(**fields)


def data_cost(op: str, in_elems: int, out_shape, dtype: str) -> OpCost:
    size = dtype_bytes(dtype)
    return OpCost(op=op, output_shape=tuple(out_shape), dtype=dtype, bytes_read=in_elems * size,
                  bytes_written=math.prod(out_shape) * size)


NO_FORMULA_REASON = "no cost formula for this op"
SHAPE_REASON = "output shape not inferred"
UNKNOWN_GROUPS = ("no formula", "shape not inferred")


def unknown_group(reason: str) -> str:
    """Which of UNKNOWN_GROUPS an uncosted op is in: its shape was not inferred (the formula,
    if any, had nothing to work on), or there is no formula that takes it."""
    return "shape not inferred" if reason == SHAPE_REASON else "no formula"


def summarise_unknown(unknown: Counter, unknown_elems: Counter, reasons: dict, n_ops: int,
                       out_elems: int) -> list[dict]:
    """[{op, count, output_elements, share_of_ops, share_of_output_elements, reason, group}]:
    the ops that were not costed, most frequent first; group is unknown_group(reason).

    The counters are keyed by op (its reason from `reasons`, else NO_FORMULA_REASON) or by
    (op, reason): then an op whose nodes fail for different reasons has an entry per reason."""
    out = []
    for key, count in unknown.most_common():
        op, reason = key if isinstance(key, tuple) else (key, reasons.get(key, NO_FORMULA_REASON))
        out.append({"op": op, "count": count, "output_elements": unknown_elems[key],
                    "share_of_ops": count / n_ops if n_ops else 0.0,
                    "share_of_output_elements": unknown_elems[key] / out_elems if out_elems else 0.0,
                    "reason": reason, "group": unknown_group(reason)})
    return out
