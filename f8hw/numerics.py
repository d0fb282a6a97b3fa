"""The arithmetic of f8hw: the single source of truth (see docs/ir.md).

A fixed-point value is an integer q with a fractional length FL; its real
value is q / 2**FL.  Word length WL = 8 everywhere:

* signed 8-bit:   q in [-127, 127] (symmetric, -128 is never produced), FL 0..7
* unsigned 8-bit: q in [0, 255] (unsigned saturation *is* the ReLU), FL 0..8
* raw 32-bit:     the final classifier's int32 logits, not requantized

Integer inference of a conv2d/linear layer, bit for bit (golden model, ISA
simulator and RTL all compute exactly this):

    acc = sum_k x[k] * w[k]                   must fit int32 (accumulator_bound)
    v   = acc + bias  at fl_a = fl_x + w_fl   must fit int32
    v, fl_v = align_add(v, fl_a, skip, fl_skip)          optional residual
    out = saturate(round_shift(v, fl_v - out.fl), out.signed)

The accelerator's requantizer lane computes the same with its register
semantics (``requant_lane``: the SET registers' widths and clamps, the dyadic
baseline's multiplier); the ISA simulator and the RTL tests use that one model.

round_shift rounds half to even (like torch.round / numpy.round) and uses
only integer add/shift/compare: there is no float anywhere in requantize.
The integer path accepts Python ints and numpy integer arrays (int64 is used
internally; callers' int32 arrays are widened, never overflowed).

Float helpers (quantize/dequantize, FL selection) are for training and
calibration only; they never run inside the integer datapath.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from f8hw.errors import AccumulatorOverflowError

__all__ = [
    "WL", "INT32_MIN", "INT32_MAX", "ACC_BITS", "SHIFT_MIN", "SHIFT_MAX", "LSHIFT_BITS", "SHIFT_MAG_BITS",
    "MAX_LEFT_SHIFT", "qrange", "fl_range", "TensorFormat", "round_shift", "saturate", "wrap_int32", "align_add",
    "requantize", "requant_lane", "accumulator_bound", "check_accumulator", "quantize", "dequantize",
    "quantize_torch", "dequantize_torch", "FL_SIGMA_CONSTANT", "fl_from_sigma", "fl_grid_search",
]

WL = 8
"""Word length of every activation and weight."""

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
ACC_BITS = 32
"""Width of the accumulators and of the requantizer lanes' input and output (int32, wrapping)."""

SHIFT_MIN = -8
"""Most negative requantization shift (a left shift) for 8-bit outputs."""
SHIFT_MAX = 15
"""Largest requantization right shift for 8-bit outputs (unsigned fl 8 x w_fl 7 -> fl 0)."""

LSHIFT_BITS = 4
"""The lane's alignment shifts (ACC_LSHIFT, SKIP_LSHIFT) use the low 4 bits of their registers."""
SHIFT_MAG_BITS = 7
"""The lane clamps |SHIFT| to 2**7 - 1: every larger right shift of a lane value gives the same result."""
MAX_LEFT_SHIFT = 9
"""A left shift by >= 9 saturates every non-zero 8-bit result, so the lane shifts left by at most 9."""


def qrange(signed: bool) -> tuple[int, int]:
    """Integer range of an 8-bit tensor: (-127, 127) signed, (0, 255) unsigned."""
    return (-(2 ** (WL - 1) - 1), 2 ** (WL - 1) - 1) if signed else (0, 2**WL - 1)


def fl_range(signed: bool) -> range:
    """Valid fractional lengths of an 8-bit tensor: 0..7 signed, 0..8 unsigned."""
    return range(0, WL) if signed else range(0, WL + 1)


@dataclass(frozen=True)
class TensorFormat:
    """Format of an integer tensor: real value = q / 2**fl.

    bits is 8 (activations) or 32 (raw signed accumulator, final classifier only).
    """

    fl: int
    signed: bool
    bits: int = 8

    def problem(self) -> str | None:
        """Why this format is invalid, or None when it is valid."""
        if self.bits == 8:
            r = fl_range(self.signed)
            if not isinstance(self.fl, int) or self.fl not in r:
                kind = "signed" if self.signed else "unsigned"
                return f"fl {self.fl!r} out of range {r.start}..{r.stop - 1} for {kind} 8-bit"
            return None
        if self.bits == 32:
            if not self.signed:
                return "32-bit tensors must be signed"
            if not isinstance(self.fl, int) or self.fl < 0:
                return f"fl {self.fl!r} of a 32-bit tensor must be a non-negative int"
            return None
        return f"bits must be 8 or 32, not {self.bits!r}"

    @property
    def qrange(self) -> tuple[int, int]:
        """Integer range of values of this format."""
        if self.bits == 32:
            return (INT32_MIN, INT32_MAX)
        return qrange(self.signed)


