"""The throttle table: clock frequency by busy cores and instruction-set level.

Shaped like the first source document's table of the Intel Core i9-10980XE (rows: busy
cores; columns: ISA level; cells: MHz), with each cell's change from the 1-core figure of
its column.
"""
from __future__ import annotations

import pandas as pd

from harness.core.isa import LOAD_LEVELS
from harness.core.records import Record, final


COLUMNS = ["busy_cores", "isa", "mhz", "mhz_low", "mhz_high", "mhz_ci_low", "mhz_ci_high", "samples", "status"]


def throttle_cells(records: list[Record]) -> pd.DataFrame:
    """One row per cell: busy cores, ISA level, median MHz, the range of the busy cores' medians
    (low, high), the 95% confidence interval of the median over every clock sample of the cell
    (where the record has it), clock samples per core, status."""
    rows = []
    for r in final(records):
        if r.kind != "probe.throttle" or not r.measured:
            continue
        per_core = r.metrics.get("ghz_per_core") or []
        ci = r.metrics.get("ghz_ci95") or [None, None]
        rows.append({"busy_cores": r.threads, "isa": r.params["isa"], "mhz": 1000 * r.metrics["ghz"],
                     "mhz_low": 1000 * min(per_core) if per_core else None,
                     "mhz_high": 1000 * max(per_core) if per_core else None,
                     "mhz_ci_low": 1000 * ci[0] if ci[0] else None, "mhz_ci_high": 1000 * ci[1] if ci[1] else None,
                     "samples": r.metrics.get("samples_per_core"), "status": r.status})
    return pd.DataFrame(rows, columns=COLUMNS)


def throttle_table(records: list[Record]) -> pd.DataFrame:
    """DataFrame: index busy cores, columns ISA level (lightest first), values MHz."""
    cells = throttle_cells(records)
    if cells.empty:
        return pd.DataFrame()
    frame = cells.pivot_table(index="busy_cores", columns="isa", values="mhz")
    return frame[[c for c in LOAD_LEVELS if c in frame.columns]]
