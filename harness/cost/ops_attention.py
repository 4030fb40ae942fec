"""Formulas for the contractions beyond matmul: Einsum and scaled dot-product attention.
Same conventions as ops.py (a multiply-add is 2 FLOPs; every tensor moves once).

einsum
- The equation is read with the input shapes ("..." broadcast as numpy does; no "->"
  means the letters seen once, in alphabetical order). Operands are contracted left to
  right, as ONNX Runtime does: a step over the union of both operands' letters, with the
  letters needed neither later nor in the output summed away, is a loop over every
  combination of those letters, one multiply-add each (macs = the product of their
  sizes); a step that sums nothing is an element-wise product, one multiply per point.
  So two operands cost 2 x the product of all index sizes. One operand: a reduction (one
  add per input point) if a letter is summed, else a transpose or diagonal, 0 FLOPs.
- Bytes: the inputs read and the output written (the intermediates of 3 or more operands
  are not counted).

attention (torch's scaled_dot_product_attention, as one fused kernel)
- Q (..., L, E), K (..., S, E), V (..., S, Ev) -> (..., L, Ev), per batch and head:
  macs = L x S x E (Q K^T) + L x S x Ev (A V); then per score (L x S): 1 for the scale,
  SOFTMAX_FLOPS_PER_ELEMENT for the softmax, 1 more with a mask or is_causal (the add of
  the mask, or the select of the causal one). flops_main = 2 x macs + those.
- Bytes: Q, K, V (and a mask, at its own size) read, the output written; the L x S score
  matrix stays inside the kernel, as in a fused (flash) kernel.
- K and V may have fewer heads than Q (grouped-query attention): each query head still
  does its own work.
"""
from __future__ import annotations

import math

from harness.cost.ops import (SOFTMAX_FLOPS_PER_ELEMENT, CostError, OpCost, broadcast_shapes, checked_shape,
                              dtype_bytes)

ELLIPSIS_LABELS = "0123456789"  # placeholders for the dims "..." stands for (never einsum letters)


def parse_einsum(equation: str, input_shapes) -> tuple[list[str], str, dict[str, int]]:
    """(one label string per operand, the output's labels, the size of every label)."""
    if not isinstance(equation, str) or not equation.strip():
        raise CostError(f"equation: must be a non-empty string, got {equation!r}")
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    shapes = [checked_shape("input_shapes", s) for s in input_shapes]
    if len(terms) != len(shapes):
        raise CostError(f"equation: {equation!r} has {len(terms)} operands, got {len(shapes)} input shapes")
    sizes: dict[str, int] = {}
    labelled, ellipsis_rank = [], 0
    for term, shape in zip(terms, shapes):
        letters = term.replace("...", "")
        if (letters and not letters.isalpha()) or term.count("...") > 1:
            raise CostError(f"equation: {term!r} is not a term of letters with at most one '...'")
        rank = len(shape) - len(letters)
        if rank < 0 or (rank and "..." not in term):
            raise CostError(f"equation: term {term!r} does not fit input shape {shape}")
        ellipsis_rank = max(ellipsis_rank, rank)
        labels = term.replace("...", ELLIPSIS_LABELS[len(ELLIPSIS_LABELS) - rank:] if rank else "")
        labelled.append(labels)
        for label, size in zip(labels, shape):
            if label in ELLIPSIS_LABELS:  # broadcast, as numpy
                if sizes.get(label, 1) not in (1, size) and size != 1:
                    raise CostError(f"equation: '...' dims do not broadcast at size {size} in {shape}")
                sizes[label] = max(sizes.get(label, 1), size)
            elif sizes.setdefault(label, size) != size:
                raise CostError(f"equation: index {label!r} is {sizes[label]} and {size} in {equation!r}")
    dots = ELLIPSIS_LABELS[len(ELLIPSIS_LABELS) - ellipsis_rank:]
    if arrow:
        out = rhs.replace("...", dots)
        unknown = [c for c in out if c not in sizes]
        if unknown or len(set(out)) != len(out):
            raise CostError(f"equation: output {rhs!r} has an index not in the inputs or repeated")
    else:
        letters = "".join(labelled)
        out = dots + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in dots))
    return labelled, out, sizes


def einsum_cost(equation: str, *input_shapes, dtype="float32") -> OpCost:
    """Einsum of any number of operands; see the module docstring for the count."""
    terms, out, sizes = parse_einsum(equation, input_shapes)
    macs = flops = 0
    current = terms[0]
    if len(terms) == 1:
        points = math.prod(sizes[c] for c in set(current))
        flops = points if set(current) - set(out) else 0
    for i, term in enumerate(terms[1:], start=1):
        letters = list(dict.fromkeys(current + term))
        keep = set(out) | set("".join(terms[i + 1:]))
        points = math.prod(sizes[c] for c in letters)
        if any(c not in keep for c in letters):
            macs += points
            flops += 2 * points
        else:
            flops += points
        current = "".join(c for c in letters if c in keep)
    output_shape = tuple(sizes[c] for c in out)
    size = dtype_bytes(dtype)
    return OpCost(op="einsum", output_shape=output_shape, dtype=dtype, macs=macs,
                  bytes_read=sum(math.prod(s) for s in input_shapes) * size,
                  bytes_written=math.prod(output_shape) * size, flops_main=flops)


def attention_cost(q_shape, k_shape, v_shape, *, mask_shape=None, causal=False, dtype="float32",
                   mask_dtype=None) -> OpCost:
    """Scaled dot-product attention softmax(Q K^T x scale [+ mask]) V; see the module docstring."""
    q = checked_shape("q_shape", q_shape, min_ndim=2)
    k = checked_shape("k_shape", k_shape, min_ndim=2)
    v = checked_shape("v_shape", v_shape, min_ndim=2)
    (l, e), (s, ek), (sv, ev) = q[-2:], k[-2:], v[-2:]
    if ek != e:
        raise CostError(f"k_shape: embedding dim {ek} of {k} does not match {e}, the last dim of q_shape {q}")
    if sv != s:
        raise CostError(f"v_shape: sequence dim {sv} of {v} does not match {s}, the key length of k_shape {k}")
    heads = math.prod(q[:-2])
    scores = heads * l * s
    masked = mask_shape is not None or causal
    mask_elems = math.prod(checked_shape("mask_shape", mask_shape)) if mask_shape is not None else 0
    if mask_shape is not None:
        broadcast_shapes("mask_shape", [q[:-2] + (l, s), tuple(mask_shape)])
    macs = scores * e + scores * ev
    size = dtype_bytes(dtype)
    output_shape = q[:-1] + (ev,)
    return OpCost(op="scaled_dot_product_attention", output_shape=output_shape, dtype=dtype, macs=macs,
                  bytes_read=(math.prod(q) + math.prod(k) + math.prod(v)) * size
                  + mask_elems * dtype_bytes(mask_dtype or dtype),
                  bytes_written=math.prod(output_shape) * size,
                  flops_main=2 * macs + scores * (1 + SOFTMAX_FLOPS_PER_ELEMENT + (1 if masked else 0)))