# ---------------------------------------------------------------- integer path


def round_shift(v, s: int):
    """v / 2**s rounded half to even for s > 0; v * 2**(-s) for s <= 0.

    Integer-only (shift, subtract, compare).  Works on Python ints and numpy
    integer arrays (returned as int64).
    """
    s = int(s)
    if isinstance(v, np.ndarray) or isinstance(v, np.integer):
        v = np.asarray(v, dtype=np.int64)
    if s <= 0:
        return v << -s
    q = v >> s  # floor division by 2**s (arithmetic shift)
    r = v - (q << s)  # remainder in [0, 2**s)
    half = 1 << (s - 1)
    up = (r > half) | ((r == half) & ((q & 1) == 1))
    return q + up


def saturate(v, signed: bool):
    """Clamp to the 8-bit range: [-127, 127] signed, [0, 255] unsigned (= ReLU)."""
    lo, hi = qrange(signed)
    if isinstance(v, np.ndarray) or isinstance(v, np.integer):
        return np.clip(np.asarray(v, dtype=np.int64), lo, hi)
    return max(lo, min(hi, v))


def wrap_int32(v):
    """v modulo 2**32 as a signed 32-bit value (the accumulators' overflow); numpy arrays become int64."""
    if isinstance(v, np.ndarray) or isinstance(v, np.integer):
        v = np.asarray(v, dtype=np.int64)
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def align_add(a, fl_a: int, b, fl_b: int):
    """Residual add: shift both operands left to the larger FL, add.

    Returns (sum, fl).  Exact; never loses a bit.
    """
    fl = max(fl_a, fl_b)
    return round_shift(a, fl_a - fl) + round_shift(b, fl_b - fl), fl


def requantize(v, fl_v: int, fmt: TensorFormat):
    """Bring v (at fl_v) to format fmt: shift with round-half-even, then saturate.

    A 32-bit output is the raw value and requires fl_v == fmt.fl.
    """
    if fmt.bits == 32:
        if fl_v != fmt.fl:
            raise ValueError(f"32-bit output needs fl {fl_v}, format has fl {fmt.fl}")
        return v
    return saturate(round_shift(v, fl_v - fmt.fl), fmt.signed)


def requant_lane(v, skip=None, *, shift: int, out_signed: bool, raw: bool = False, skip_signed: bool = False,
                 acc_lshift: int = 0, skip_lshift: int = 0, mult: int | None = None) -> np.ndarray:
    """The requantizer lane (docs/architecture.md, COMPUTE with last = 1), bit for bit as f8hw/hw/requant.py.

    v = acc + bias (int32 values, wrapped); skip = the S bytes (uint8, v's shape) of the residual add,
    None without one.  The settings are the SET register values: shift is clamped to
    +-(2**SHIFT_MAG_BITS - 1), the alignment shifts use their low LSHIFT_BITS bits.  Returns int64:

        raw:       v (classifier logits)
        otherwise: saturate(round_shift((x << acc_lshift) + (skip << skip_lshift), shift), out_signed)

    with x = v for the shift lane (mult None) and x = v * mult for the dyadic baseline: its multiplier
    sits on the accumulator path, *before* the residual alignment (the residual is an already
    requantized 8-bit tensor that is only aligned).
    """
    v = np.asarray(v, dtype=np.int64)
    if raw:
        return v.copy()
    mag_max = (1 << SHIFT_MAG_BITS) - 1
    s = max(-MAX_LEFT_SHIFT, min(mag_max, int(shift)))
    lmask = (1 << LSHIFT_BITS) - 1
    exact = mult is not None  # v * mult is up to 64 bits, 80 after the alignment: Python integers
    if exact:
        v = v.astype(object) * int(mult)
    if skip is not None:
        sk = np.asarray(skip, dtype=np.uint8)
        sk = (sk.view(np.int8) if skip_signed else sk).astype(object if exact else np.int64)
        v = (v << (acc_lshift & lmask)) + (sk << (skip_lshift & lmask))
    if exact:
        q = [saturate(round_shift(int(x), s), out_signed) for x in v.reshape(-1)]
        return np.asarray(q, dtype=np.int64).reshape(v.shape)
    # int64 path: |v| < 2**48, so every right shift >= 49 gives 0 and one of 62 is still exact
    return saturate(round_shift(v, min(62, s)), out_signed)


