"""The requantizer lane at register level: what f8hw/hw/requant.py computes, bit for bit.

The accelerator's lane computes the IR's requantization (f8hw.numerics.fixed) with
its register semantics: the SET registers' widths and clamps, int32 wrapping, and the
dyadic baseline's multiplier.  The ISA simulator and the RTL tests use this one model.
"""

from __future__ import annotations

import numpy as np

from f8hw.numerics.fixed import round_shift, saturate

__all__ = ["ACC_BITS", "LSHIFT_BITS", "SHIFT_MAG_BITS", "MAX_LEFT_SHIFT", "wrap_int32", "requant_lane"]

ACC_BITS = 32
"""Width of the accumulators and of the requantizer lanes' input and output (int32, wrapping)."""
LSHIFT_BITS = 4
"""The lane's alignment shifts (ACC_LSHIFT, SKIP_LSHIFT) use the low 4 bits of their registers."""
SHIFT_MAG_BITS = 7
"""The lane clamps |SHIFT| to 2**7 - 1: every larger right shift of a lane value gives the same result."""
MAX_LEFT_SHIFT = 9
"""A left shift by >= 9 saturates every non-zero 8-bit result, so the lane shifts left by at most 9."""


def wrap_int32(v):
    """v modulo 2**32 as a signed 32-bit value (the accumulators' overflow); numpy arrays become int64."""
    if isinstance(v, np.ndarray) or isinstance(v, np.integer):
        v = np.asarray(v, dtype=np.int64)
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


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
