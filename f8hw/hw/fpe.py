"""A flexible-format PE: INT8 and FP8 operands on one significand multiplier (docs/formats_hw.md).

Each operand code is decoded, per its layer's format, into a signed
significand and an exponent exactly as ``numerics.fp8.split`` (INT8: the
integer itself, exponent 0; the activation is 9-bit signed/unsigned by
``a_signed`` like the INT8 PE's A_SIGNED extension).  One 9 x 8-bit signed
multiplier (the INT8 PE's) multiplies the significands; the product, shifted
left by the exponent sum, is the exact product of the integer forms, and is
accumulated exactly in ``acc_bits(formats)`` bits.  MAX mode sends the
activation's integer form through the same path (weight significand 1,
exponent 0), so it compares values for every format.  first/last/shadow and
the systolic weight register (``w_out``, the code) are those of f8hw.hw.pe, and
so are its two stages (f8hw.arch.PE_LATENCY): decode and multiply into a product
register (significand product and exponent sum), then align and accumulate with
the step's controls, which the FlexPE registers itself.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from f8hw.arch import ArchError
from f8hw.hw.common import clog2
from f8hw.hw.pe import A_BITS, W_BITS
from f8hw.numerics import ACC_BITS, FORMATS, fp8_format, qrange

__all__ = ["INT8", "HW_FORMATS", "MAX_K", "check_formats", "operand_max", "decoded_max", "product_bits", "activation_bits",
           "acc_bits", "fpe_cfg_layout", "fpe_cfg_value", "OperandDecoder", "Aligner", "Accumulator", "FlexPE"]

INT8 = "int8"
HW_FORMATS = (INT8, *FORMATS)
"""Operand formats a flexible PE can be built for: INT8 and every FP8 format of f8hw.numerics."""
MAX_K = 3 * 3 * 512
"""Products per accumulation the exact accumulator is sized for (a 3x3 conv over 512 channels)."""


def check_formats(formats) -> tuple[str, ...]:
    """formats as a tuple if it is a valid PE format set (INT8 first, then FP8 names, no repeats)."""
    if isinstance(formats, str) or not isinstance(formats, (tuple, list)) or not formats:
        raise ArchError(f"formats must be a non-empty tuple of format names, got {formats!r}")
    for f in formats:
        if f not in HW_FORMATS:
            raise ArchError(f"unknown PE format {f!r} (known: {', '.join(HW_FORMATS)})")
    if len(set(formats)) != len(formats):
        raise ArchError(f"formats {tuple(formats)!r} name a format twice")
    if formats[0] != INT8:
        raise ArchError(f"formats must start with {INT8!r} (the default, and the input image), got {tuple(formats)!r}")
    return tuple(formats)


def operand_max(fmt: str, weight: bool) -> int:
    """Largest magnitude of an operand's integer form in hardware (INT8: the 9-bit activation, int8 weight)."""
    if fmt == INT8:
        return -(-1 << (W_BITS - 1)) if weight else qrange(False)[1]
    return fp8_format(fmt).max_int


def decoded_max(fmt: str, weight: bool) -> int:
    """Largest magnitude the decoder gives any byte: operand_max, or for FP8 the NaN/Inf codes, which decode
    like normals (f8hw.isasim.flex.decode_table) and can exceed the largest finite value."""
    if fmt == INT8:
        return operand_max(fmt, weight)
    f = fp8_format(fmt)
    return ((1 << (f.man_bits + 1)) - 1) << ((1 << f.exp_bits) - 2)


def product_bits(formats) -> int:
    """Signed width of the aligned product (significand product << exponent sum) over all format pairs
    and all bytes (a scratchpad byte may hold any code)."""
    formats = check_formats(formats)
    m = max(decoded_max(a, False) * decoded_max(w, True) for a in formats for w in formats)
    return m.bit_length() + 1


def activation_bits(formats) -> int:
    """Signed width of every activation byte's integer form (what MAX mode compares)."""
    return max(decoded_max(f, False) for f in check_formats(formats)).bit_length() + 1


