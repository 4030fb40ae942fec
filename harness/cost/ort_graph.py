"""ONNX Runtime's optimized graph read beside the original one: which original nodes each
kernel it runs came from.

ONNX Runtime fuses and renames nodes: Conv+Relu -> FusedConv, MatMul(A, Transpose(B)) ->
FusedMatMul, MatMul+Add -> Reshape, Gemm, Reshape, and at level all NCHWc convs between
ReorderInput and ReorderOutput, named after a tensor and writing new tensors. Kernels are
matched to original nodes by tensor names: every optimized tensor is matched to the original
tensor holding the same values (the same name; a reorder's output or input: the tensor on
its other side; an NCHWc node's input: the data input of the original node it computes,
found from its output), then from a kernel's matched outputs the original graph is walked
back through tensors the optimized graph no longer holds (fused away) to ones it holds. A
kernel whose outputs match nothing (a Reshape or Gemm ONNX Runtime inserted) takes the
original nodes of the kernels it feeds. Reorders were inserted: they come from no node.
"""
from __future__ import annotations

import re

from harness.cost.onnx_graph import node_names

NCHWC = "com.microsoft.nchwc"
REORDERS = ("ReorderInput", "ReorderOutput")
# Ops ONNX Runtime fuses into the conv before them (activation, residual add, folded BatchNorm).
EPILOGUE = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "Tanh", "HardSwish", "Add", "Sum", "Mul",
            "BatchNormalization"}  # Mul: the scale of a BatchNorm exported as BN + Mul + Add
NCHWC_MAX_BLOCK = 16  # channels per NCHWc block: 8 (AVX2) or 16 (AVX-512)
WALK_LIMIT = 512  # original nodes one kernel may cover; a guard, far above any fusion


def _weight_signature(node, dims: dict) -> tuple | None:
    """(kernel dims, grouped or not, strides, dilations, (out, in) channels of the weight) of
    a conv-like node, from its weight's dims."""
    attrs = {a.name: a for a in node.attribute}
    w = dims.get(node.input[1]) if len(node.input) > 1 else None
    if w is None or len(w) < 3:
        return None
    spatial = len(w) - 2

    def ints(name, default):
        return tuple(attrs[name].ints) if name in attrs and attrs[name].ints else (default,) * spatial

    grouped = "group" in attrs and attrs["group"].i > 1  # NCHWc pads channels and so the group count
    return tuple(w[2:]), grouped, ints("strides", 1), ints("dilations", 1), tuple(w[:2])


def _same_conv(nchwc: tuple | None, original: tuple | None) -> bool:
    """Whether an NCHWc kernel's weight can be `original`'s padded to the vector width (8 or
    16 channels): the same kernel, strides and dilations, each channel count padded up by
    less than a block."""
    if nchwc is None or original is None:
        return True
    return nchwc[:4] == original[:4] and all(o <= p < o + NCHWC_MAX_BLOCK for p, o in zip(nchwc[4], original[4]))


