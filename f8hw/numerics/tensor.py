"""Tensor formats (INT8, INT32/INT64 raw, FP8 kinds) and the exact layer arithmetic built on them.

Every stored element has an integer form n with real value n * 2**-unit
(``TensorFormat.unit`` = fl for INT, fl + q for FP8), so a layer of any
activation x weight format pair accumulates integer forms exactly at unit
``x.unit + w.unit`` (docs/ir.md "Mixed-format layers").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from f8hw.errors import AccumulatorOverflowError, FormatError
from f8hw.numerics.fixed import (
    WL,
    dequantize,
    qrange,
    quantize,
    round_shift,
    saturate,
)
from f8hw.numerics.fp8 import (
    FORMATS,
    FP8_FL_MAX,
    FP8_FL_MIN,
    decode,
    encode,
    encode_int,
    fp8_format,
    to_integer,
)

__all__ = ["KINDS", "MIXED_ACC_BITS", "TensorFormat", "fl_range", "check_kind", "unit_exponent", "int_form",
           "requantize", "accumulator_bound", "check_accumulator", "quantize_format", "dequantize_format",
           "FL_SIGMA_CONSTANT", "FP8_SIGMA_CONSTANT", "fl_from_sigma", "fl_grid_search"]

KINDS = ("int", *FORMATS)
"""Every tensor format kind: "int" (INT8 fixed point, raw INT32/INT64) and the FP8 formats."""

MIXED_ACC_BITS = 64
"""Width of the exact accumulator of a layer with an FP8 operand (signed); INT8 x INT8 layers keep int32."""


def check_kind(kind) -> str:
    """kind if it is a known format kind, else a one-line FormatError listing them."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise FormatError(f"unknown format kind {kind!r} (known: {', '.join(KINDS)})")
    return kind


def unit_exponent(kind: str) -> int:
    """q of the integer form: 0 for INT, the FP8 format's smallest-subnormal exponent otherwise."""
    return 0 if check_kind(kind) == "int" else fp8_format(kind).q


