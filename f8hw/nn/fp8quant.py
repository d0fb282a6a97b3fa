"""FP8 fake quantization in torch and the per-layer format names of f8hw.nn (docs/ir.md "Flexible 8-bit formats").

The rounding is done here in float64 with torch.round (half to even), not by a
cast to torch.float8_*: a float64 -> float8 cast rounds through float32 (wrong
next to ties) and torch's e5m2 cast overflows to inf instead of saturating.
The result equals f8hw.numerics.encode + decode exactly on float32 inputs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from f8hw.errors import FormatError
from f8hw.numerics import FORMATS, TensorFormat, dequantize_format, fl_from_sigma, fl_range, fp8_format, quantize_format

FORMAT_NAMES = ("int8", *FORMATS)
"""Names a layer format can take: "int8" (F8Net fixed point, the default) and the FP8 formats."""


def format_kind(name, where: str = "") -> str:
    """The tensor kind of a format name ("int8" -> "int"); a one-line FormatError names where and the name."""
    if name == "int8":
        return "int"
    if isinstance(name, str) and name in FORMATS:
        return name
    at = f"{where}: " if where else ""
    raise FormatError(f"{at}unknown format {name!r} (known: {', '.join(FORMAT_NAMES)})")


def format_name(kind: str) -> str:
    """Inverse of format_kind: "int" -> "int8"."""
    return "int8" if kind == "int" else kind


def fp8_round(x: torch.Tensor, kind: str, fl: int) -> torch.Tensor:
    """x -> the nearest value of kind at scale fl (real = value * 2**-fl), float64: RNE, saturating, never -0."""
    fmt = fp8_format(kind)
    y = x.detach().to(torch.float64) * 2.0**fl
    if torch.isnan(y).any():
        raise FormatError(f"cannot encode NaN as {kind}")
    a = torch.clamp(y.abs(), max=fmt.max_value)
    _, e = torch.frexp(a)  # a in [2**(e-1), 2**e)
    ulp = torch.exp2(torch.clamp(e - 1 - fmt.man_bits, min=-fmt.q).to(torch.float64))
    n = torch.clamp(torch.round(a / ulp) * ulp, max=fmt.max_value)
    n = torch.where(y < 0, -n, n) + 0.0  # + 0.0 turns -0 into +0
    return n * 2.0**-fl


class _Fp8Quant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kind: str, fl: int):
        ctx.save_for_backward(x.abs() * 2.0**fl < fp8_format(kind).max_value)
        return fp8_round(x, kind, fl).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


def fp8_quant(x: torch.Tensor, kind: str, fl: int) -> torch.Tensor:
    """FP8 fake quantization onto kind's grid at scale fl; straight-through gradient, zero where saturated."""
    return _Fp8Quant.apply(x, kind, fl)


FLAT_TOLERANCE = 0.01
"""An FP8 scale is the smallest fl whose MSE is within 1 % of the best (see QAT_SIGMA_CONSTANT)."""

QAT_SIGMA_CONSTANT = {"e2m5": 3.0, "e3m4": 3.0, "e4m3": 0.1875, "e5m2": 1.5 * 2.0**-11}
"""c of fl = floor(log2(c / sigma)) for FP8 in QAT: the low end of the flat optimum on a Gaussian (the
smallest fl within FLAT_TOLERANCE of the least MSE: 1, 1, -3, -11 at sigma 1, signed or ReLU; the test
re-derives it).  numerics.FP8_SIGMA_CONSTANT picks a point higher up the flat E4M3/E5M2 optimum, whose
integer units (fl + q) overflow the 64-bit accumulator of an E5M2 x E5M2 layer; the low end keeps
them small at the same error."""


def scale_fl(sigma: float, signed: bool, kind: str) -> int:
    """fl from a sigma: F8Net eq. 1 for INT8, QAT_SIGMA_CONSTANT for FP8 (clamped; sigma 0: largest fl)."""
    if kind == "int":
        return fl_from_sigma(sigma, signed)
    r = fl_range(signed, kind)
    if sigma == 0:
        return r.stop - 1
    return min(max(math.floor(math.log2(QAT_SIGMA_CONSTANT[kind] / sigma)), r.start), r.stop - 1)


def flat_grid_fl(x: np.ndarray, signed: bool, kind: str) -> int:
    """The smallest fl whose quantization MSE on x is within FLAT_TOLERANCE of the least one."""
    x = np.asarray(x, dtype=np.float64)
    fls = fl_range(signed, kind)
    err = np.array([np.mean((dequantize_format(quantize_format(x, f), f) - x) ** 2)
                    for f in (TensorFormat(fl, signed, 8, kind) for fl in fls)])
    return fls.start + int(np.flatnonzero(err <= err.min() * (1 + FLAT_TOLERANCE))[0])


def sigma_fl(t: torch.Tensor, signed: bool, kind: str) -> int:
    """fl of a tensor from its whole-tensor sigma (scale_fl)."""
    if t.numel() > 1:
        sigma = t.detach().std().item()
    else:
        sigma = abs(t.detach().item()) if t.numel() else 0.0
    return scale_fl(sigma if math.isfinite(sigma) else 0.0, signed, kind)
