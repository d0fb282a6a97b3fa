"""Requantizer lanes: acc (+ bias) (+ aligned residual) -> round-half-even shift -> saturate.

``RequantLane(dyadic=False)`` is the F8Net lane: adders, barrel shifters,
comparators only.  ``dyadic=True`` is the baseline: the same lane with a
32 x 32-bit multiplier by RQ_MULT in front of the alignment (a TFLite-style
dyadic requantizer; RQ_MULT = 1 reproduces the shift lane exactly).

Pipeline (3 registers, output valid 3 cycles after the input):
  1. v32 = acc + (use_bias ? bias : 0)                   (32-bit, wraps)
  2. x = v32 (dyadic: v32 * mult, 64-bit);  v = use_skip ? (x << acc_lshift) + (skip << skip_lshift) : x
  3. q = v << l (negative shift, l = min(|SHIFT|, 9) -- saturation makes larger l equivalent)
     or round_half_even(v / 2**s) (s = min(SHIFT, width of v) -- larger s all give 0);
     out = raw ? v32 : saturate(q, out_signed), sign-extended to 32 bits.
Raw mode (RQ_RAW) ignores bias-free/skip/shift settings except use_bias.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from f8hw.arch import ArchError
from f8hw.hw.common import clog2

ACC_BITS = 32
LSHIFT_BITS = 4      # ACC_LSHIFT / SKIP_LSHIFT: 0..15 (the low 4 bits of the register)
MAG_BITS = 7         # |SHIFT| clamped to 127 by the decoder (enough for any lane width)
MAX_LEFT = 9         # a left shift by >= 9 saturates every non-zero value: same result as 9
LATENCY = 3          # registers from lane input to lane output

RQ_CFG = data.StructLayout({
    "raw": 1,
    "out_signed": 1,
    "use_bias": 1,
    "use_skip": 1,
    "skip_signed": 1,
    "acc_lshift": unsigned(LSHIFT_BITS),
    "skip_lshift": unsigned(LSHIFT_BITS),
    "shift_neg": 1,
    "shift_mag": unsigned(MAG_BITS),
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
        "acc_lshift": acc_lshift & 15, "skip_lshift": skip_lshift & 15,
        "shift_neg": int(shift < 0), "shift_mag": min(abs(shift), (1 << MAG_BITS) - 1), "mult": mult,
    }


def rshift_round_even(m: Module, v, amount, width: int, name: str):
    """round_half_even(v / 2**amount) for an unsigned amount in 0..width (a staged barrel shifter
    that ORs every bit it shifts out into a sticky bit)."""
    nb = clog2(width + 1)
    s1 = Signal(nb, name=f"{name}_sm1")
    m.d.comb += s1.eq(amount - 1)
    cur = v
    sticky = Const(0, 1)
    for b in range(nb):
        k = 1 << b
        nxt = Signal(signed(width), name=f"{name}_st{b}")
        lost = Signal(name=f"{name}_lost{b}")
        m.d.comb += [nxt.eq(Mux(s1[b], cur >> k, cur)), lost.eq(s1[b] & (cur[:min(k, width)] != 0))]
        sticky = sticky | lost
        cur = nxt
    rnd = cur[0]
    q0 = Signal(signed(width), name=f"{name}_q0")
    m.d.comb += q0.eq(cur >> 1)
    up = rnd & (sticky | q0[0])
    res = Signal(signed(width + 1), name=f"{name}_res")
    m.d.comb += res.eq(Mux(amount == 0, v, q0 + up))
    return res


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
        m.d.sync += [
            valid1.eq(self.in_valid),
            v32.eq((self.acc + Mux(cfg.use_bias, self.bias, 0))[:ACC_BITS]),
            skip9.eq(Mux(cfg.skip_signed, self.skip.as_signed(), self.skip)),
            c1.eq(cfg),
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
            v.eq(Mux(c1.use_skip & ~c1.raw, (accs + skips)[:VW], x)),
            c2.eq(c1),
        ]
        # ---- stage 3: shift, round, saturate
        right = Signal(range(VW + 1))
        left = Signal(range(MAX_LEFT + 1))
        m.d.comb += [
            right.eq(Mux(c2.shift_neg | c2.raw, 0, Mux(c2.shift_mag > VW, VW, c2.shift_mag))),
            left.eq(Mux(c2.shift_neg & ~c2.raw, Mux(c2.shift_mag > MAX_LEFT, MAX_LEFT, c2.shift_mag), 0)),
        ]
        rq = rshift_round_even(m, v, right, VW, "rs")
        lq = Signal(signed(VW + MAX_LEFT))
        m.d.comb += lq.eq(v << left)
        q = Signal(signed(VW + MAX_LEFT + 1))
        m.d.comb += q.eq(Mux(c2.shift_neg, lq, rq))
        hi = Mux(c2.out_signed, 127, 255)
        lo = Mux(c2.out_signed, -127, 0)
        sat = Signal(signed(10))
        m.d.comb += sat.eq(Mux(q > hi, hi, Mux(q < lo, lo, q[:10])))
        out = Signal(signed(ACC_BITS))
        valid3 = Signal()
        m.d.sync += [valid3.eq(valid2), out.eq(Mux(c2.raw, v[:ACC_BITS].as_signed(), sat))]
        m.d.comb += [self.out_valid.eq(valid3), self.out.eq(out)]
        return m