def fl_range(signed: bool, kind: str = "int") -> range:
    """Valid fl of an 8-bit tensor: INT 0..7 signed, 0..8 unsigned; FP8 FP8_FL_MIN..FP8_FL_MAX."""
    if check_kind(kind) != "int":
        return range(FP8_FL_MIN, FP8_FL_MAX + 1)
    return range(0, WL) if signed else range(0, WL + 1)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class TensorFormat:
    """Format of a tensor: real value = v * 2**-fl, v the integer (INT) or the decoded FP8 value.

    bits is 8 (activations), 32 or 64 (raw signed accumulator of a final
    classifier; INT only).  FP8 kinds are sign-magnitude; signed=False on an
    FP8 tensor means ReLU: negatives become +0 before encoding.
    """

    fl: int
    signed: bool
    bits: int = 8
    kind: str = "int"

    def problem(self) -> str | None:
        """Why this format is invalid, or None when it is valid."""
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            return f"unknown format kind {self.kind!r} (known: {', '.join(KINDS)})"
        if self.bits == 8:
            r = fl_range(self.signed, self.kind)
            if not _is_int(self.fl) or self.fl not in r:
                what = self.kind if self.kind != "int" else "signed" if self.signed else "unsigned"
                return f"fl {self.fl!r} out of range {r.start}..{r.stop - 1} for {what} 8-bit"
            return None
        if self.bits in (32, 64):
            if self.kind != "int":
                return f"{self.kind} tensors are 8-bit, not {self.bits}-bit"
            if not self.signed:
                return f"{self.bits}-bit tensors must be signed"
            if not _is_int(self.fl) or self.fl < 0:
                return f"fl {self.fl!r} of a {self.bits}-bit tensor must be a non-negative int"
            return None
        return f"bits must be 8, 32 or 64, not {self.bits!r}"

    @property
    def unit(self) -> int:
        """Exponent of the integer form: real value = int_form * 2**-unit."""
        return self.fl + unit_exponent(self.kind)

    @property
    def qrange(self) -> tuple[int, int]:
        """Range of the integer forms of this format (INT: the stored integers)."""
        if self.kind != "int":
            hi = fp8_format(self.kind).max_int
            return (-hi if self.signed else 0, hi)
        if self.bits in (32, 64):
            return (-(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1)
        return qrange(self.signed)

    def __str__(self) -> str:
        """Short display: s8 fl6, u8 fl8, int32 fl10, e4m3 fl4, e4m3+relu fl2."""
        if self.kind != "int":
            return f"{self.kind}{'' if self.signed else '+relu'} fl{self.fl}"
        if self.bits != 8:
            return f"int{self.bits} fl{self.fl}"
        return f"{'s' if self.signed else 'u'}8 fl{self.fl}"


def int_form(stored, fmt: TensorFormat) -> np.ndarray:
    """Stored values (INT integers or FP8 codes) -> integer forms (int64) at unit fmt.unit."""
    if fmt.kind == "int":
        return np.asarray(stored, dtype=np.int64)
    return to_integer(stored, fmt.kind)


def requantize(v, fl_v: int, fmt: TensorFormat):
    """Bring exact integers v (at fl_v) to fmt: INT8 shift + RNE + saturate, FP8 RNE + saturate (codes).

    A 32/64-bit output is the raw value and requires fl_v == fmt.fl.
    """
    if fmt.bits != 8:
        if fl_v != fmt.fl:
            raise ValueError(f"{fmt.bits}-bit output needs fl {fl_v}, format has fl {fmt.fl}")
        return v
    if fmt.kind != "int":
        if not fmt.signed:
            v = np.maximum(v, 0)
        return encode_int(v, fl_v, fmt.kind, fmt.fl)
    s = fl_v - fmt.fl
    if s < -WL:  # a wide left shift: clamp first (same saturated result, no int64 overflow)
        v = np.clip(v, -(1 << WL), 1 << WL)
    return saturate(round_shift(v, s), fmt.signed)


def accumulator_bound(weight, bias, in_fmt: TensorFormat):
    """Worst-case |acc| and |acc + bias| per output channel, partial sums included (exact Python ints).

    weight: integer forms, output channel first, reduction axes after it.
    Every input of the reduction ranges over in_fmt.qrange (which holds 0, so
    zero padding is inside it).  The partial sums over any subset of the
    terms, in any order, lie in [neg, pos] where pos (neg) is the sum of the
    positive (negative) extremes of the products; max(pos, -neg) bounds every
    partial |acc| whatever the accumulation order, and the interval shifted by
    bias bounds acc + bias whether the bias is preloaded or added at the end.

    Returns (acc_bound, acc_bias_bound), object arrays of Python ints, shape (Cout,).
    """
    lo, hi = in_fmt.qrange
    w = np.asarray(weight, dtype=np.int64).reshape(len(weight), -1)
    w_pos = np.where(w > 0, w, 0).sum(axis=1).astype(object)  # exact: |w| < 2**33, K < 2**30
    w_neg = np.where(w < 0, w, 0).sum(axis=1).astype(object)
    pos = hi * w_pos + lo * w_neg
    neg = lo * w_pos + hi * w_neg
    acc = np.maximum(pos, -neg)
    b = np.zeros(len(w), object) if bias is None else np.asarray(bias, np.int64).reshape(-1).astype(object)
    acc_bias = np.maximum(np.abs(pos + b), np.abs(neg + b))
    return acc, acc_bias


def check_accumulator(node_name: str, weight, bias, in_fmt: TensorFormat, bits: int = 32, formats: str = "") -> None:
    """Raise AccumulatorOverflowError (naming the node, and the formats if given) if acc or
    acc + bias can exceed a signed bits-wide accumulator (32: the INT8 layer's, MIXED_ACC_BITS: mixed)."""
    acc, acc_bias = accumulator_bound(weight, bias, in_fmt)
    limit = 2 ** (bits - 1) - 1
    for what, bound in (("accumulator", acc), ("accumulator + bias", acc_bias)):
        worst = int(bound.max(initial=0))
        if worst > limit:
            ch = int(np.argmax(bound))
            which = f"int{bits} max {limit}" if bits == 32 and not formats else \
                f"the {bits}-bit exact accumulator{' of ' + formats if formats else ''}"
            raise AccumulatorOverflowError(
                f"node {node_name!r}: {what} can reach {worst} in output channel {ch}, exceeding {which}"
            )


# ------------------------------------------------------------ float helpers


def quantize_format(x, fmt: TensorFormat) -> np.ndarray:
    """numpy floats -> stored values of fmt (INT: int64 integers, FP8: uint8 codes).  Calibration only."""
    if fmt.kind == "int":
        return quantize(x, fmt.fl, fmt.signed)
    x = np.asarray(x, dtype=np.float64)
    return encode(x if fmt.signed else np.maximum(x, 0.0), fmt.kind, fmt.fl)


def dequantize_format(stored, fmt: TensorFormat) -> np.ndarray:
    """Stored values of fmt -> real values (float64)."""
    if fmt.kind == "int":
        return dequantize(stored, fmt.fl)
    return decode(stored, fmt.kind) * 2.0**-fmt.fl


FL_SIGMA_CONSTANT = {True: 40.0, False: 70.0}
"""Paper eq. 1: FL = floor(log2(c / sigma)), c = 40 signed, 70 unsigned."""

FP8_SIGMA_CONSTANT = {"e2m5": 2.3, "e3m4": 4.0, "e4m3": 120.0, "e5m2": 16000.0}
"""The FP8 analogue of eq. 1, fl = floor(log2(c / sigma)), fitted by ``f8hw analyze fp8`` on a Gaussian
(INT8 fitted the same way gives 40.8, the paper's 40).  The same c holds with ReLU (the sign bit stays, so
the magnitudes are distributed alike).  E4M3/E5M2 errors are flat over many scales, so their c only picks
a point of the flat optimum; heavy tails (Student-t) want a 2-3 fl smaller scale for E2M5/E3M4."""


def fl_from_sigma(sigma: float, signed: bool, kind: str = "int") -> int:
    """fl = clamp(floor(log2(c / sigma)), fl range): F8Net eq. 1 for INT, its fitted analogue for FP8.

    sigma == 0 gives the largest fl."""
    r = fl_range(signed, kind)
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    if sigma == 0:
        return r.stop - 1
    c = FL_SIGMA_CONSTANT[signed] if kind == "int" else FP8_SIGMA_CONSTANT[kind]
    fl = math.floor(math.log2(c / sigma))
    return min(max(fl, r.start), r.stop - 1)


def fl_grid_search(x, signed: bool, kind: str = "int") -> int:
    """The fl with the lowest quantization MSE on x (ties: the smallest fl)."""
    x = np.asarray(x, dtype=np.float64)
    fls = fl_range(signed, kind)
    errors = []
    for fl in fls:
        fmt = TensorFormat(fl, signed, 8, kind)
        errors.append(np.mean((dequantize_format(quantize_format(x, fmt), fmt) - x) ** 2))
    return fls.start + int(np.argmin(errors))
