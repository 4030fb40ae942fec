"""How a convolution is written, in `harness conv`'s output and in every report of conv
records: the cost model's breakdown (MACs, FLOPs, parameters, bytes per tensor, intensity),
the path each backend took, and one row per backend x thread count.

Units are decimal SI (1 kB = 1e3 bytes); a multiply-add counts 2 FLOPs; intensity is true
FLOPs per byte (the first source document prints MFLOPs per MiB, 1.048576 times larger).
"""
from __future__ import annotations

from harness.core.records import Record
from harness.core.text import cut, fmt_pct, fmt_si, fmt_time
from harness.cost.ops import conv2d_cost, dtype_bytes
from harness.presentation.console import noisy_cv, roof_cell

RESULT_HEADERS = ["backend", "threads", "status", "median", "CV", "FLOP/s", "B/s", "roofline time", "of roofline",
                  "faults/call", "path"]
RESULT_NUMERIC = {1, 3, 4, 5, 6, 7, 9}


def conv_cost(shape: dict, dtype: str):
    """The cost model's figures for a conv given as n, ic, h, w, oc, kh, kw, stride, pad,
    dilation, groups, bias."""
    s = shape
    return conv2d_cost((s["n"], s["ic"], s["h"], s["w"]), s["oc"], (s["kh"], s["kw"]), s["stride"], s["pad"],
                       s["dilation"], s["groups"], bias=s.get("bias", False), dtype=dtype)


def conv_title(shape: dict, dtype: str) -> str:
    s, cost = shape, conv_cost(shape, dtype)
    n, oc, oh, ow = cost.output_shape
    return (f"conv {s['n']}x{s['ic']}x{s['h']}x{s['w']} -> {n}x{oc}x{oh}x{ow}, kernel {s['kh']}x{s['kw']}, "
            f"stride {s['stride']}, pad {s['pad']}, dilation {s['dilation']}, groups {s['groups']}, "
            f"{'bias, ' if s.get('bias') else ''}{dtype}")


def conv_breakdown(shape: dict, dtype: str) -> list[tuple[str, str]]:
    """(figure, value with how it is counted) for the cost model's view of the conv."""
    s, cost = shape, conv_cost(shape, dtype)
    input_bytes = s["n"] * s["ic"] * s["h"] * s["w"] * dtype_bytes(dtype)
    weight_bytes = cost.bytes_read - input_bytes  # weights and bias
    return [
        ("MACs", f"{fmt_si(cost.macs, '', 4)} multiply-adds"),
        ("FLOPs", f"{fmt_si(cost.flops, 'FLOP', 4)} (a multiply-add = 2)"),
        ("parameters", fmt_si(cost.params, "", 4)),
        ("bytes", f"{fmt_si(cost.bytes, 'B', 4)} (input {fmt_si(input_bytes, 'B', 4)}, weights "
                  f"{fmt_si(weight_bytes, 'B', 4)}, output {fmt_si(cost.bytes_written, 'B', 4)}; each moved once)"),
        ("intensity", f"{cost.intensity:.4g} FLOP/B (true FLOPs per byte; the first source document's "
                      f"MFLOPs/MiB is x 1.048576 = {cost.intensity * 1.048576:.4g})"),
    ]


def conv_cost_lines(shape: dict, dtype: str) -> list[str]:
    """The breakdown as `harness conv` prints it."""
    return [conv_title(shape, dtype)] + [f"  {name:<11}{value}" for name, value in conv_breakdown(shape, dtype)]


def record_shape(record: Record) -> dict | None:
    """The conv a record ran (the shape its kernel resolved, defaults filled in)."""
    return (record.info or {}).get("conv")


def path_of(record: Record) -> str:
    """The backend's path as the record names it: torch's conv algorithm, ONNX Runtime's kernels."""
    backend = (record.info or {}).get("backend") or {}
    return backend.get("conv_backend") or " -> ".join(n.split(":")[-1] for n in backend.get("optimized_graph", []))


def result_row(record: Record) -> list[str]:
    head = [record.params.get("backend", record.kind), str(record.threads)]
    if not record.measured:
        return head + [record.status, "", "", "", "", "", "", "", cut(record.reason, 90)]
    t, p = record.timing, record.roofline
    return head + [record.status, fmt_time(t.median), noisy_cv(record),
                   fmt_si(record.metrics.get("flops_per_s"), "FLOP/s"), fmt_si(record.metrics.get("bytes_per_s"), "B/s"),
                   fmt_time(p.theoretical_time_s) if p else "-", roof_cell(record) or "-",
                   f"{record.faults.minor_per_call:.3g}", path_of(record)]
