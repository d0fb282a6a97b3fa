"""The FP8 output requantizer lane: an exact wide value (+ bias) -> an FP8 code, as numerics.fp8.encode_int.

The flexible PE's accumulator holds v at unit fl_v (real v * 2**-fl_v); the
layer's output format ``kind`` at scale fl wants the code nearest to
v / 2**s in units of 2**-q, s = fl_v - (fl + q) (the lane's SHIFT).  Integer
only, no multiplier (docs/formats_hw.md):

  1. v = acc + (use_bias ? bias : 0)                          (exact, one bit wider)
  2. a = |v| (ReLU: negatives become 0); p = leading-one position of a (LOD)
  3. r = max(p - M, s): the right shift that leaves M+1 significant bits (the ULP of
     a's binade, or of the subnormals when s is larger); sig = round_shift(a, r) with
     round half to even (a sticky barrel shifter, the INT lane's rule), or a << -r when
     r < 0 (exact); the exponent field is e = r - s, and code = (e << M) + sig, so a
     carry out of the significand renormalizes by itself.  p - s > emax + M, or a code
     beyond the largest finite one, saturates to the largest finite code; the sign is
     set only on a non-zero magnitude (never -0).

Four registers (LATENCY = arch.REQUANT_LATENCY, the INT8 lane's: the drain has one
latency): after the bias add, after the LOD, after the barrel shift and exponent, and
the output code.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from f8hw.arch import REQUANT_LATENCY, ArchError
from f8hw.hw.common import clog2, tree_or
from f8hw.hw.fpe import INT8, acc_bits, check_formats
from f8hw.numerics import fl_range, fp8_format, unit_exponent

__all__ = ["LATENCY", "shift_range", "shift_bits", "fp8_rq_cfg_layout", "fp8_rq_cfg_value", "leading_one",
           "Fp8RequantLane"]

LATENCY = REQUANT_LATENCY
"""Registers from lane input to lane output (as f8hw.hw.requant.LATENCY)."""


def _units(fmt: str) -> range:
    """Units (fl + q) an 8-bit tensor of this PE format can have (INT8: signed or unsigned fl)."""
    kind = "int" if fmt == INT8 else fmt
    fls = set(fl_range(True, kind)) | set(fl_range(False, kind))
    q = unit_exponent(kind)
    return range(min(fls) + q, max(fls) + q + 1)


def shift_range(formats) -> tuple[int, int]:
    """Smallest and largest SHIFT s = x.unit + w.unit - out.unit of a layer over the format set
    (operands any of its formats, output any of its FP8 formats), from the fl ranges of f8hw.numerics."""
    formats = check_formats(formats)
    lo_in = min(_units(f).start for f in formats)
    hi_in = max(_units(f).stop - 1 for f in formats)
    outs = [_units(f) for f in formats if f != INT8]
    return 2 * lo_in - max(u.stop - 1 for u in outs), 2 * hi_in - min(u.start for u in outs)


def shift_bits(formats) -> int:
    """Signed width of the SHIFT field: holds shift_range(formats) (the lane is exact for every value of it)."""
    lo, hi = shift_range(formats)
    return max((-lo - 1).bit_length(), hi.bit_length()) + 1


def _kinds(formats) -> tuple[str, ...]:
    kinds = tuple(f for f in check_formats(formats) if f != INT8)
    if not kinds:
        raise ArchError(f"an FP8 requantizer lane needs an FP8 format in {formats!r}")
    return kinds


def fp8_rq_cfg_layout(formats) -> data.StructLayout:
    """Per-layer configuration: output kind (index into the set's FP8 formats), SHIFT, ReLU, bias on/off."""
    return data.StructLayout({"kind": unsigned(clog2(len(_kinds(formats)))), "shift": signed(shift_bits(formats)),
                              "relu": 1, "use_bias": 1})


def fp8_rq_cfg_value(formats, kind: str, shift: int, relu: bool = False, use_bias: bool = True) -> dict:
    """The configuration dict of an output in format kind with SHIFT shift."""
    kinds = _kinds(formats)
    if kind not in kinds:
        raise ArchError(f"output format {kind!r} is not among this lane's FP8 formats {kinds!r}")
    lo, hi = -(1 << (shift_bits(formats) - 1)), (1 << (shift_bits(formats) - 1)) - 1
    if not isinstance(shift, int) or not lo <= shift <= hi:
        raise ArchError(f"shift must be an integer in {lo}..{hi}, got {shift!r}")
    return {"kind": kinds.index(kind), "shift": shift, "relu": int(bool(relu)), "use_bias": int(bool(use_bias))}


def leading_one(m: Module, a, name: str):
    """(nonzero, position of the highest set bit) of an unsigned value, as a balanced priority tree."""
    level = [(a[i], Const(0, 1)) for i in range(len(a))]
    depth = 0
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level), 2):
            if j + 1 == len(level):
                v, p = level[j]
                nxt.append((v, Cat(p, Const(0, 1)) if depth else p))
                continue
            (v_lo, p_lo), (v_hi, p_hi) = level[j], level[j + 1]
            pos = Signal(depth + 1, name=f"{name}_p{depth}_{j // 2}")
            m.d.comb += pos.eq(Mux(v_hi, Cat(p_hi[:depth], Const(1, 1)), p_lo[:depth]) if depth else v_hi)
            nxt.append((v_lo | v_hi, pos))
        level, depth = nxt, depth + 1
    return level[0]


