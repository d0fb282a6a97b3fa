"""COMPUTE: the MAC array over a tile (DENSE as one exact float64 matmul), and the drain through the
requantizer lanes (f8hw.numerics.requant_lane) into the output lines; a flexible build's formats: flex.py."""

from __future__ import annotations

import numpy as np

from f8hw import numerics
from f8hw.arch import REQUANT_LATENCY
from f8hw.isa import Mode, Reg
from f8hw.isasim.flex import flex_drain, flex_mac
from f8hw.isasim.machine import Machine
from f8hw.isasim.races import Access

__all__ = ["compute"]


def compute(m: Machine, pc: int, f: dict, t: int, steps: int) -> None:
    regs = m.regs
    R, C = m.R, m.C
    mode, nl = f["mode"], f["nlines"]
    a_base, w_base = f["a_base"], f["w_base"]
    a = m.A[:, a_base:a_base + nl, :]
    if regs[Reg.A_SIGNED] != 0:
        a = a.view(np.int8)
    if m.arch.flexible:
        flex_mac(m, pc, f, steps)
    elif mode == Mode.DENSE:
        w = m.W[w_base:w_base + steps].view(np.int8)
        # exact: |a*w| <= 2**15, steps <= 2**22 -> |sum| < 2**37 < 2**53
        val = (a.reshape(R, steps).astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
        m.P = numerics.wrap_int32(val if not f["acc"] else m.P + val)
    elif mode == Mode.DEPTHWISE:
        w = m.W[w_base:w_base + nl].view(np.int8)
        val = np.einsum("rlc,lc->rc", a.astype(np.int64), w.astype(np.int64))
        m.P = numerics.wrap_int32(val if not f["acc"] else m.P + val)
    else:  # MAX
        val = a.max(axis=1).astype(np.int64)
        m.P = val if not f["acc"] else np.maximum(m.P, val)
    last = f["last"]
    raw = regs[Reg.RQ_RAW] != 0
    use_bias = regs[Reg.USE_BIAS] != 0
    use_skip = regs[Reg.USE_SKIP] != 0 and not raw
    if m.races is not None:
        # bank r is read at t+1+r .. t+steps+r; W entry w_base+k at t+1+k
        if nl:
            m.races.add(Access(pc, "A", False, 0, R, a_base, a_base + nl, t + 1, 1, t + steps, 1))
        if mode != Mode.MAX and steps:
            m.races.add(Access(pc, "W", False, 0, 1, w_base, w_base + steps, t + 1, 0, t + steps, 0))
        if last:
            # drain (f8hw/hw/compute.py): row r reads B/S at capture-1+r and its O line is written at
            # capture+REQUANT_LATENCY+r, the last one visible at drain_end
            capture = t + steps + m.lat
            d0 = capture - 1
            if use_bias:
                nb = 2 if m.arch.flexible and regs[Reg.BIAS64] != 0 else 1
                m.races.add(Access(pc, "B", False, 0, 1, f["b_src"], f["b_src"] + nb, d0, 0, d0 + R - 1, 0))
            if use_skip:
                m.races.add(Access(pc, "S", False, 0, 1, f["s_src"], f["s_src"] + R, d0, 0, d0 + R - 1, 0))
            w0 = capture + REQUANT_LATENCY
            m.races.add(Access(pc, "O", True, 0, 1, f["o_dst"], f["o_dst"] + R, w0, 0, w0 + R - 1, 0))
    if not last:
        return
    v = m.P
    if m.arch.flexible:
        flex_drain(m, pc, f, raw, use_bias, use_skip)
        return
    if use_bias:
        v = numerics.wrap_int32(v + m.B8[f["b_src"]].view("<i4").reshape(C).astype(np.int64))
    o_dst = f["o_dst"]
    skip = m.S[f["s_src"]:f["s_src"] + R] if use_skip else None
    m.O[o_dst:o_dst + R] = numerics.requant_lane(
        v, skip, raw=raw, out_signed=regs[Reg.OUT_SIGNED] != 0, shift=regs[Reg.SHIFT],
        skip_signed=regs[Reg.SKIP_SIGNED] != 0, acc_lshift=regs[Reg.ACC_LSHIFT], skip_lshift=regs[Reg.SKIP_LSHIFT],
        mult=regs[Reg.RQ_MULT] if m.arch.requant == "dyadic" else None)
