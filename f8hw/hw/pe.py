"""One MAC processing element of the output-stationary array.

a (9-bit signed: an int8 or uint8 activation byte, extended by the runtime
A_SIGNED flag) x w (int8) -> 17-bit product, accumulated into a 32-bit
two's-complement register (wraps).  MAX mode compares instead (max(acc, a)).
``first`` starts a new accumulation (acc = product, or acc = a in MAX mode);
``last`` copies the final value (this cycle's result) into the shadow register,
from which the drain reads it while the accumulator already starts the next
tile.  The weight is registered and passed to the PE below (``w_out``).

Two stages (f8hw.arch.PE_LATENCY): (1) multiply: prod <= a * w (MAX mode: a * 1,
the activation itself, so the compare needs no second operand register);
(2) accumulate, with the controls of the step one cycle later: acc <= first ?
prod : acc + prod (MAX: first | prod > acc ? prod : acc), and shadow <= the
same when last.  The product register splits the multiply-accumulate path
(docs/architecture.md "Timing": one cycle more of array latency).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from f8hw.arch import PE_LATENCY
from f8hw.numerics import ACC_BITS

A_BITS = 9   # int8 or uint8 activation, sign/zero extended by A_SIGNED
W_BITS = 8
PROD_BITS = A_BITS + W_BITS
if PE_LATENCY != 2:
    raise ImportError(f"f8hw.hw.pe implements PE_LATENCY = 2 (multiply, accumulate), f8hw.arch says {PE_LATENCY}")


def pe_logic(m: Module, a, w, mul_max, valid, first, last, max_mode, name: str = "pe"):
    """Add one PE's logic to module m; returns (acc, shadow, w_reg) signals.

    a, w, mul_max (MAX mode of the step being multiplied) drive the multiply stage; valid, first, last,
    max_mode are the controls of the step being accumulated (the multiply stage's, one cycle later)."""
    acc = Signal(signed(ACC_BITS), name=f"{name}_acc")
    shadow = Signal(signed(ACC_BITS), name=f"{name}_sh")
    w_reg = Signal(signed(W_BITS), name=f"{name}_w")
    ws = Signal(signed(W_BITS), name=f"{name}_ws")
    prod = Signal(signed(PROD_BITS), name=f"{name}_prod")
    nxt = Signal(signed(ACC_BITS), name=f"{name}_nxt")
    m.d.comb += ws.eq(Mux(mul_max, 1, w))
    m.d.sync += prod.eq(a * ws)  # the only multiplier: 9-bit signed x 8-bit signed; registered
    mac = Mux(first, prod, (acc + prod)[:ACC_BITS].as_signed())
    mx = Mux(first | (prod > acc), prod, acc)
    m.d.comb += nxt.eq(Mux(max_mode, mx, mac))
    m.d.sync += w_reg.eq(w)
    with m.If(valid):
        m.d.sync += acc.eq(nxt)
        with m.If(last):
            m.d.sync += shadow.eq(nxt)
    return acc, shadow, w_reg


class PE(wiring.Component):
    """A single PE as a component (unit tests and the per-component area report): the controls of a step
    come with its operands and are registered here for the accumulate stage (an array registers them once
    per row, f8hw.hw.array), so acc/shadow show a step PE_LATENCY cycles after its inputs."""

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
        valid, first, last, mx = (Signal(name=f"{n}_d") for n in ("valid", "first", "last", "max"))
        m.d.sync += [valid.eq(self.valid), first.eq(self.first), last.eq(self.last), mx.eq(self.max_mode)]
        acc, shadow, w_reg = pe_logic(m, self.a, self.w, self.max_mode, valid, first, last, mx)
        m.d.comb += [self.acc.eq(acc), self.shadow.eq(shadow), self.w_out.eq(w_reg)]
        return m
