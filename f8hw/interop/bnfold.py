"""BatchNormalization between a layer and its output Quant, folded into the layer's integer weights.

y = a * v + c per channel (a = gamma / sqrt(var + eps), c = beta - mean * a) on the accumulator v.
The fold is exact when every a * w is an integer in [-127, 127] at the weight FL and the folded bias is
an integer (a per-channel power-of-two a, for instance); otherwise the folded weights are rounded at
the finest FL that fits them, the import is marked inexact and a note says so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from f8hw.interop.values import Const, Pending, QonnxImportError
from f8hw.numerics import INT32_MAX, INT32_MIN, WL

__all__ = ["fold_batchnorm"]


def _consts(node, ins) -> list[np.ndarray]:
    out = []
    for c in ins[1:5]:
        if not isinstance(c, Const) or c.quantized:
            raise QonnxImportError(f"node {node.name!r}: BatchNormalization parameters must be float constants")
        out.append(np.asarray(c.values, np.float64).reshape(-1))
    return out


def fold_batchnorm(st, node, ins, attrs):
    """Fold the BN into the Pending layer accumulator it reads (see the module docstring)."""
    p = ins[0]
    if not isinstance(p, Pending) or p.kind != "layer" or p.skip is not None or p.relu or "bn" in p.folded:
        raise QonnxImportError(f"node {node.name!r}: BatchNormalization is folded only directly after a conv/linear "
                               f"(before its ReLU, residual add and output Quant)")
    st.before_fold(node, p)
    gamma, beta, mean, var = _consts(node, ins)
    a = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    c = beta - mean * a
    ir = p.node
    w_fl, fl_x = ir.attrs["w_fl"], p.fl_v - ir.attrs["w_fl"]
    shape = (-1,) + (1,) * (ir.weight.ndim - 1)
    w_real = a.reshape(shape) * ir.weight.astype(np.float64) * 2.0**-w_fl
    b_real = a * ir.bias.astype(np.float64) * 2.0**-p.fl_v + c
    peak = float(np.abs(w_real).max()) if w_real.size else 0.0
    new_fl = w_fl if peak == 0 else int(np.floor(np.log2(127 / peak)))
    new_fl = min(new_fl, WL - 1 + 8)           # fl_offsets relabels the rest into the IR's range
    w_q = np.round(w_real * 2.0**new_fl)
    fl_a = fl_x + new_fl
    b_q = np.round(b_real * 2.0**fl_a)
    exact = np.array_equal(w_q * 2.0**-new_fl, w_real) and np.array_equal(b_q * 2.0**-fl_a, b_real)
    if np.abs(w_q).max(initial=0) > 127 or b_q.size and (b_q.min() < INT32_MIN or b_q.max() > INT32_MAX):
        raise QonnxImportError(f"node {node.name!r}: the folded weights or bias do not fit 8/32 bits")
    ir.weight, ir.bias, ir.attrs["w_fl"] = w_q.astype(np.int8), b_q.astype(np.int32), new_fl
    if not exact:
        st.inexact = True
        st.notes.append(f"{node.name}: BatchNormalization folded into {p.onnx} with rounding (weights at fl "
                        f"{new_fl}): not bit-exact with the QONNX graph")
    return replace(p, fl_v=fl_a, folded=p.folded | {"bn"})
