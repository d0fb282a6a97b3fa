"""Golden model: integer-only numpy executor of an f8hw Graph.

This is the reference the ISA simulator and the RTL are checked against, bit
for bit.  All arithmetic is numpy int64 (no float): FP8 codes are turned into
their integer forms, conv2d is im2col plus an integer matmul, requantization
is f8hw.numerics.requantize (INT8 round_shift + saturate, FP8 encode_int).
Every accumulator of an INT8 x INT8 layer is checked against int32 at run
time in addition to the static proof in Graph.validate(); layers with an FP8
operand rely on that proof (every partial sum fits MIXED_ACC_BITS = 64, so int64
numpy is exact).
"""

from __future__ import annotations

import numpy as np

from f8hw.errors import AccumulatorOverflowError, F8Error
from f8hw.ir import Graph, Node, canonical_ref, weight_format
from f8hw.numerics import (
    INT32_MAX,
    INT32_MIN,
    align_add,
    encode_int,
    int_form,
    requantize,
)


class GoldenInputError(F8Error):
    """The images given to the golden model do not fit the graph's input."""


def conv2d_acc(x: np.ndarray, weight: np.ndarray, stride, padding, groups: int) -> np.ndarray:
    """Exact integer conv2d accumulators (no bias), int64 (N, Cout, Ho, Wo), zero padding."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(weight, dtype=np.int64)
    n, c, _, _ = x.shape
    cout, cg, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    ho, wo = win.shape[2], win.shape[3]
    # (N, G, Cg, Ho, Wo, kh, kw) -> (N, G, Ho*Wo, Cg*kh*kw)
    cols = win.reshape(n, groups, cg, ho, wo, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6)
    cols = cols.reshape(n, groups, ho * wo, cg * kh * kw)
    # weight (G, Cg*kh*kw, Cout/G)
    wm = w.reshape(groups, cout // groups, cg * kh * kw).transpose(0, 2, 1)
    acc = np.matmul(cols, wm)  # (N, G, Ho*Wo, Cout/G)
    return acc.transpose(0, 1, 3, 2).reshape(n, cout, ho, wo)


def linear_acc(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Exact integer linear accumulators (no bias), int64 (N, out)."""
    return np.asarray(x, dtype=np.int64) @ np.asarray(weight, dtype=np.int64).T


def maxpool(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Max pool; padding never wins (it acts as -inf)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    low = np.iinfo(np.int64).min
    xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=low)
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return win.max(axis=(4, 5))


def _check_int32(node: Node, what: str, v: np.ndarray) -> None:
    if v.size and (v.min() < INT32_MIN or v.max() > INT32_MAX):
        raise AccumulatorOverflowError(
            f"node {node.name!r}: {what} reached [{int(v.min())}, {int(v.max())}], outside int32"
        )


def _layer(node: Node, graph: Graph, t: dict[str, np.ndarray]) -> np.ndarray | list[np.ndarray]:
    fx = graph.format(node.inputs[0])
    stored = t[canonical_ref(node.inputs[0])]
    x = int_form(stored, fx)
    a = node.attrs
    if node.op in ("conv2d", "linear"):
        fw = weight_format(node)
        w = int_form(node.weight, fw)
        if node.op == "conv2d":
            acc = conv2d_acc(x, w, a["stride"], a["padding"], a["groups"])
            bias = np.asarray(node.bias, np.int64).reshape(1, -1, 1, 1)
        else:
            acc = linear_acc(x, w)
            bias = np.asarray(node.bias, np.int64).reshape(1, -1)
        int_layer = fx.kind == fw.kind == "int"
        if int_layer:
            _check_int32(node, "accumulator", acc)
        v = acc + bias
        if int_layer:
            _check_int32(node, "accumulator + bias", v)
        fl_v = fx.unit + fw.unit
        if len(node.inputs) == 2:
            fs = graph.format(node.inputs[1])
            v, fl_v = align_add(v, fl_v, int_form(t[canonical_ref(node.inputs[1])], fs), fs.unit)
        return [requantize(v, fl_v, f) for f in node.outputs]
    if node.op == "maxpool":
        m = maxpool(x, a["kernel"], a["stride"], a["padding"])  # compares integer forms
        return m if fx.kind == "int" else encode_int(m, fx.unit, fx.kind, fx.fl)  # exact: back to the codes
    if node.op == "avgpool_global":
        v = x.sum(axis=(2, 3), keepdims=True)
        return [requantize(v, fx.unit + a["shift"], f) for f in node.outputs]
    if node.op == "flatten":
        return stored.reshape(len(stored), -1)
    raise AssertionError(f"unhandled op {node.op}")  # validate() rejects unknown ops


def run(graph: Graph, images: np.ndarray) -> dict[str, np.ndarray]:
    """Run the graph on uint8 images (N, C, H, W).

    Returns every tensor by canonical ref ("node" or "node:k"), including the
    input: int32 arrays of the stored values (INT8 integers, FP8 codes 0..255,
    32-bit logits), int64 for a 64-bit output.
    """
    graph.validate()
    inp = graph.input_node
    want = tuple(inp.attrs["shape"])
    if not isinstance(images, np.ndarray):
        raise GoldenInputError(f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise GoldenInputError(f"images must be uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[1:] != want:
        raise GoldenInputError(f"images must have shape (N, {', '.join(map(str, want))}), got {images.shape}")
    t: dict[str, np.ndarray] = {inp.name: images.astype(np.int64)}
    for node in graph.nodes:
        if node.op == "input":
            continue
        out = _layer(node, graph, t)
        if isinstance(out, list):
            for ref, arr in zip(node.refs(), out):
                t[ref] = arr
        else:
            t[node.refs()[0]] = out
    fmts = {ref: f for n in graph.nodes for ref, f in zip(n.refs(), n.outputs)}
    return {ref: arr.astype(np.int64 if fmts[ref].bits == 64 else np.int32) for ref, arr in t.items()}


def classify(graph: Graph, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, K): the graph output flattened per image, predictions (N,): their argmax).

    The output must be an INT tensor (FP8 codes do not order like their values)."""
    if graph.format(graph.output).kind != "int":
        raise F8Error(f"node {graph.output!r}: the graph output is {graph.format(graph.output)}; "
                      f"classify needs an INT output")
    logits = run(graph, images)[graph.output].reshape(len(images), -1)
    return logits, logits.argmax(axis=1)
