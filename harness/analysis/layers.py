"""A model's per-layer profile, read from a run: the `layers.*` case's record (the whole
model timed with no profiler) and its `layer.*` records (one per layer, each with its own
samples, cost and placement). Where the time goes, the sum of layers beside the whole model,
the time per op type, and the bottlenecks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.core.records import Record, final

COLUMNS = ["name", "op", "category", "output_shape", "time_s", "time_share", "cv", "n", "flops", "bytes",
           "intensity", "params", "attained_flops_per_s", "bound", "level", "theoretical_time_s", "efficiency",
           "cost_source", "source_nodes", "flops_main", "kernel", "uncosted", "cost_error"]
UNCOSTED_GROUPS = ("no formula", "shape not inferred")  # harness.cost.model.UNKNOWN_GROUPS


@dataclass
class LayerTable:
    """One profiled (model, framework, threads, batch): the case record and its layers."""

    case: Record
    layers: pd.DataFrame

    @property
    def framework(self) -> str:
        return self.case.kind.split(".", 1)[1]

    @property
    def model(self) -> str:
        return self.case.info.get("model") or self.case.params.get("model") or self.case.case_id

    @property
    def whole_s(self) -> float:
        return self.case.median

    @property
    def whole_profiled_s(self) -> float:
        return (self.case.info.get("layers") or {}).get("whole_profiled_s") or math.nan

    @property
    def sum_layers_s(self) -> float:
        return float(self.layers["time_s"].sum()) if len(self.layers) else 0.0

    @property
    def overhead(self) -> float:
        """What profiling itself cost: whole model with the profiler on over without, minus 1."""
        return self.whole_profiled_s / self.whole_s - 1 if self.whole_s else math.nan

    @property
    def notes(self) -> list[str]:
        return list((self.case.info.get("layers") or {}).get("notes") or [])

    @property
    def runs(self) -> int:
        return (self.case.info.get("layers") or {}).get("runs") or 0

    def bottlenecks(self, k: int = 5) -> pd.DataFrame:
        """The k slowest layers, with bound and efficiency: where the time goes and why."""
        return self.layers.sort_values("time_s", ascending=False).head(k).reset_index(drop=True)

    def by_op(self) -> pd.DataFrame:
        """Time, FLOPs and bytes per op type: which kinds of layer the time goes to."""
        g = self.layers.groupby("op", dropna=False).agg(
            layers=("name", "count"), time_s=("time_s", "sum"), flops=("flops", "sum"), bytes=("bytes", "sum"))
        g["time_share"] = g["time_s"] / self.sum_layers_s if self.sum_layers_s else math.nan
        g["attained_flops_per_s"] = g["flops"] / g["time_s"]
        return g.sort_values("time_s", ascending=False)

    def uncosted_share(self) -> float:
        """Share of the layer time spent in layers the cost model could not cost."""
        missing = self.layers[self.layers["flops"].isna()]
        return float(missing["time_s"].sum()) / self.sum_layers_s if self.sum_layers_s else 0.0

    def uncosted_groups(self) -> list[dict]:
        """The layers without a cost, by why: [{group, ops: {op: layers}, layers, time_s,
        time_share}] for each of UNCOSTED_GROUPS that has any, time_share of the sum of layers."""
        missing = self.layers[self.layers["flops"].isna()]
        out = []
        for group in UNCOSTED_GROUPS:
            rows = missing[missing["uncosted"].fillna("no formula") == group]
            if not len(rows):
                continue
            time_s = float(rows["time_s"].sum())
            out.append({"group": group, "ops": rows["op"].value_counts().to_dict(), "layers": len(rows),
                        "time_s": time_s, "time_share": time_s / self.sum_layers_s if self.sum_layers_s else math.nan})
        return out


def _row(r: Record) -> dict:
    cost, p = r.cost, r.roofline
    return {"name": r.params.get("layer"), "op": r.params.get("op"), "category": r.info.get("category"),
            "output_shape": tuple(r.info["output_shape"]) if r.info.get("output_shape") else None,
            "time_s": r.median, "cv": r.timing.cv, "n": r.timing.n,
            "flops": cost.flops if cost else None, "bytes": cost.bytes if cost else None,
            "intensity": cost.intensity if cost else None, "params": cost.params if cost else None,
            "attained_flops_per_s": p.attained_flops_per_s if p else None,
            "bound": p.bound if p else ("no cost" if cost is None else None), "level": p.level if p else None,
            "theoretical_time_s": p.theoretical_time_s if p else None, "efficiency": p.efficiency if p else None,
            "cost_source": cost.source if cost else None, "source_nodes": r.info.get("source_nodes"),
            "flops_main": (cost.breakdown or {}).get("flops_main") if cost else None,
            "kernel": r.info.get("kernel"), "uncosted": (r.info.get("uncosted") or "no formula") if cost is None else None,
            "cost_error": r.info.get("cost_error")}


def layer_tables(records: list[Record]) -> list[LayerTable]:
    """Every profiled model of a run, in run order."""
    records = final(records)
    children: dict[str, list[Record]] = {}
    for r in records:
        if r.kind.startswith("layer."):
            children.setdefault(r.info.get("parent_case"), []).append(r)
    tables = []
    for r in records:
        if r.kind.startswith("layers.") and r.measured:
            rows = [_row(layer) for layer in sorted(children.get(r.case_id, []),
                                                    key=lambda x: x.info.get("layer_index", 0))]
            frame = pd.DataFrame(rows, columns=COLUMNS)
            if len(frame):
                total = frame["time_s"].sum()
                frame["time_share"] = frame["time_s"] / total if total else math.nan
            tables.append(LayerTable(r, frame))
    return tables