def accumulator_bound(weight: np.ndarray, bias: np.ndarray | None, in_fmt: TensorFormat):
    """Worst-case |acc| and |acc + bias| per output channel, partial sums included.

    weight has the output channel first and the reduction axes after it
    (conv (Cout, Cin/g, kh, kw), linear (out, in)).  Every input of the reduction
    ranges over in_fmt's integer range (zero padding is inside that range).  The
    partial sums over any subset of the terms, in any order, lie in [neg, pos]
    where pos (neg) is the sum of the positive (negative) extremes of the
    individual products; so max(pos, -neg) bounds every partial |acc| whatever
    the hardware's accumulation order, and the same interval shifted by bias
    bounds acc + bias whether the bias is preloaded or added at the end.

    Returns (acc_bound, acc_bias_bound), int64 arrays of shape (Cout,).
    """
    lo, hi = in_fmt.qrange
    w = np.asarray(weight, dtype=np.int64).reshape(len(weight), -1)
    p_lo, p_hi = w * lo, w * hi
    pos = np.maximum(np.maximum(p_lo, p_hi), 0).sum(axis=1)
    neg = np.minimum(np.minimum(p_lo, p_hi), 0).sum(axis=1)
    acc = np.maximum(pos, -neg)
    b = np.zeros(len(w), np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    acc_bias = np.maximum(np.abs(pos + b), np.abs(neg + b))
    return acc, acc_bias


def check_accumulator(node_name: str, weight: np.ndarray, bias: np.ndarray | None, in_fmt: TensorFormat) -> None:
    """Raise AccumulatorOverflowError (naming the node) if acc or acc + bias can exceed int32."""
    acc, acc_bias = accumulator_bound(weight, bias, in_fmt)
    for what, bound in (("accumulator", acc), ("accumulator + bias", acc_bias)):
        worst = int(bound.max(initial=0))
        if worst > INT32_MAX:
            ch = int(bound.argmax())
            raise AccumulatorOverflowError(
                f"node {node_name!r}: {what} can reach {worst} in output channel {ch}, "
                f"exceeding int32 max {INT32_MAX}"
            )


# ------------------------------------------------------------ float helpers


def quantize(x, fl: int, signed: bool) -> np.ndarray:
    """numpy: clamp(round_half_even(x * 2**fl)) to the 8-bit range, as int64."""
    lo, hi = qrange(signed)
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 2.0**fl), lo, hi).astype(np.int64)


def dequantize(q, fl: int) -> np.ndarray:
    """numpy: real value q / 2**fl as float64."""
    return np.asarray(q, dtype=np.float64) / 2.0**fl


def quantize_torch(x, fl: int, signed: bool):
    """torch: clamp(torch.round(x * 2**fl)) (half to even); float tensor holding integers.

    No straight-through estimator here: training code wraps it as it needs.
    """
    import torch

    lo, hi = qrange(signed)
    return torch.clamp(torch.round(x * 2.0**fl), lo, hi)


def dequantize_torch(q, fl: int):
    """torch: real value q / 2**fl."""
    return q / 2.0**fl


FL_SIGMA_CONSTANT = {True: 40.0, False: 70.0}
"""Paper eq. 1: FL = floor(log2(c / sigma)), c = 40 signed, 70 unsigned."""


def fl_from_sigma(sigma: float, signed: bool) -> int:
    """F8Net eq. 1: clamp(floor(log2(c / sigma)), FL range); sigma == 0 gives the largest FL."""
    r = fl_range(signed)
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    if sigma == 0:
        return r.stop - 1
    fl = math.floor(math.log2(FL_SIGMA_CONSTANT[signed] / sigma))
    return min(max(fl, r.start), r.stop - 1)


def fl_grid_search(x, signed: bool) -> int:
    """The FL with the lowest quantization MSE on x (ties: the smallest FL)."""
    x = np.asarray(x, dtype=np.float64)
    errors = [np.mean((dequantize(quantize(x, fl, signed), fl) - x) ** 2) for fl in fl_range(signed)]
    return int(np.argmin(errors))
