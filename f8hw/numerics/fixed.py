"""INT8 fixed point: the integer rounding rule and the INT8 float helpers.

A fixed-point value is an integer q with a fractional length FL; its real
value is q / 2**FL.  round_shift (round half to even, integer-only) is the
one rounding rule of every integer path, INT8 and FP8 requantization alike.
"""

from __future__ import annotations

__all__ = ["WL", "INT32_MIN", "INT32_MAX", "SHIFT_MIN", "SHIFT_MAX", "qrange", "round_shift", "saturate",
           "align_add", "quantize", "dequantize", "quantize_torch", "dequantize_torch"]

import numpy as np

WL = 8
"""Word length of every activation and weight."""

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

SHIFT_MIN = -8
"""Most negative requantization shift (a left shift) for 8-bit outputs."""
SHIFT_MAX = 15
"""Largest requantization right shift for 8-bit outputs (unsigned fl 8 x w_fl 7 -> fl 0)."""


def qrange(signed: bool) -> tuple[int, int]:
    """Integer range of an 8-bit tensor: (-127, 127) signed, (0, 255) unsigned."""
    return (-(2 ** (WL - 1) - 1), 2 ** (WL - 1) - 1) if signed else (0, 2**WL - 1)


# ---------------------------------------------------------------- integer path


def round_shift(v, s: int):
    """v / 2**s rounded half to even for s > 0; v * 2**(-s) for s <= 0.

    Integer-only (shift, subtract, compare).  Works on Python ints and numpy
    integer arrays (returned as int64; exact for every s >= 0, a left shift
    must not leave int64).
    """
    s = int(s)
    if isinstance(v, np.ndarray) or isinstance(v, np.integer):
        v = np.asarray(v, dtype=np.int64)
        if s >= 64:  # |v| <= 2**63 <= 2**(s-1): rounds to 0 (a tie goes to the even 0)
            return np.zeros_like(v)
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


def align_add(a, fl_a: int, b, fl_b: int):
    """Residual add: shift both operands left to the larger FL, add.

    Returns (sum, fl).  Exact; never loses a bit.
    """
    fl = max(fl_a, fl_b)
    return round_shift(a, fl_a - fl) + round_shift(b, fl_b - fl), fl


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
