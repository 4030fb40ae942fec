"""Formulas for local response, instance and group normalisation, and for resizing
(Resize/Upsample, F.interpolate). Same conventions as ops.py; every tensor moves once.

FLOPs
- LRN over `size` neighbouring channels (window [c - floor((size-1)/2), c + ceil((size-1)/2)],
  cut at the first and last channel; torch mirrors the window for an even size, which gives
  the same total): per output element, a multiply-add per channel in its window for the
  sum of squares (2 x taps), then 4: scale by alpha/size, add bias, pow beta, divide.
- instance_norm and group_norm count as layernorm does, one normalised row per (n, group)
  (per (n, c) for instance norm): 5 per element (sum, subtract mean, square, sum, scale by
  1/std), 2 more with the affine (multiply, add), 4 per row (two divides by the row
  length, add eps, rsqrt). Params: scale and shift, 2 per channel.
- resize: d = the number of axes whose size changes. nearest costs 0 (an index per output
  element); linear reads 2^d taps and cubic 4^d taps per output element, each a weight
  multiply and an accumulate (2 FLOPs, as a multiply-add). Bilinear is linear with d = 2
  (N and C kept), trilinear d = 3. Computing the source coordinates and weights is not
  counted (it is per output row or column, not per element). An unresized tensor is a copy: 0.
"""
from __future__ import annotations

import math

from harness.cost.ops import (LAYERNORM_AFFINE_FLOPS_PER_ELEMENT, LAYERNORM_FLOPS_PER_ELEMENT,
                              LAYERNORM_FLOPS_PER_ROW, CostError, OpCost, checked_shape, dtype_bytes, is_int)

LRN_FLOPS_PER_ELEMENT = 4  # alpha/size scale, + bias, pow, divide
RESIZE_MODES = {"nearest": 1, "linear": 2, "cubic": 4}  # taps per resized axis


def lrn_window_taps(channels: int, size: int) -> int:
    """Channels summed over all C windows: sum over c of |[c - lo, c + hi] & [0, C - 1]|."""
    lo, hi = (size - 1) // 2, size // 2
    return sum(min(channels - 1, c + hi) - max(0, c - lo) + 1 for c in range(channels))


def lrn_cost(input_shape, size, *, dtype="float32") -> OpCost:
    """LRN across channels on (N, C, ...): y = x / (bias + alpha / size x sum of x^2)^beta."""
    x = checked_shape("input_shape", input_shape, min_ndim=2)
    if not is_int(size) or size <= 0:
        raise CostError(f"size: must be an int > 0, got {size!r}")
    elems = math.prod(x)
    per_position = elems // x[1]  # N x spatial positions, each a column of C channels
    flops = per_position * (2 * lrn_window_taps(x[1], size) + LRN_FLOPS_PER_ELEMENT * x[1])
    bytes_ = elems * dtype_bytes(dtype)
    return OpCost(op="lrn", output_shape=x, dtype=dtype, bytes_read=bytes_, bytes_written=bytes_, flops_main=flops)


def _rows_norm(op, x, rows, affine, dtype) -> OpCost:
    elems = math.prod(x)
    params = 2 * x[1] if affine else 0
    per_element = LAYERNORM_FLOPS_PER_ELEMENT + (LAYERNORM_AFFINE_FLOPS_PER_ELEMENT if affine else 0)
    size = dtype_bytes(dtype)
    return OpCost(op=op, output_shape=x, dtype=dtype, params=params, bytes_read=(elems + params) * size,
                  bytes_written=elems * size, flops_main=per_element * elems + LAYERNORM_FLOPS_PER_ROW * rows)


def group_norm_cost(input_shape, num_groups, *, affine=True, dtype="float32") -> OpCost:
    """GroupNorm on (N, C, ...): C/G channels and all spatial positions per normalised row."""
    x = checked_shape("input_shape", input_shape, min_ndim=2)
    if not is_int(num_groups) or num_groups <= 0:
        raise CostError(f"num_groups: must be an int > 0, got {num_groups!r}")
    if x[1] % num_groups:
        raise CostError(f"num_groups: channels {x[1]} are not divisible by num_groups {num_groups}")
    return _rows_norm("group_norm", x, x[0] * num_groups, affine, dtype)


def instance_norm_cost(input_shape, *, affine=True, dtype="float32") -> OpCost:
    """InstanceNorm on (N, C, ...): each (n, c) plane normalised on its own."""
    x = checked_shape("input_shape", input_shape, min_ndim=2)
    return _rows_norm("instance_norm", x, x[0] * x[1], affine, dtype)


def resize_cost(input_shape, output_shape, mode="nearest", *, dtype="float32") -> OpCost:
    """Resize `input_shape` to `output_shape` (same rank) by nearest, linear or cubic interpolation."""
    x = checked_shape("input_shape", input_shape, min_ndim=1)
    y = checked_shape("output_shape", output_shape, ndim=len(x))
    if mode not in RESIZE_MODES:
        raise CostError(f"mode: unknown resize mode {mode!r}; known: {', '.join(RESIZE_MODES)}")
    d = sum(a != b for a, b in zip(x, y))
    taps = RESIZE_MODES[mode] ** d
    out = math.prod(y)
    size = dtype_bytes(dtype)
    flops = 2 * taps * out if mode != "nearest" and d else 0
    return OpCost(op=f"resize_{mode}", output_shape=y, dtype=dtype, bytes_read=math.prod(x) * size,
                  bytes_written=out * size, flops_main=flops)
