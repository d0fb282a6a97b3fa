"""One MAC processing element of the output-stationary array.

a (9-bit signed: an int8 or uint8 activation byte, extended by the runtime
A_SIGNED flag) x w (int8) -> 17-bit product, accumulated into a 32-bit
two's-complement register (wraps).  MAX mode compares instead (max(acc, a)).
``first`` starts a new accumulation (acc = product, or acc = a in MAX mode);
``last`` copies the final value (this cycle's result) into the shadow register,
from which the drain reads it while the accumulator already starts the next
tile.  The weight is registered and passed to the PE below (``w_out``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from f8hw.numerics import ACC_BITS

A_BITS = 9   # int8 or uint8 activation, sign/zero extended by A_SIGNED
W_BITS = 8
PROD_BITS = A_BITS + W_BITS


def pe_logic(m: Module, a, w, valid, first, last, max_mode, name: str = "pe"):
    """Add one PE's logic to module m; returns (acc, shadow, w_reg) signals."""
    acc = Signal(signed(ACC_BITS), name=f"{name}_acc")
    shadow = Signal(signed(ACC_BITS), name=f"{name}_sh")
    w_reg = Signal(signed(W_BITS), name=f"{name}_w")
    prod = Signal(signed(PROD_BITS), name=f"{name}_prod")
    nxt = Signal(signed(ACC_BITS), name=f"{name}_nxt")
    m.d.comb += prod.eq(a * w)  # the only multiplier: 9-bit signed x 8-bit signed
    mac = Mux(first, prod, (acc + prod)[:ACC_BITS].as_signed())
    mx = Mux(first | (a > acc), a, acc)
    m.d.comb += nxt.eq(Mux(max_mode, mx, mac))
    m.d.sync += w_reg.eq(w)
    with m.If(valid):
        m.d.sync += acc.eq(nxt)
        with m.If(last):
            m.d.sync += shadow.eq(nxt)
    return acc, shadow, w_reg


class PE(wiring.Component):
    """A single PE as a component (unit tests and the per-component area report)."""

    def __init__(self):
        super().__init__({
            "a": In(signed(A_BITS)),
            "w": In(signed(W_BITS)),
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "max_mode": In(1),
            "acc": Out(signed(ACC_BITS)),
            "shadow": Out(signed(ACC_BITS)),
            "w_out": Out(signed(W_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        acc, shadow, w_reg = pe_logic(m, self.a, self.w, self.valid, self.first, self.last, self.max_mode)
        m.d.comb += [self.acc.eq(acc), self.shadow.eq(shadow), self.w_out.eq(w_reg)]
        return m
