"""The throttle table: clock frequency by busy cores and instruction-set level.

Shaped like the first source document's 10980XE table (rows: busy cores; columns: ISA
level; cells: MHz), with each cell's drop from the 1-core figure of its column.
"""
from __future__ import annotations

from harness import conditions
from harness.suite import Suite, parse_suite

# Column order, lightest load first; "none" is the document's "Normal" (integer adds only).
LEVEL_ORDER = ["none", "scalar", "sse", "avx2", "avx512", "neon"]


def throttle_suite(levels: list[str], max_cores: int | None = None, seconds: float = 0.3,
                   dtype: str = "float32", budget: float = 1.0) -> Suite:
    """One probe.throttle case per (busy cores, level), 1..max_cores cores."""
    allowed = conditions.available_cpus()
    max_cores = max_cores or len(allowed)
    cases = [{"id": f"throttle-{level}", "kind": "probe.throttle",
              "params": {"isa": level, "dtype": dtype, "seconds": seconds},
              "threads": f"1..{max_cores}"} for level in levels]
    data = {"name": "throttle",
            "description": "clock frequency by busy cores and ISA level",
            "defaults": {"budget": budget, "min_samples": 3, "warmup_max": 0.5, "timeout": 120},
            "cases": cases}
    return parse_suite(data, "throttle", allowed)


def throttle_table(records: list[dict]):
    """DataFrame: index busy cores, columns ISA level, values MHz (median over cores)."""
    import pandas as pd

    rows = [{"busy_cores": r["threads"], "isa": r["params"]["isa"], "mhz": 1000 * r["metrics"]["ghz"]}
            for r in records if r.get("kind") == "probe.throttle" and r.get("status") == "ok"]
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).pivot_table(index="busy_cores", columns="isa", values="mhz")
    return table[[c for c in LEVEL_ORDER if c in table.columns]]


def format_throttle_table(table, hypervisor: bool = False) -> str:
    if table.empty:
        return "no throttle measurements"
    headers = ["busy cores"] + [("Normal (none)" if c == "none" else c.upper()) for c in table.columns]
    lines = []
    widths = [max(len(h), 16) for h in headers]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    first = table.iloc[0]
    for cores, row in table.iterrows():
        cells = [str(cores)]
        for col in table.columns:
            mhz = row[col]
            drop = 100.0 * (first[col] - mhz) / first[col]
            cells.append(f"{mhz:.0f} MHz" + ("" if cores == table.index[0] else f" ({-drop:+.1f}%)"))
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    lines.append("")
    lines.append("Cells: median core clock from a dependent add chain run on each busy core right after "
                 "a burst at that level; (%) is the change from the 1-core figure of the column.")
    if hypervisor:
        lines.append("This machine is a VM: the guest sees the clock its vCPU runs at, but the host may "
                     "share the physical cores and change their clock for reasons the guest cannot see.")
    return "\n".join(lines)