class GraphMatch:
    """The original graph and ONNX Runtime's optimized graph of it, tensor by tensor."""

    def __init__(self, original, optimized):
        self.original, self.optimized = original, optimized
        self.names = node_names(original)
        g = original.graph
        self.index_of = {name: i for i, name in enumerate(self.names)}
        self.producer = {out: i for i, n in enumerate(g.node) for out in n.output if out}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(g.node):
            for t in n.input:
                self.consumers.setdefault(t, []).append(i)
        self.known = {*self.producer, *(i.name for i in g.input), *(t.name for t in g.initializer)}
        self.roots = {*(i.name for i in g.input), *(t.name for t in g.initializer)}
        self.dims = {t.name: tuple(t.dims) for t in g.initializer}
        self.opt_dims = {t.name: tuple(t.dims) for t in optimized.graph.initializer}
        # Nodes that only compute weights (Constant, ConstantOfShape, a Cast or Unsqueeze of
        # them): ONNX Runtime folds them into initializers; they are no kernel's source.
        self.constant_nodes: set[int] = set()
        constant = {t.name for t in g.initializer}
        for i, n in enumerate(g.node):
            if n.op_type in ("Constant", "ConstantOfShape") or (n.input and all(t in constant for t in n.input if t)):
                self.constant_nodes.add(i)
                constant.update(n.output)
        self.match: dict[str, str] = {}
        self._match()
        self.kept = set(self.match.values()) | self.roots | constant

    def _match(self) -> None:
        nodes = list(self.optimized.graph.node)
        g_nodes = self.original.graph.node
        match = self.match
        match.update({t: t for t in (*(i.name for i in self.optimized.graph.input),
                                *(t.name for t in self.optimized.graph.initializer)) if t in self.known})
        for node in nodes:
            for out in node.output:
                if out in self.known:
                    match[out] = out
            # A node ONNX Runtime kept under its name but rewrote (an NCHWc Concat or pool)
            # writes what the original node wrote.
            i = self.index_of.get(node.name)
            if i is not None and g_nodes[i].op_type == node.op_type:
                for out, was in zip(node.output, g_nodes[i].output):
                    if out and was:
                        match.setdefault(out, was)
            if node.op_type == "ReorderInput" and node.input and node.input[0] in match:
                match[node.output[0]] = match[node.input[0]]
        for node in nodes:
            if node.op_type == "ReorderOutput" and node.output[0] in match:
                match.setdefault(node.input[0], match[node.output[0]])
        chain = [n for n in nodes if n.domain == NCHWC and n.op_type not in REORDERS and n.output]
        # An NCHWc kernel is named after the tensor it writes ("r6_nchwc"); a BatchNorm it
        # rewrote as a 1x1 conv after the BatchNorm's output + "_bn" ("r23_bn_nchwc"), a
        # per-channel Mul or Add likewise ("_mul", "_add").
        for node in chain:
            if node.output[0] not in match:
                hint = re.sub(r"_nchwc(_token_\d+)?$", "", node.name)
                for name in (hint, re.sub(r"_(bn|mul|add)$", "", hint)):
                    if name in self.producer:
                        match[node.output[0]] = self._after_fused_activation(node, name)
                        break
        # An NCHWc chain, from its end: each node's output tells its input.
        for node in reversed(chain):
            out = node.output[0]
            main = self.main_node(node, match.get(out))
            if main is None:
                continue
            src = self.original.graph.node[main]
            if node.input and node.input[0] not in match and src.input:
                match[node.input[0]] = src.input[0]
            if len(node.input) > 3 and node.input[3] and node.input[3] not in match:
                other = self._residual_operand(match[out], main)
                if other is not None:
                    match[node.input[3]] = other

    def _after_fused_activation(self, node, tensor: str) -> str:
        """The tensor an NCHWc kernel named after `tensor` writes: `tensor`, or the output of
        the activation it fused when that activation is `tensor`'s only reader."""
        act = next((a.s.decode() for a in node.attribute if a.name == "activation"), "")
        readers = self.consumers.get(tensor, [])
        if act and len(readers) == 1 and self.original.graph.node[readers[0]].op_type == act:
            return self.original.graph.node[readers[0]].output[0]
        return tensor

    def main_node(self, node, tensor: str | None) -> int | None:
        """The original node an NCHWc kernel computes, walking back from the tensor it writes
        through the epilogue ONNX Runtime fuses into it: a Conv whose kernel, group, strides
        and dilations are the kernel's, or a BatchNormalization (else a per-channel Mul, a
        BatchNorm's scale exported on its own) it rewrote as a 1x1 conv,
        or a pool or resize of the kernel's own op type."""
        if tensor is None or tensor not in self.producer:
            return None
        want = _weight_signature(node, self.opt_dims) if node.op_type == "Conv" else None
        g = self.original.graph.node
        held = set(self.match.values()) - {tensor}
        stack, seen = [tensor], set()
        batchnorm = scale = None
        while stack and len(seen) < 16:  # conv -> bn -> add -> relu chains are 2-4 long
            t = stack.pop()
            i = self.producer.get(t)
            if i is None or i in seen:
                continue
            seen.add(i)
            n = g[i]
            if n.op_type == node.op_type and node.op_type != "Conv":
                return i
            if n.op_type == "Conv" and node.op_type == "Conv":
                if _same_conv(want, _weight_signature(n, self.dims)):
                    return i
                continue
            if n.op_type == "BatchNormalization" and batchnorm is None:
                batchnorm = i
            if n.op_type == "Mul" and scale is None:
                scale = i
            if n.op_type in EPILOGUE:
                ins = n.input[:2] if n.op_type in ("Add", "Sum", "Mul") else n.input[:1]
                stack.extend(x for x in reversed(ins) if x and x not in held)
        if node.op_type != "Conv":
            return None
        return batchnorm if batchnorm is not None else scale

    def _residual_operand(self, tensor: str, main: int) -> str | None:
        """The residual add's other operand on the path from conv `main` to `tensor`."""
        g = self.original.graph.node
        t = tensor
        for _ in range(16):
            i = self.producer.get(t)
            if i is None or i == main:
                return None
            n = g[i]
            if n.op_type in ("Add", "Sum") and len(n.input) == 2:
                ups = [self._reaches(x, main) for x in n.input]
                return n.input[1] if ups[0] else n.input[0]
            if not n.input:
                return None
            t = n.input[0]
        return None

    def _reaches(self, tensor: str, main: int) -> bool:
        for _ in range(16):
            i = self.producer.get(tensor)
            if i is None:
                return False
            if i == main:
                return True
            tensor = self.original.graph.node[i].input[0] if self.original.graph.node[i].input else ""
        return False

    def covered(self, tensors) -> list[str]:
        """The original nodes that compute `tensors` from tensors the optimized graph holds."""
        out, stack = set(), [t for t in tensors if t]
        while stack and len(out) < WALK_LIMIT:
            i = self.producer.get(stack.pop())
            if i is None or i in out or i in self.constant_nodes:
                continue
            out.add(i)
            stack.extend(t for t in self.original.graph.node[i].input if t and t not in self.kept)
        return [self.names[i] for i in sorted(out)]

    def source_nodes(self) -> dict[str, list[str]]:
        """{optimized node name: the original nodes it came from, in graph order}."""
        nodes = list(self.optimized.graph.node)
        found: dict[str, list[str]] = {}
        for node in nodes:
            if node.op_type in REORDERS and node.domain == NCHWC:
                found[node.name] = []
                continue
            found[node.name] = self.covered(self.match[o] for o in node.output if o in self.match)
        feeds: dict[str, list] = {}
        for node in nodes:
            for t in node.input:
                feeds.setdefault(t, []).append(node)
        for node in reversed(nodes):  # consumers first: an inserted Reshape before a Gemm before a Reshape
            if found[node.name] or node.op_type in REORDERS or any(o in self.match for o in node.output):
                continue
            names = {n for o in node.output if o for c in feeds.get(o, []) for n in found.get(c.name, [])}
            found[node.name] = sorted(names, key=self.index_of.get)
        return found
