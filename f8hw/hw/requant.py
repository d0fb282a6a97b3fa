"""Requantizer lanes: acc (+ bias) (+ aligned residual) -> round-half-even shift -> saturate.

``RequantLane(dyadic=False)`` is the F8Net lane: adders, barrel shifters,
comparators only.  ``dyadic=True`` is the baseline: the same lane with a
32 x 32-bit multiplier by RQ_MULT in front of the alignment (a TFLite-style
dyadic requantizer; RQ_MULT = 1 reproduces the shift lane exactly).

Pipeline (3 registers, output valid 3 cycles after the input):
  1. v32 = acc + (use_bias ? bias : 0)                   (32-bit, wraps)
  2. x = v32 (dyadic: v32 * mult, 64-bit);  v = use_skip ? (x << acc_lshift) + (skip << skip_lshift) : x
  3. right shift s = min(SHIFT, width of v) (larger s all give 0): q0 = floor(v / 2**s) and the
     round-half-even increment `up` from a sticky barrel shifter; saturation compares q0 (and up)
     with the rails, only the low 10 bits are incremented.  Negative SHIFT: l = min(|SHIFT|, 9)
     (saturation makes larger l equivalent); v is compared with the exact thresholds
     floor(hi / 2**l) and ceil(lo / 2**l) and only its low 10 bits are shifted.
     out = raw ? v32 : the saturated value, sign-extended to 32 bits.
Raw mode (RQ_RAW) ignores bias-free/skip/shift settings except use_bias.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from f8hw.arch import ArchError
from f8hw.hw.common import clog2
from f8hw.numerics import ACC_BITS, LSHIFT_BITS, MAX_LEFT_SHIFT, SHIFT_MAG_BITS

__all__ = ["LATENCY", "RQ_CFG", "lane_value_bits", "rq_cfg_value", "rshift_round_even", "RequantLane"]

LATENCY = 3          # registers from lane input to lane output
_LSHIFT_MASK = (1 << LSHIFT_BITS) - 1

RQ_CFG = data.StructLayout({
    "raw": 1,
    "out_signed": 1,
    "use_bias": 1,
    "use_skip": 1,
    "skip_signed": 1,
    "acc_lshift": unsigned(LSHIFT_BITS),
    "skip_lshift": unsigned(LSHIFT_BITS),
    "shift_neg": 1,
    "shift_mag": unsigned(SHIFT_MAG_BITS),
    "mult": signed(32),
})


def lane_value_bits(dyadic: bool) -> int:
    """Width of the aligned value v entering the shifter."""
    x = 64 if dyadic else ACC_BITS
    return x + (1 << LSHIFT_BITS) - 1 + 1


def rq_cfg_value(*, raw=0, out_signed=0, use_bias=0, use_skip=0, skip_signed=0, acc_lshift=0,
                 skip_lshift=0, shift=0, mult=1) -> dict:
    """Python-side encoding of the SET register values into an RQ_CFG dict (the decoder does the same)."""
    return {
        "raw": int(bool(raw)), "out_signed": int(bool(out_signed)), "use_bias": int(bool(use_bias)),
        "use_skip": int(bool(use_skip)), "skip_signed": int(bool(skip_signed)),
        "acc_lshift": acc_lshift & _LSHIFT_MASK, "skip_lshift": skip_lshift & _LSHIFT_MASK,
        "shift_neg": int(shift < 0), "shift_mag": min(abs(shift), (1 << SHIFT_MAG_BITS) - 1), "mult": mult,
    }


def rshift_round_even(m: Module, v, amount, width: int, name: str):
    """Round-half-even right shift of v (signed, `width` bits) by an unsigned amount in 0..width.

    A staged barrel shifter on v * 2 (so amount 0 needs no special case) that ORs
    every bit it shifts out into a sticky bit.  Returns (q0, up): the result is
    q0 + up, q0 = floor(v / 2**amount); the caller saturates without a wide adder.
    """
    nb = clog2(width + 1)
    W2 = width + 1
    cur = Signal(signed(W2), name=f"{name}_in")
    m.d.comb += cur.eq(v << 1)
    sticky = Const(0, 1)
    for b in range(nb):
        k = 1 << b
        nxt = Signal(signed(W2), name=f"{name}_st{b}")
        lost = Signal(name=f"{name}_lost{b}")
        m.d.comb += [nxt.eq(Mux(amount[b], cur >> k, cur)), lost.eq(amount[b] & (cur[:min(k, W2)] != 0))]
        sticky = sticky | lost
        cur = nxt
    q0 = Signal(signed(width), name=f"{name}_q0")
    up = Signal(name=f"{name}_up")
    m.d.comb += [q0.eq(cur >> 1), up.eq(cur[0] & (sticky | cur[1]))]
    return q0, up


class RequantLane(wiring.Component):
    def __init__(self, dyadic: bool = False):
        if dyadic not in (False, True):
            raise ArchError(f"dyadic must be a bool, got {dyadic!r}")
        self.dyadic = dyadic
        super().__init__({
            "in_valid": In(1),
            "acc": In(signed(ACC_BITS)),
            "bias": In(signed(ACC_BITS)),
            "skip": In(8),
            "cfg": In(RQ_CFG),
            "out_valid": Out(1),
            "out": Out(signed(ACC_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        VW = lane_value_bits(self.dyadic)
        cfg = self.cfg
        # ---- stage 1: bias
        v32 = Signal(signed(ACC_BITS))
        skip9 = Signal(signed(9))
        c1 = Signal(RQ_CFG)
        valid1 = Signal()
        res = cfg.use_skip & ~cfg.raw   # residual add active: otherwise skip = 0 and no alignment shift
        m.d.sync += [
            valid1.eq(self.in_valid),
            v32.eq((self.acc + Mux(cfg.use_bias, self.bias, 0))[:ACC_BITS]),
            skip9.eq(Mux(res, Mux(cfg.skip_signed, self.skip.as_signed(), self.skip), 0)),
            c1.eq(cfg),
            c1.acc_lshift.eq(Mux(res, cfg.acc_lshift, 0)),
        ]
        # ---- stage 2: (dyadic multiply,) residual alignment
        if self.dyadic:
            prod = Signal(signed(64))
            m.d.comb += prod.eq(v32 * c1.mult)   # the dyadic baseline's 32 x 32-bit multiplier
            x = Mux(c1.raw, v32, prod)
        else:
            x = v32
        accs = Signal(signed(VW))
        skips = Signal(signed(VW))
        m.d.comb += [accs.eq(x << c1.acc_lshift), skips.eq(skip9 << c1.skip_lshift)]
        v = Signal(signed(VW))
        c2 = Signal(RQ_CFG)
        valid2 = Signal()
        m.d.sync += [
            valid2.eq(valid1),
            v.eq((accs + skips)[:VW]),   # = x when the residual is off (skip 0, shift 0)
            c2.eq(c1),
        ]
        # ---- stage 3: shift, round, saturate
        right = Signal(range(VW + 1))
        left = Signal(range(MAX_LEFT_SHIFT + 1))
        m.d.comb += [
            right.eq(Mux(c2.shift_neg | c2.raw, 0, Mux(c2.shift_mag > VW, VW, c2.shift_mag))),
            left.eq(Mux(c2.shift_neg & ~c2.raw,
                        Mux(c2.shift_mag > MAX_LEFT_SHIFT, MAX_LEFT_SHIFT, c2.shift_mag), 0)),
        ]
        # right shift: q = q0 + up, saturated by comparing q0 (no wide increment)
        q0, up = rshift_round_even(m, v, right, VW, "rs")
        hi = Mux(c2.out_signed, 127, 255)
        lo = Mux(c2.out_signed, -127, 0)
        r_over = (q0 > hi) | ((q0 == hi) & up)
        r_under = (q0 < lo - 1) | ((q0 == lo - 1) & ~up)
        r_small = (q0[:10] + up)[:10]
        # saturating left shift by l <= 9: compare v with the exact thresholds, shift only 10 bits
        t_hi = Array([Const(h >> k, 9) for h in (255, 127) for k in range(MAX_LEFT_SHIFT + 1)])
        t_lo = Array([Const(-((-lo_) >> k), signed(9)) for lo_ in (0, -127) for k in range(MAX_LEFT_SHIFT + 1)])
        idx = Signal(range(2 * (MAX_LEFT_SHIFT + 1)))
        m.d.comb += idx.eq(Mux(c2.out_signed, MAX_LEFT_SHIFT + 1, 0) + left)
        l_over = v > t_hi[idx]
        l_under = v < t_lo[idx]
        l_small = (v[:10] << left)[:10]
        over = Mux(c2.shift_neg, l_over, r_over)
        under = Mux(c2.shift_neg, l_under, r_under)
        sat = Signal(signed(10))
        m.d.comb += sat.eq(Mux(over, hi, Mux(under, lo, Mux(c2.shift_neg, l_small, r_small))))
        out = Signal(signed(ACC_BITS))
        valid3 = Signal()
        m.d.sync += [valid3.eq(valid2), out.eq(Mux(c2.raw, v[:ACC_BITS].as_signed(), sat))]
        m.d.comb += [self.out_valid.eq(valid3), self.out.eq(out)]
        return m
