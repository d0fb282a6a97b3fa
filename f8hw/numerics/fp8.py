"""The 8-bit floating-point formats E2M5, E3M4, E4M3, E5M2 (docs/ir.md "FP8 formats").

A code is sign | E exponent bits | M mantissa bits.  Every finite value is
n * 2**-q exactly, with n = significand << exponent an integer (the
*integer form*) and q = bias - 1 + M the format's fixed unit exponent: the
golden model and the hardware compute on (significand, exponent) pairs and
integer forms only.  With a per-tensor scale fl, real value = value * 2**-fl.

Two encoders that agree bit for bit (tests check them against torch and
ml_dtypes): ``encode`` (numpy float, for calibration and training only) and
``encode_int`` (an exact integer at a fixed-point scale, integer-only: the
requantizer of the golden model).  Both round to nearest, ties to even,
saturate to the largest finite value and never produce -0, NaN or Inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from f8hw.errors import FormatError
from f8hw.numerics.fixed import round_shift

__all__ = ["Fp8Format", "FORMATS", "FP8_FL_MIN", "FP8_FL_MAX", "fp8_format", "finite_mask", "split", "to_integer",
           "decode", "code_table", "encode", "encode_int", "encode_integer_form"]

FP8_FL_MIN = -16
"""Smallest per-tensor scale fl of an FP8 tensor (real = value * 2**-fl)."""
FP8_FL_MAX = 31
"""Largest per-tensor scale fl of an FP8 tensor."""


@dataclass(frozen=True)
class Fp8Format:
    """One FP8 format: field widths, exponent bias, and the exponent fields that are Inf/NaN (not values)."""

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    special: tuple  # (exponent field, mantissa fields) pairs that are NaN/Inf codes

    @property
    def q(self) -> int:
        """Unit exponent: every finite value is an integer multiple of 2**-q (the smallest subnormal)."""
        return self.bias - 1 + self.man_bits

    @cached_property
    def max_code(self) -> int:
        """Positive code of the largest finite value."""
        return int(np.flatnonzero(finite_mask(self)[:128])[-1])

    @cached_property
    def max_exponent(self) -> int:
        """Exponent of the largest finite value's integer form (significand << exponent)."""
        return max((self.max_code >> self.man_bits) - 1, 0)

    @cached_property
    def max_int(self) -> int:
        """Integer form of the largest finite value."""
        return int(to_integer(np.array([self.max_code]), self)[0])

    @property
    def max_value(self) -> float:
        """Largest finite value (before the per-tensor scale)."""
        return self.max_int * 2.0**-self.q


FORMATS = {
    "e2m5": Fp8Format("e2m5", 2, 5, 1, ()),
    "e3m4": Fp8Format("e3m4", 3, 4, 3, ((7, tuple(range(16))),)),
    "e4m3": Fp8Format("e4m3", 4, 3, 7, ((15, (7,)),)),
    "e5m2": Fp8Format("e5m2", 5, 2, 15, ((31, (0, 1, 2, 3)),)),
}
"""The FP8 formats by name: E2M5 all finite (bias 1), E3M4 = ml_dtypes float8_e3m4 (IEEE specials),
E4M3 = OCP e4m3fn (only S.1111.111 is NaN), E5M2 = OCP (exponent field 31 is Inf/NaN)."""


def fp8_format(name) -> Fp8Format:
    """The FP8 format called name; a one-line FormatError lists the known names."""
    fmt = FORMATS.get(name) if isinstance(name, str) else None
    if fmt is None:
        raise FormatError(f"unknown FP8 format {name!r} (known: {', '.join(FORMATS)})")
    return fmt


def _as_format(fmt) -> Fp8Format:
    return fmt if isinstance(fmt, Fp8Format) else fp8_format(fmt)


@cache
def _finite(fmt: Fp8Format) -> np.ndarray:
    ok = np.ones(256, bool)
    for e, mans in fmt.special:
        for m in mans:
            code = (e << fmt.man_bits) | m
            ok[code] = ok[code | 0x80] = False
    ok.setflags(write=False)
    return ok


def finite_mask(fmt) -> np.ndarray:
    """(256,) bool: which codes are finite values (the others are NaN/Inf and invalid in f8hw)."""
    return _finite(_as_format(fmt))


def split(codes, fmt) -> tuple[np.ndarray, np.ndarray]:
    """Codes -> (signed significand, exponent), int64: value = significand * 2**(exponent - q).

    This is what the hardware decodes: the significand has M+1 bits (the hidden
    one of normals included) and a sign; -0 decodes to significand 0.
    Raises FormatError on a NaN/Inf code.
    """
    fmt = _as_format(fmt)
    c = np.asarray(codes, dtype=np.int64)
    if c.size and (c.min() < 0 or c.max() > 255):
        raise FormatError(f"{fmt.name} codes must lie in 0..255")
    bad = ~_finite(fmt)[c]
    if bad.any():
        raise FormatError(f"code 0x{int(c[bad].flat[0]):02x} is not a finite {fmt.name} value (NaN/Inf)")
    mag = c & 0x7F
    e = mag >> fmt.man_bits
    sig = (mag & ((1 << fmt.man_bits) - 1)) + np.where(e > 0, 1 << fmt.man_bits, 0)
    return np.where(c & 0x80, -sig, sig), np.maximum(e - 1, 0)


