"""FP8 fake quantization in torch and the per-layer format names of f8hw.nn (docs/ir.md "Flexible 8-bit formats").

The rounding is done here in float64 with torch.round (half to even), not by a
cast to torch.float8_*: a float64 -> float8 cast rounds through float32 (wrong
next to ties) and torch's e5m2 cast overflows to inf instead of saturating.
The result equals f8hw.numerics.encode + decode exactly on float32 inputs.
"""

from __future__ import annotations

import math

import torch

from f8hw.errors import FormatError
from f8hw.numerics import FORMATS, fl_from_sigma, fp8_format

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


def sigma_fl(t: torch.Tensor, signed: bool, kind: str) -> int:
    """fl of a tensor from its whole-tensor sigma (F8Net eq. 1, or its FP8 analogue)."""
    if t.numel() > 1:
        sigma = t.detach().std().item()
    else:
        sigma = abs(t.detach().item()) if t.numel() else 0.0
    return fl_from_sigma(sigma if math.isfinite(sigma) else 0.0, signed, kind)