def _round_shift_low(m: Module, a, amount, keep: int, name: str):
    """Low ``keep`` bits of floor(a / 2**amount) and the round-half-even increment (a unsigned).

    A sticky barrel shifter like f8hw.hw.requant.rshift_round_even, but with the largest stage
    first, so every later stage only keeps the bits that can still reach the result.
    """
    cur = Cat(Const(0, 1), a)   # a * 2: bit 0 becomes the round bit
    lost = []
    for b in reversed(range(len(amount))):
        k = 1 << b
        lost.append(amount[b] & (cur[:k] != 0))
        nxt = Signal(min(len(cur), keep + 1 + k - 1), name=f"{name}_st{b}")
        m.d.comb += nxt.eq(Mux(amount[b], cur >> k, cur))
        cur = nxt
    sticky = tree_or(lost)
    q0 = cur[1:keep + 1]
    return q0, cur[0] & (sticky | q0[0])


class Fp8RequantLane(wiring.Component):
    """acc (+ bias) at unit fl_v -> the FP8 code of ``kind`` at SHIFT s, for the FP8 formats of a PE set."""

    def __init__(self, formats=(INT8, "e2m5", "e3m4", "e4m3")):
        self.formats = check_formats(formats)
        self.kinds = _kinds(self.formats)
        self.acc_bits = acc_bits(self.formats)
        super().__init__({
            "in_valid": In(1),
            "acc": In(signed(self.acc_bits)),
            "bias": In(signed(self.acc_bits)),
            "cfg": In(fp8_rq_cfg_layout(self.formats)),
            "out_valid": Out(1),
            "out": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.acc_bits + 1
        fmts = [fp8_format(k) for k in self.kinds]
        layout = fp8_rq_cfg_layout(self.formats)
        # ---- stage 1: bias
        v = Signal(signed(W))
        c1 = Signal(layout)
        valid1 = Signal()
        m.d.sync += [valid1.eq(self.in_valid), c1.eq(self.cfg),
                     v.eq(self.acc + Mux(self.cfg.use_bias, self.bias, 0))]
        # ---- stage 2: magnitude (ReLU), leading one
        neg = v[-1] & ~c1.relu
        mag = Signal(W)
        m.d.comb += mag.eq(Mux(v[-1], Mux(c1.relu, 0, -v), v))
        nz, pos = leading_one(m, mag, "lod")
        a = Signal(W)
        p = Signal(len(pos))
        nz2, neg2, valid2 = Signal(), Signal(), Signal()
        c2 = Signal(layout)
        m.d.sync += [a.eq(mag), p.eq(pos), nz2.eq(nz), neg2.eq(neg), valid2.eq(valid1), c2.eq(c1)]
        # ---- stage 3: the shift to the format's precision (sticky barrel shifter), the exponent field
        man = Array(Const(f.man_bits, signed(4)) for f in fmts)[c2.kind]
        top = Array(Const(f.max_exponent + f.man_bits, signed(7)) for f in fmts)[c2.kind]
        s = c2.shift
        mmax = max(f.man_bits for f in fmts)
        ps = Signal(signed(len(p) + 1))   # signed copies keep every difference exact
        pm = Signal(signed(len(p) + 2))
        r = Signal(signed(max(len(s), len(pm)) + 1))
        over = Signal()
        m.d.comb += [ps.eq(p), pm.eq(ps - man), r.eq(Mux(pm > s, pm, s)), over.eq((ps - s) > top)]
        right = Signal(range(W + 2))
        left = Signal(range(mmax + 1))
        m.d.comb += [right.eq(Mux(r < 0, 0, Mux(r > W + 1, W + 1, r))), left.eq(Mux(r < 0, -r, 0))]
        q0, up = _round_shift_low(m, a, right, mmax + 2, "rs")
        e = Signal(max(f.max_exponent for f in fmts).bit_length())
        m.d.comb += e.eq(r - s)   # 0..emax unless over
        efield = Signal(9)        # the code's exponent field, in place
        m.d.comb += efield.eq(Array((e << f.man_bits) for f in fmts)[c2.kind])
        # ---- stage 4: significand, code, saturation, sign (split from stage 3 for Fmax)
        q3, up3, lsig3 = Signal(mmax + 2), Signal(), Signal(mmax + 2)
        rneg3, over3, nz3, neg3, valid3 = Signal(), Signal(), Signal(), Signal(), Signal()
        efield3, max_code3 = Signal(9), Signal(7)
        m.d.sync += [q3.eq(q0), up3.eq(up), lsig3.eq(a[:mmax] << left), rneg3.eq(r < 0), over3.eq(over),
                     nz3.eq(nz2), neg3.eq(neg2), valid3.eq(valid2), efield3.eq(efield),
                     max_code3.eq(Array(Const(f.max_code, 7) for f in fmts)[c2.kind])]
        sig = Signal(mmax + 2)
        m.d.comb += sig.eq(Mux(rneg3, lsig3, q3 + up3))
        code = Signal(9)
        m.d.comb += code.eq(efield3 + sig)
        out_mag = Signal(7)
        m.d.comb += out_mag.eq(Mux(~nz3, 0, Mux(over3 | (code > max_code3), max_code3, code)))
        out = Signal(8)
        valid4 = Signal()
        m.d.sync += [valid4.eq(valid3), out.eq(Cat(out_mag, neg3 & (out_mag != 0)))]
        m.d.comb += [self.out_valid.eq(valid4), self.out.eq(out)]
        return m