def to_integer(codes, fmt) -> np.ndarray:
    """Codes -> integer forms n (int64): value = n * 2**-q exactly."""
    sig, exp = split(codes, fmt)
    return sig << exp


def decode(codes, fmt) -> np.ndarray:
    """Codes -> values as float64 (exact; before the per-tensor scale).  Not for the golden path."""
    fmt = _as_format(fmt)
    return to_integer(codes, fmt).astype(np.float64) * 2.0**-fmt.q


def code_table(fmt) -> np.ndarray:
    """Exhaustive (256,) float64 table: the value of every code, NaN for the NaN/Inf codes."""
    fmt = _as_format(fmt)
    ok = _finite(fmt)
    out = np.full(256, np.nan)
    out[ok] = decode(np.flatnonzero(ok), fmt)
    return out


@cache
def _positive_ints(fmt: Fp8Format) -> np.ndarray:
    """Integer forms of the finite positive codes 0..max_code (increasing with the code)."""
    return to_integer(np.arange(fmt.max_code + 1), fmt)


def _codes_from_ints(n: np.ndarray, fmt: Fp8Format) -> np.ndarray:
    """Representable integer forms (any sign) -> codes; 0 -> the +0 code."""
    mag = np.searchsorted(_positive_ints(fmt), np.abs(n))
    return (mag | np.where(n < 0, 0x80, 0)).astype(np.uint8)


def encode(x, fmt, fl: int) -> np.ndarray:
    """numpy floats -> uint8 codes of x * 2**fl: RNE, saturate (+-inf too), +0 for zero.

    For calibration/training only; raises FormatError on NaN.
    """
    fmt = _as_format(fmt)
    y = np.asarray(x, dtype=np.float64) * 2.0**fl
    if np.isnan(y).any():
        raise FormatError(f"cannot encode NaN as {fmt.name}")
    a = np.minimum(np.abs(y), fmt.max_value)
    _, e = np.frexp(a)  # a in [2**(e-1), 2**e)
    ulp = np.exp2(np.maximum(e - 1 - fmt.man_bits, -fmt.q).astype(np.float64))
    n = np.round(a / ulp) * ulp * 2.0**fmt.q  # exact: the rounded value in units of 2**-q
    n = np.minimum(n, fmt.max_int).astype(np.int64)
    return _codes_from_ints(np.where(y < 0, -n, n), fmt)


def _bit_length(a: np.ndarray) -> np.ndarray:
    """Leading-one detection: bit length of non-negative int64 values (0 for 0)."""
    n = np.zeros(a.shape, np.int64)
    for k in (32, 16, 8, 4, 2, 1):
        big = a >= (1 << k)
        n += np.where(big, k, 0)
        a = np.where(big, a >> k, a)
    return n + a


def encode_integer_form(v, s: int, fmt) -> np.ndarray:
    """Integer-only: the integer form nearest to v / 2**s (RNE at the format's precision, subnormals
    included), saturated to the largest finite magnitude.  v is an int64 array, s any int."""
    fmt = _as_format(fmt)
    v = np.asarray(v, dtype=np.int64)
    a = np.abs(v)
    p = _bit_length(a) - 1 - s  # the leading one of a / 2**s is at bit p (of units 2**-q)
    over = (a > 0) & (p > fmt.max_exponent + fmt.man_bits)
    a = np.where(over, 0, a)
    e = np.clip(p - fmt.man_bits, 0, None)
    sig = np.zeros_like(a)
    for shift in np.unique(s + e) if a.size else ():
        sel = (s + e) == shift
        sig[sel] = round_shift(a[sel], int(shift))
    carry = sig >> (fmt.man_bits + 1)  # rounding up to 2**(M+1): renormalize
    n = np.minimum((sig >> carry) << (e + carry), fmt.max_int)
    n = np.where(over, fmt.max_int, n)
    return np.where(v < 0, -n, n)


def encode_int(v, fl_v: int, fmt, fl: int) -> np.ndarray:
    """Integer-only requantization: exact integers v at fixed-point scale fl_v (real v * 2**-fl_v)
    -> uint8 codes of the format at scale fl.  Agrees with encode(v * 2**-fl_v, fmt, fl)."""
    fmt = _as_format(fmt)
    return _codes_from_ints(encode_integer_form(v, fl_v - (fl + fmt.q), fmt), fmt)