def acc_bits(formats, k: int = MAX_K) -> int:
    """Signed width of an exact accumulator of k products over the format pairs (never below INT8's)."""
    formats = check_formats(formats)
    m = max(k * operand_max(a, False) * operand_max(w, True) for a in formats for w in formats)
    return max(ACC_BITS, m.bit_length() + 1)


def fpe_cfg_layout(formats) -> data.StructLayout:
    """Per-layer configuration: activation format, weight format (indices into formats), INT8 A_SIGNED."""
    sel = unsigned(clog2(len(check_formats(formats))))
    return data.StructLayout({"a_fmt": sel, "w_fmt": sel, "a_signed": 1})


def fpe_cfg_value(formats, a_fmt: str, w_fmt: str, a_signed: bool = False) -> dict:
    """The configuration dict of a layer with these operand formats (names)."""
    formats = check_formats(formats)
    for what, f in (("activation", a_fmt), ("weight", w_fmt)):
        if f not in formats:
            raise ArchError(f"{what} format {f!r} is not in this PE's formats {formats!r}")
    return {"a_fmt": formats.index(a_fmt), "w_fmt": formats.index(w_fmt), "a_signed": int(bool(a_signed))}


class OperandDecoder(wiring.Component):
    """An 8-bit code -> (signed significand, exponent) per the format index ``fmt``, as numerics.fp8.split.

    INT8 gives the integer itself (the activation sign- or zero-extended by ``a_signed`` to 9 bits,
    the weight as int8) and exponent 0; FP8 codes give (+-(hidden | mantissa), max(field - 1, 0)).
    One negation serves every FP8 format.
    """

    def __init__(self, formats, weight: bool):
        self.formats = check_formats(formats)
        self.weight = weight
        fps = [fp8_format(f) for f in self.formats if f != INT8]
        self.mag_bits = max((f.man_bits + 1 for f in fps), default=1)
        members = {
            "code": In(8),
            "fmt": In(fpe_cfg_layout(self.formats).members["a_fmt"]),
            "sig": Out(signed(W_BITS if weight else A_BITS)),
            "exp": Out(max((f.exp_bits for f in fps), default=1)),
        }
        if not weight:
            members["a_signed"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        code = self.code
        mag = Signal(self.mag_bits)
        for i, name in enumerate(self.formats):
            if name == INT8:
                continue
            f = fp8_format(name)
            field = code[f.man_bits:7]
            with m.If(self.fmt == i):
                m.d.comb += [mag.eq(code[:f.man_bits] | ((field != 0) << f.man_bits)),
                             self.exp.eq(Mux(field != 0, field - 1, 0))]
        int_sig = code.as_signed() if self.weight else Mux(self.a_signed, code.as_signed(), code)
        m.d.comb += self.sig.eq(Mux(self.fmt == self.formats.index(INT8), int_sig, Mux(code[7], -mag, mag)))
        return m


class Aligner(wiring.Component):
    """prod << shift, truncated to the aligned product's width (exact for the formats' value ranges)."""

    def __init__(self, prod_bits: int, shift_bits: int, out_bits: int):
        self.out_bits = out_bits
        super().__init__({"prod": In(signed(prod_bits)), "shift": In(shift_bits), "out": Out(signed(out_bits))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.out.eq((self.prod << self.shift)[:self.out_bits].as_signed())
        return m


class Accumulator(wiring.Component):
    """The PE's accumulator and shadow register (f8hw.hw.pe semantics at any width).

    MAC: acc = first ? x : acc + x (wraps); MAX: acc = first | x > acc ? x : acc; ``last`` copies
    this cycle's result into ``shadow``.  Why ``max_bits``: in MAX mode x is an activation (max_bits
    wide), so x > acc needs only a max_bits comparator when acc fits max_bits too (a MAX tile's own
    values), and acc's sign otherwise (a MAX COMPUTE with acc = 1 after a MAC tile: the ISA compares
    the whole accumulator); MAX mode adds 0 (x gated) instead of a second mux.
    """

    def __init__(self, in_bits: int, width: int, max_bits: int):
        if not 1 < max_bits <= in_bits <= width:
            raise ArchError(f"accumulator widths must satisfy 1 < max_bits <= in_bits <= width, got "
                            f"{max_bits}, {in_bits}, {width}")
        self.width, self.max_bits = width, max_bits
        super().__init__({"x": In(signed(in_bits)), "valid": In(1), "first": In(1), "last": In(1),
                          "max_mode": In(1), "acc": Out(signed(width)), "shadow": Out(signed(width))})

    def elaborate(self, platform):
        m = Module()
        x, acc, mb = self.x, self.acc, self.max_bits
        nxt = Signal(signed(self.width))
        high = acc[mb - 1:]
        fits = (high == 0) | (high == (1 << len(high)) - 1)
        gt = Mux(fits, x[:mb].as_signed() > acc[:mb].as_signed(), acc[-1])
        take_x = self.first | (self.max_mode & gt)
        addend = Mux(self.max_mode, 0, x)
        m.d.comb += nxt.eq(Mux(take_x, x, (acc + addend)[:self.width].as_signed()))
        with m.If(self.valid):
            m.d.sync += acc.eq(nxt)
            with m.If(self.last):
                m.d.sync += self.shadow.eq(nxt)
        return m


class FlexPE(wiring.Component):
    """One MAC PE for a set of operand formats (the PE of a flexible build's array, f8hw.hw.array).

    Submodules (so a hierarchical synthesis report shows what each part costs): ``dec_a``,
    ``dec_w`` (OperandDecoder), ``align`` (Aligner), ``accum`` (Accumulator); the multiplier,
    the MAX-mode operand select and the weight register are in the top.
    """

    def __init__(self, formats=(INT8, "e2m5", "e3m4", "e4m3")):
        self.formats = check_formats(formats)
        self.acc_bits = acc_bits(self.formats)
        self.product_bits = product_bits(self.formats)
        super().__init__({
            "a": In(8),
            "w": In(8),
            "cfg": In(fpe_cfg_layout(self.formats)),
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "max_mode": In(1),
            "acc": Out(signed(self.acc_bits)),
            "shadow": Out(signed(self.acc_bits)),
            "w_out": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.dec_a = dec_a = OperandDecoder(self.formats, weight=False)
        m.submodules.dec_w = dec_w = OperandDecoder(self.formats, weight=True)
        m.d.comb += [dec_a.code.eq(self.a), dec_a.fmt.eq(cfg.a_fmt), dec_a.a_signed.eq(cfg.a_signed),
                     dec_w.code.eq(self.w), dec_w.fmt.eq(cfg.w_fmt)]
        # MAX mode: the activation's integer form (weight 1 << 0) through the product path
        ws = Signal(signed(W_BITS))
        we = Signal.like(dec_w.exp)
        m.d.comb += [ws.eq(Mux(self.max_mode, 1, dec_w.sig)), we.eq(Mux(self.max_mode, 0, dec_w.exp))]
        prod = Signal(signed(A_BITS + W_BITS))
        m.d.sync += prod.eq(dec_a.sig * ws)  # the only multiplier: 9-bit x 8-bit signed significands; registered
        esum = Signal(max(len(dec_a.exp), len(we)) + 1)
        m.d.sync += esum.eq(dec_a.exp + we)
        valid, first, last, mx = (Signal(name=f"{n}_d") for n in ("valid", "first", "last", "max"))
        m.d.sync += [valid.eq(self.valid), first.eq(self.first), last.eq(self.last), mx.eq(self.max_mode)]
        m.submodules.align = align = Aligner(len(prod), len(esum), self.product_bits)
        m.submodules.accum = accum = Accumulator(self.product_bits, self.acc_bits, activation_bits(self.formats))
        m.d.comb += [align.prod.eq(prod), align.shift.eq(esum), accum.x.eq(align.out),
                     accum.valid.eq(valid), accum.first.eq(first), accum.last.eq(last),
                     accum.max_mode.eq(mx), self.acc.eq(accum.acc), self.shadow.eq(accum.shadow)]
        w_reg = Signal(8)
        m.d.sync += w_reg.eq(self.w)
        m.d.comb += self.w_out.eq(w_reg)
        return m
