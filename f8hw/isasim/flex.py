"""COMPUTE on a flexible build (ArchConfig.formats beyond int8): docs/ir.md "Mixed-format layers".

The format registers pick each operand's format; the array accumulates the exact products of the
integer forms (numerics.to_integer) in arch.acc_bits bits, MAX compares integer forms; the drain adds
the bias (32-bit, or 64-bit with BIAS64) at acc_bits, aligns the residual (INT8 or FP8) in a 64-bit
lane (MIXED_ACC_BITS: Graph.validate proves the aligned sum fits), then the INT8 lane rounds and
saturates (numerics.round_shift / saturate, SHIFT clamped as numerics.requant_lane does) or the FP8
lane encodes (numerics.encode_int), or the raw value is kept.  Same cycles as INT8 (run.py).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from f8hw import numerics
from f8hw.isa import ErrorCode, Mode, Reg
from f8hw.isasim.machine import Machine
from f8hw.isasim.result import op_error
from f8hw.numerics.lane import MAX_LEFT_SHIFT, SHIFT_MAG_BITS

__all__ = ["fmt_reg", "check_fmt_regs", "decode_table", "int_forms", "flex_mac", "flex_drain"]


def wrap(v, bits: int):
    """v modulo 2**bits as a signed value (object or int64 arrays)."""
    half = 1 << (bits - 1)
    return ((v + half) & ((1 << bits) - 1)) - half


def fmt_reg(m: Machine, pc: int, reg: Reg, cycles: int | None = None) -> str:
    """The format a format register names; an index outside ArchConfig.formats is an illegal COMPUTE."""
    k = m.regs[reg]
    if not 0 <= k < len(m.arch.formats):
        raise op_error(ErrorCode.OPCODE, pc, "COMPUTE", f"{reg.name} {k} names no format of {m.arch.formats}", cycles)
    return m.arch.formats[k]


def check_fmt_regs(m: Machine, pc: int, mode: int, last: bool, cycles: int) -> None:
    """The decode check of a COMPUTE (after its range checks, as the front end does): every format register
    it uses names a format (A_FMT; W_FMT unless MAX; on a last tile not raw OUT_FMT, and SKIP_FMT with USE_SKIP)."""
    raw = m.regs[Reg.RQ_RAW] != 0
    used = [Reg.A_FMT] + ([Reg.W_FMT] if mode != Mode.MAX else [])
    if last and not raw:
        used += ([Reg.SKIP_FMT] if m.regs[Reg.USE_SKIP] != 0 else []) + [Reg.OUT_FMT]
    for reg in used:
        fmt_reg(m, pc, reg, cycles)


@cache
def decode_table(fmt: str) -> np.ndarray:
    """Integer form of every byte as the PE decodes it (docs/formats_hw.md): numerics.to_integer on the
    finite codes; NaN/Inf codes (never produced, but a scratchpad byte may hold anything) decode by
    their IEEE bit pattern like the normals, so every byte has one defined value."""
    f = numerics.fp8_format(fmt)
    c = np.arange(256, dtype=np.int64)
    e, man = (c >> f.man_bits) & ((1 << f.exp_bits) - 1), c & ((1 << f.man_bits) - 1)
    n = np.where(e == 0, man, ((1 << f.man_bits) | man) << np.maximum(e - 1, 0))
    n = np.where(c & 0x80, -n, n)
    finite = numerics.finite_mask(fmt)
    n[finite] = numerics.to_integer(c[finite], fmt)
    return n


def int_forms(codes: np.ndarray, fmt: str, signed: bool) -> np.ndarray:
    """Integer forms (int64) of stored bytes: INT8 per its signedness, FP8 codes by decode_table."""
    if fmt == "int8":
        return (codes.view(np.int8) if signed else codes).astype(np.int64)
    return decode_table(fmt)[codes]


def flex_mac(m: Machine, pc: int, f: dict, steps: int) -> None:
    """The MAC phase: P (+)= sum of integer-form products, or the running maximum of the integer forms."""
    R, regs = m.R, m.regs
    mode, nl, a_base, w_base = f["mode"], f["nlines"], f["a_base"], f["w_base"]
    a = int_forms(m.A[:, a_base:a_base + nl, :], fmt_reg(m, pc, Reg.A_FMT), regs[Reg.A_SIGNED] != 0)
    if mode == Mode.MAX:
        val = a.max(axis=1)
        m.P = val if not f["acc"] else np.maximum(m.P, val)
        return
    wf = fmt_reg(m, pc, Reg.W_FMT)
    if mode == Mode.DENSE:
        a2, w2 = a.reshape(R, steps), int_forms(m.W[w_base:w_base + steps], wf, True)
        if steps * int(np.abs(a2).max(initial=0)) * int(np.abs(w2).max(initial=0)) < 1 << 53:
            val = (a2.astype(np.float64) @ w2.astype(np.float64)).astype(np.int64)  # exact, BLAS-fast
        else:  # int64 is exact: the compiler proves every partial sum fits acc_bits <= 64 (wrapping beyond)
            val = a2 @ w2
    else:
        val = np.einsum("rlc,lc->rc", a, int_forms(m.W[w_base:w_base + nl], wf, True))
    m.P = wrap(val if not f["acc"] else m.P + val, m.arch.acc_bits)


def _bias(m: Machine, f: dict) -> np.ndarray:
    b = m.B8[f["b_src"]].view("<i4").reshape(m.C).astype(np.int64)
    if m.regs[Reg.BIAS64] != 0:
        hi = m.B8[f["b_src"] + 1].view("<i4").reshape(m.C).astype(np.int64)
        b = (hi << 32) | (b & 0xFFFFFFFF)
    return b


def flex_drain(m: Machine, pc: int, f: dict, raw: bool, use_bias: bool, use_skip: bool) -> None:
    """Requantize P into the output lines o_dst.. (one line per row)."""
    regs, R, arch = m.regs, m.R, m.arch
    v = m.P
    if use_bias:
        v = wrap(v + _bias(m, f)[None, :], arch.acc_bits)
    o_dst = f["o_dst"]
    if raw:
        m.O[o_dst:o_dst + R] = v
        return
    x = v.astype(object)
    if use_skip:
        lmask = (1 << arch.lshift_bits) - 1
        sk = int_forms(m.S[f["s_src"]:f["s_src"] + R], fmt_reg(m, pc, Reg.SKIP_FMT), regs[Reg.SKIP_SIGNED] != 0)
        x = wrap((x << (regs[Reg.ACC_LSHIFT] & lmask)) + (sk.astype(object) << (regs[Reg.SKIP_LSHIFT] & lmask)),
                 numerics.MIXED_ACC_BITS)
    out = fmt_reg(m, pc, Reg.OUT_FMT)
    signed = regs[Reg.OUT_SIGNED] != 0
    if out == "int8":
        mag = (1 << SHIFT_MAG_BITS) - 1
        s = max(-MAX_LEFT_SHIFT, min(mag, int(regs[Reg.SHIFT])))
        q = [numerics.saturate(numerics.round_shift(int(e), s), signed) for e in x.reshape(-1)]
        m.O[o_dst:o_dst + R] = np.asarray(q, np.int64).reshape(x.shape)
        return
    s = int(wrap(int(regs[Reg.SHIFT]), arch.fp8_shift_bits))  # the lane's SHIFT field
    x = x.astype(np.int64)
    if not signed:  # ReLU: negatives become +0
        x = np.maximum(x, 0)
    q = numerics.unit_exponent(out)
    # encode_int(v, fl_v, kind, fl) rounds v / 2**(fl_v - (fl + q)): fl_v = s, fl = -q gives SHIFT s
    m.O[o_dst:o_dst + R] = numerics.encode_int(x, s, out, -q).astype(np.int64)
