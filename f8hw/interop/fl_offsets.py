"""Fit an imported graph's true FLs into the IR's ranges without changing a single integer.

A QONNX model may use FLs the IR does not allow (a weight scale 2**-9, an input scale other than
2**-8).  The integer arithmetic only depends on the requantization shifts and the residual
alignment, so every tensor t may be *relabelled* ir_fl = fl + d_t as long as each layer keeps
its shifts: a layer reading x with weight FL w_fl gets w_fl' = w_fl + e and all its outputs
d = d_x + e (a residual needs d_skip = d_x + e).  The input's d is fixed (8 - fl: the IR image is
unsigned FL 8); e is chosen as close to -d_x as the ranges allow, which keeps true labels where possible.
"""

from __future__ import annotations

from f8hw.errors import F8Error
from f8hw.ir import Graph, canonical_ref
from f8hw.nn.quant import IMAGE_FL
from f8hw.numerics import WL, TensorFormat, fl_range

__all__ = ["relabel"]


def _shifted(fmt: TensorFormat, d: int) -> TensorFormat:
    return TensorFormat(fmt.fl + d, fmt.signed, fmt.bits)


def relabel(graph: Graph) -> dict[str, int]:
    """Relabel graph in place (node outputs, w_fl); returns d (ir_fl - true fl) per tensor ref."""
    d: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "input":
            fmt = node.outputs[0]
            if fmt.signed or fmt.bits != 8:
                raise F8Error(f"node {node.name!r}: the input must be unsigned 8-bit")
            shift = IMAGE_FL - fmt.fl
        elif node.op in ("maxpool", "flatten", "avgpool_global"):
            shift = d[canonical_ref(node.inputs[0])]
        else:
            shift = _layer_shift(node, d)
            node.attrs["w_fl"] += shift - d[canonical_ref(node.inputs[0])]
        node.outputs = [_shifted(f, shift) for f in node.outputs]
        for ref in node.refs():
            d[ref] = shift
    return d


def _layer_shift(node, d: dict[str, int]) -> int:
    """d of a conv2d/linear node's outputs: d_x + e with e in every allowed interval."""
    dx = d[canonical_ref(node.inputs[0])]
    w_fl = node.attrs["w_fl"]
    lo, hi = -w_fl, WL - 1 - w_fl                       # w_fl + e in 0..7
    for f in node.outputs:
        if f.bits == 8:
            r = fl_range(f.signed)
            lo, hi = max(lo, r.start - f.fl - dx), min(hi, r.stop - 1 - f.fl - dx)
        else:
            lo = max(lo, -(f.fl + dx))                  # a 32-bit FL is non-negative
    if len(node.inputs) == 2:
        e = d[canonical_ref(node.inputs[1])] - dx
        lo, hi = max(lo, e), min(hi, e)
    if lo > hi:
        fls = ", ".join(f"{'s' if f.signed else 'u'}{f.bits} fl {f.fl}" for f in node.outputs)
        raise F8Error(f"node {node.name!r}: no relabelling fits the IR's FL ranges (weight fl {w_fl}, "
                      f"input offset {dx}, outputs {fls}{', residual' if len(node.inputs) == 2 else ''})")
    return dx + min(max(-dx, lo), hi)
