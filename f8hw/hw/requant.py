"""Requantizer lanes: acc (+ bias) (+ aligned residual) -> round-half-even shift -> saturate.

``RequantLane(dyadic=False)`` is the F8Net lane: adders, barrel shifters,
comparators only.  ``dyadic=True`` is the baseline: the same lane with a
32 x 32-bit multiplier by RQ_MULT in front of the alignment (a TFLite-style
dyadic requantizer; RQ_MULT = 1 reproduces the shift lane exactly).

Pipeline (REQUANT_LATENCY = 4 registers, output valid 4 cycles after the input; the stages are
balanced so that the lane is not slower than the PE, docs/architecture.md "Fmax"):
  1. v32 = acc + (use_bias ? bias : 0)                   (32-bit, wraps); the shift amounts from the config
  2. x = v32 (dyadic: v32 * mult, 64-bit);  v = use_skip ? (x << acc_lshift) + (skip << skip_lshift) : x
  3. right shift s = min(SHIFT, width of v) (larger s all give 0): q0 = floor(v / 2**s) and the
     round-half-even increment `up` from a sticky barrel shifter.  Negative SHIFT: l = min(|SHIFT|, 9)
     (saturation makes larger l equivalent); v is compared with the exact thresholds
     floor(hi / 2**l) and ceil(lo / 2**l) and only its low 10 bits are shifted.
  4. saturation compares q0 (and up) with the rails, only the low 10 bits are incremented;
     out = raw ? v32 : the saturated value, sign-extended to 32 bits.
Raw mode (RQ_RAW) ignores bias-free/skip/shift settings except use_bias.

``formats`` beyond int8 (a flexible build, f8hw.isasim.flex): acc, bias and raw out are
acc_bits(formats) wide, the alignment shifts have FLEX_LSHIFT_BITS, the residual arrives as a
signed integer form (decoded per SKIP_FMT by the compute unit) and v wraps at MIXED_ACC_BITS;
``out`` is 64-bit.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from f8hw.arch import FLEX_LSHIFT_BITS, INT8_ONLY, REQUANT_LATENCY, ArchError
from f8hw.hw.common import clog2
from f8hw.hw.fpe import acc_bits, activation_bits, check_formats
from f8hw.numerics import ACC_BITS, LSHIFT_BITS, MAX_LEFT_SHIFT, MIXED_ACC_BITS, SHIFT_MAG_BITS

__all__ = ["LATENCY", "RQ_CFG", "lane_value_bits", "rq_cfg_value", "rshift_round_even", "RequantLane"]

LATENCY = REQUANT_LATENCY   # registers from lane input to lane output (the ISA's timing, f8hw.arch)
_LSHIFT_MASK = (1 << LSHIFT_BITS) - 1



def rq_cfg_layout(lshift_bits: int = LSHIFT_BITS) -> data.StructLayout:
    return data.StructLayout({
        "raw": 1,
        "out_signed": 1,
        "use_bias": 1,
        "use_skip": 1,
        "skip_signed": 1,
        "acc_lshift": unsigned(lshift_bits),
        "skip_lshift": unsigned(lshift_bits),
        "shift_neg": 1,
        "shift_mag": unsigned(SHIFT_MAG_BITS),
        "mult": signed(32),
    })


RQ_CFG = rq_cfg_layout()
FLEX_RQ_CFG = rq_cfg_layout(FLEX_LSHIFT_BITS)


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
    def __init__(self, dyadic: bool = False, formats=INT8_ONLY):
        if dyadic not in (False, True):
            raise ArchError(f"dyadic must be a bool, got {dyadic!r}")
        self.dyadic = dyadic
        self.formats = check_formats(formats)
        self.flexible = self.formats != INT8_ONLY
        if self.flexible and dyadic:
            raise ArchError("the dyadic lane is INT8 only")
        self.acc_bits = acc_bits(self.formats) if self.flexible else ACC_BITS
        self.layout = FLEX_RQ_CFG if self.flexible else RQ_CFG
        super().__init__({
            "in_valid": In(1),
            "acc": In(signed(self.acc_bits)),
            "bias": In(signed(self.acc_bits)),
            "skip": In(signed(activation_bits(self.formats))) if self.flexible else In(8),
            "cfg": In(self.layout),
            "out_valid": Out(1),
            "out": Out(signed(MIXED_ACC_BITS if self.flexible else ACC_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        VW = MIXED_ACC_BITS if self.flexible else lane_value_bits(self.dyadic)
        AB, L = self.acc_bits, self.layout
        cfg = self.cfg
        # ---- stage 1: bias; the shift amounts (they depend on the config only)
        v32 = Signal(signed(AB))
        skip9 = Signal(signed(len(self.skip) if self.flexible else 9))
        c1 = Signal(L)
        valid1 = Signal()
        right1 = Signal(range(VW + 1))
        left1 = Signal(range(MAX_LEFT_SHIFT + 1))
        res = cfg.use_skip & ~cfg.raw   # residual add active: otherwise skip = 0 and no alignment shift
        skip = self.skip if self.flexible else Mux(cfg.skip_signed, self.skip.as_signed(), self.skip)
        m.d.sync += [
            valid1.eq(self.in_valid),
            v32.eq((self.acc + Mux(cfg.use_bias, self.bias, 0))[:AB]),
            skip9.eq(Mux(res, skip, 0)),
            c1.eq(cfg),
            c1.acc_lshift.eq(Mux(res, cfg.acc_lshift, 0)),
            right1.eq(Mux(cfg.shift_neg | cfg.raw, 0, Mux(cfg.shift_mag > VW, VW, cfg.shift_mag))),
            left1.eq(Mux(cfg.shift_neg & ~cfg.raw, Mux(cfg.shift_mag > MAX_LEFT_SHIFT, MAX_LEFT_SHIFT, cfg.shift_mag), 0)),
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
        c2 = Signal(L)
        valid2 = Signal()
        right = Signal(range(VW + 1))
        left = Signal(range(MAX_LEFT_SHIFT + 1))
        # the left-shift path's exact thresholds floor(hi / 2**l), ceil(lo / 2**l): config only
        t_hi = Array([Const(h >> k, 9) for h in (255, 127) for k in range(MAX_LEFT_SHIFT + 1)])
        t_lo = Array([Const(-((-lo_) >> k), signed(9)) for lo_ in (0, -127) for k in range(MAX_LEFT_SHIFT + 1)])
        idx = Signal(range(2 * (MAX_LEFT_SHIFT + 1)))
        m.d.comb += idx.eq(Mux(c1.out_signed, MAX_LEFT_SHIFT + 1, 0) + left1)
        thr_hi = Signal(signed(10))
        thr_lo = Signal(signed(10))
        m.d.sync += [
            valid2.eq(valid1),
            v.eq((accs + skips)[:VW]),   # = x when the residual is off (skip 0, shift 0)
            c2.eq(c1),
            right.eq(right1),
            left.eq(left1),
            thr_hi.eq(t_hi[idx]),
            thr_lo.eq(t_lo[idx]),
        ]
        # ---- stage 3: the right shift with its rounding increment; the left-shift path's compares
        # (v outside 10-bit range is decided by its sign and a reduction of its high bits)
        q0_, up_ = rshift_round_even(m, v, right, VW, "rs")
        v_top = v[9:]
        v_wide = (v_top != 0) & (v_top != (1 << len(v_top)) - 1)
        v10 = v[:10].as_signed()
        q0 = Signal(signed(VW))
        up = Signal()
        l_over = Signal()
        l_under = Signal()
        l_small = Signal(10)
        v_raw = Signal(signed(AB))
        c3 = Signal(L)
        valid3 = Signal()
        m.d.sync += [
            q0.eq(q0_), up.eq(up_),
            l_over.eq(Mux(v_wide, ~v[-1], v10 > thr_hi)), l_under.eq(Mux(v_wide, v[-1], v10 < thr_lo)),
            l_small.eq((v[:10] << left)[:10]),
            v_raw.eq(v[:AB].as_signed()),
            c3.eq(c2),
            valid3.eq(valid2),
        ]
        # ---- stage 4: saturate (q = q0 + up, compared without a wide increment), raw bypass.
        # The rails (127 / 255 above, -127 / 0 below) are decided by reductions of q0's high bits, all in
        # parallel: h8z = bits 8.. zero, h7o = bits 7.. one (below the sign), and the low 7 or 8 bits.
        neg = q0[-1]
        h8z = q0[8:-1] == 0
        h7z = h8z & ~q0[7]
        h7o = q0[7:-1] == (1 << (len(q0) - 8)) - 1
        lo7 = q0[:7]
        r_over = ~neg & Mux(c3.out_signed, ~h7z | (lo7 == 0x7F) & up, ~h8z | (q0[:8] == 0xFF) & up)
        r_under = neg & Mux(c3.out_signed, ~h7o | (lo7 == 0) & ~up, ~(h7o & (lo7 == 0x7F) & up))
        hi = Mux(c3.out_signed, 127, 255)
        lo = Mux(c3.out_signed, -127, 0)
        r_small = (q0[:10] + up)[:10]
        over = Mux(c3.shift_neg, l_over, r_over)
        under = Mux(c3.shift_neg, l_under, r_under)
        sat = Signal(signed(10))
        m.d.comb += sat.eq(Mux(over, hi, Mux(under, lo, Mux(c3.shift_neg, l_small, r_small))))
        out = Signal(signed(len(self.out)))
        valid4 = Signal()
        m.d.sync += [valid4.eq(valid3), out.eq(Mux(c3.raw, v_raw, sat))]
        m.d.comb += [self.out_valid.eq(valid4), self.out.eq(out)]
        return m
